# hack/lib/debapt.sh: apt for a target architecture, for the scripts that
# build test disks from Debian packages (bootdisk.sh, guestdisk.sh). Source
# it with arch, cache, log and die defined; it sets apt_opts, the options
# to give apt-get and apt-cache.
#
# apt for the target architecture: the host's own when it matches, else a
# private state (lists, cache) under the cache directory, so that the
# host's apt configuration is not changed.
host_arch=$(dpkg --print-architecture)
apt_opts=()
if [ "$arch" != "$host_arch" ]; then
	aptdir=$cache/apt-$arch
	apt_opts=(
		-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
		-o "Dir::State=$aptdir/state" -o "Dir::State::status=$aptdir/state/status"
		-o "Dir::Cache=$aptdir/cache" -o "Dir::Etc::sourceparts=$aptdir/sources.list.d"
		-o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Debug::NoLocking=1"
	)
	if [ ! -d "$aptdir/state/lists" ] || ! compgen -G "$aptdir/state/lists/*Packages*" >/dev/null; then
		log "fetching the Debian package lists for $arch into $aptdir"
		mkdir -p "$aptdir/state/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/sources.list.d"
		: >"$aptdir/state/status"
		# Only Debian's own archives: third-party ones rarely carry arm64.
		grep -h '^deb .*debian' /etc/apt/sources.list 2>/dev/null | grep -v '^deb-src' >"$aptdir/sources.list" || true
		for f in /etc/apt/sources.list.d/*.sources; do
			if [ -f "$f" ] && grep -q 'debian\.org' "$f"; then
				cp "$f" "$aptdir/sources.list.d/"
			fi
		done
		apt-get "${apt_opts[@]}" -q -o APT::Sandbox::User="$(id -un)" update >&2 || die "apt-get update for $arch failed"
	fi
fi
