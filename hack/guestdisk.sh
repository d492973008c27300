#!/usr/bin/env bash
# Builds a small guest disk that libguestfs inspects as Debian, for the tests
# of pkg/customize, and prints its path on stdout; everything else goes to
# stderr.
#
#   hack/guestdisk.sh [amd64|arm64]        (amd64 by default)
#
# The disk is an MBR with one ext4 partition (label "root") holding a
# busybox-static root: /etc/os-release (ID=debian), /etc/passwd, /etc/shadow,
# /etc/fstab, /etc/machine-id, /bin/sh and the applets a virt-customize
# --run-command needs. That is enough for libguestfs inspection (it reads
# the distribution from os-release and the architecture from the ELF header
# of /bin/ls, so the arm64 disk is aarch64 to it) and for the file
# operations of virt-customize and virt-sysprep; it cannot boot (there is no
# kernel).
#
# For package installs the root also has Debian's apt, dpkg and GNU tar with
# the libraries they load, unpacked with dpkg-deb -x (no maintainer scripts,
# an empty /var/lib/dpkg/status, no documentation, locales or gconv
# modules), an _apt user and an empty /etc/apt/sources.list: a test writes
# its own source, e.g. a flat repository it serves over loopback, which the
# appliance's user network reaches at 169.254.2.2. Offline installs use the
# local package built next to the disk:
#   <dir>/disk-<arch>.qcow2
#   <dir>/containerdisk-test_1.0_all.deb   installs
#                                          /usr/share/containerdisk-test/hello.txt
# Some files exist so that sysprep has something to remove:
# /root/.bash_history, /var/log/test.log, a non-empty /etc/machine-id.
#
# The packages come from Debian with `apt-get download`; arm64 packages on
# another host are looked up in a private apt state under the cache, as in
# hack/bootdisk.sh, so the host's apt configuration is not changed. The build
# needs no root and no libguestfs appliance (a few seconds). It is cached under
#   ${GUESTDISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/guestdisk}/<key>/
# where <key> covers the architecture, the versions of the packages and of
# e2fsprogs, and this script.
#
# Tools: apt-get, dpkg-deb, sfdisk (fdisk), mkfs.ext4 (e2fsprogs), qemu-img
# (qemu-utils).
set -euo pipefail

arch=${1:-amd64}
case "$arch" in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
esac
case "$arch" in
amd64 | arm64) ;;
*)
	echo "guestdisk.sh: unknown architecture \"$arch\": expected amd64 or arm64" >&2
	exit 2
	;;
esac

# sfdisk and mkfs.ext4 live in /usr/sbin, outside most users' PATH.
PATH=$PATH:/usr/sbin:/sbin
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GUESTDISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/guestdisk}
log() { echo "guestdisk.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

need=()
need_tool() { command -v "$1" >/dev/null || need+=("$2"); }
need_tool apt-get apt
need_tool dpkg-deb dpkg
need_tool sfdisk fdisk
need_tool mkfs.ext4 e2fsprogs
need_tool qemu-img qemu-utils
if [ ${#need[@]} -gt 0 ]; then
	die "missing tools; install them with: apt-get install -y ${need[*]}"
fi

# shellcheck source=hack/lib/debapt.sh
. "$here/lib/debapt.sh"

# apt and what it runs: dpkg, which needs GNU tar, and the libraries the
# three and apt's methods load (ldd of apt-get, dpkg, tar and
# /usr/lib/apt/methods/{http,store} on bookworm).
pkgs=(busybox-static apt libapt-pkg6.0 dpkg tar
	libc6 libgcc-s1 libstdc++6 zlib1g libbz2-1.0 liblzma5 liblz4-1 libzstd1 libxxhash0
	libudev1 libsystemd0 libcap2 libgcrypt20 libgpg-error0 libseccomp2 libselinux1
	libpcre2-8-0 libmd0 libacl1 libgnutls30 libp11-kit0 libffi8 libidn2-0
	libunistring2 libtasn1-6 libnettle8 libhogweed6 libgmp10)
mapfile -t pins < <(apt-cache "${apt_opts[@]}" show --no-all-versions "${pkgs[@]}" 2>/dev/null |
	awk '/^Package: /{p=$2} /^Version: /{print p "=" $2}')
[ ${#pins[@]} = ${#pkgs[@]} ] ||
	die "no candidate of some of ${pkgs[*]} for $arch (found: ${pins[*]}): run apt-get update first"
e2fs=$(mkfs.ext4 -V 2>&1 | sed -n 1p)

key=$({
	echo "$arch"
	printf '%s\n' "${pins[@]}"
	echo "$e2fs"
	cat "${BASH_SOURCE[0]}" "$here"/lib/debapt.sh
} | sha256sum | cut -c1-16)
dir=$cache/$key
out=$dir/disk-$arch.qcow2
deb=containerdisk-test_1.0_all.deb
if [ -s "$out" ] && [ -s "$dir/$deb" ]; then
	log "cached: ${pins[0]} and $((${#pins[@]} - 1)) other packages"
	echo "$out"
	exit 0
fi

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/guestdisk.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "building $out from ${#pkgs[@]} Debian packages"
mkdir debs
(cd debs && apt-get "${apt_opts[@]}" -q -o APT::Sandbox::User="$(id -un)" download "${pins[@]}" >&2)
dpkg-deb -x debs/busybox-static_*.deb busybox

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/share,etc,root,tmp,var/log,var/tmp,var/cache,var/lib/dpkg/info,var/lib/dpkg/updates,dev,proc,sys,run,home}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
cp busybox/bin/busybox "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# A fixed list of applets (not `busybox --list`, which cannot run for a
# foreign architecture): what a shell script uses, and diff, which dpkg wants
# in PATH. tar, dpkg and dpkg-deb are Debian's, below.
for a in sh ash ls cat echo mkdir rm rmdir cp mv ln chmod chown touch test true false \
	env id uname sed grep awk gzip gunzip head tail sort cut tr wc sleep mount umount \
	find xargs printf readlink stat sync hostname date basename dirname diff; do
	ln -s busybox "$root/bin/$a"
done
ln -s /bin/busybox "$root/usr/bin/env"
for d in debs/*.deb; do
	case "$d" in debs/busybox-static_*) continue ;; esac
	dpkg-deb -x "$d" "$root"
done
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug,bash-completion,gdb,polkit-1} \
	"$root"/usr/lib/*-linux-gnu/gconv
# dpkg refuses to run without an ldconfig in PATH; it never calls it (libc-bin's
# trigger would), and the libraries are in the loader's default paths.
printf '#!/bin/sh\n# a stand-in: dpkg only checks that ldconfig exists\nexit 0\n' >"$root/sbin/ldconfig"
chmod 0755 "$root/sbin/ldconfig"
mkdir -p "$root"/etc/apt/sources.list.d "$root"/var/lib/apt/lists/partial "$root"/var/cache/apt/archives/partial
echo '# empty: a test writes the source it serves' >"$root/etc/apt/sources.list"
# Only Debian's ID matters to inspection; the rest makes the guest look like
# what the tests pretend it is.
cat >"$root/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
EOF
echo 12.0 >"$root/etc/debian_version"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
_apt:x:42:65534::/nonexistent:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
printf 'root:*:19000:0:99999:7:::\n_apt:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
chmod 0640 "$root/etc/shadow"
echo 'LABEL=root / ext4 defaults 0 1' >"$root/etc/fstab"
echo guestdisk >"$root/etc/hostname"
echo 0123456789abcdef0123456789abcdef >"$root/etc/machine-id"
: >"$root/var/lib/dpkg/status"
: >"$root/var/lib/dpkg/available"
echo 'echo history' >"$root/root/.bash_history"
echo 'a log line' >"$root/var/log/test.log"

# A package for install tests.
mkdir -p pkg/DEBIAN pkg/usr/share/containerdisk-test
cat >pkg/DEBIAN/control <<'EOF'
Package: containerdisk-test
Version: 1.0
Architecture: all
Maintainer: kubectl-containerdisk tests <tests@localhost>
Description: installs one file, for the tests of pkg/customize
EOF
echo 'hello from containerdisk-test' >pkg/usr/share/containerdisk-test/hello.txt
dpkg-deb --root-owner-group -Zgzip --build pkg "$work/$deb" >&2

# The disk: one type-83 partition at 1 MiB holding the root, made by mkfs -d
# (no loop device, no root), converted to a compressed qcow2. mkfs copies
# the files' owners: built by another user than root, the guest's files are
# that user's, which none of the tests depends on.
size_mib=64
raw=$work/disk.raw
truncate -s ${size_mib}M "$raw"
echo 'start=2048, type=83' | sfdisk -q "$raw" >&2
mkfs.ext4 -q -F -L root -U 6f0c1c6e-2f36-4c36-9a0b-3c7a6b0d1e21 \
	-E offset=$((2048 * 512)),root_owner=0:0 -d "$root" "$raw" $(((size_mib - 1) * 1024))k >&2
mkdir -p "$dir"
qemu-img convert -c -O qcow2 "$raw" "$out.tmp"
cp "$work/$deb" "$dir/$deb"
mv "$out.tmp" "$out"
log "built $out ($(du -k "$out" | cut -f1) KiB) in $(($(date +%s) - start)) s"
echo "$out"
