#!/usr/bin/env bash
# Builds the release archives of kubectl containerdisk and renders its krew
# manifest:
#
#   hack/release.sh [--base-url URL] [--out DIR] VERSION
#
# For each platform of krew/containerdisk.yaml it builds the eight binaries
# (the umbrella kubectl-containerdisk and kubectl-containerdisk-SUB) with the
# release and commit stamped in, and archives them with LICENSE, reproducibly
# (sorted entries, mtimes of SOURCE_DATE_EPOCH, default the commit's time,
# owner 0, gzip -n; zip for windows): the same commit gives the same bytes.
# DIR (default dist/VERSION) receives the archives, a .sha256 file for each,
# and containerdisk.yaml, the manifest whose uris are URL/ARCHIVE (default
# the GitHub release of VERSION). Sizes are reported on stderr.
set -euo pipefail

usage() {
	echo "usage: hack/release.sh [--base-url URL] [--out DIR] VERSION   (VERSION as vMAJOR.MINOR.PATCH)" >&2
	exit 2
}

base_url= out=
while [ $# -gt 0 ]; do
	case $1 in
	--base-url) base_url=${2:?--base-url needs a URL}; shift 2 ;;
	--base-url=*) base_url=${1#*=}; shift ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--out=*) out=${1#*=}; shift ;;
	-h | --help) usage ;;
	-*) echo "unknown flag $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || usage
version=$1
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "version $version is not vMAJOR.MINOR.PATCH, which krew requires: try hack/release.sh v0.1.0" >&2
	exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
base_url=${base_url:-https://github.com/containerdisk/kubectl-containerdisk/releases/download/$version}
base_url=${base_url%/}
out=${out:-dist/$version}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	commit=$commit-dirty
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
platforms=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
pkg=github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit"
mains=(./cmd/kubectl-containerdisk)
for p in gather build push pipeline verify mirror docs; do
	mains+=("./plugins/$p/kubectl-containerdisk-$p")
done
if [ ! -f LICENSE ]; then
	echo "$repo has no LICENSE: every archive carries it (krew-index requires one); restore it with git checkout LICENSE" >&2
	exit 2
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
manifest=$work/containerdisk.yaml
sed "s|@VERSION@|$version|" krew/containerdisk.yaml >"$manifest"

start=$SECONDS
for platform in $platforms; do
	os=${platform%/*} arch=${platform#*/}
	stage=$work/$os-$arch
	mkdir -p "$stage"
	# One go build for the eight: it builds them in parallel.
	GOOS=$os GOARCH=$arch CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$stage/" "${mains[@]}"
	cp LICENSE "$stage/"
	# Modes and times are set, not inherited from the umask and the clock.
	chmod 0644 "$stage/LICENSE"
	find "$stage" -type f -name 'kubectl-containerdisk*' -exec chmod 0755 {} +
	(cd "$stage" && find . -type f -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +)
	name=kubectl-containerdisk_${version}_${os}_${arch}
	if [ "$os" = windows ]; then
		archive=$name.zip
		rm -f "$out/$archive"
		(cd "$stage" && find . -type f -printf '%P\n' | LC_ALL=C sort | TZ=UTC zip -q -X -D -9 "$out/$archive" -@)
	else
		archive=$name.tar.gz
		(cd "$stage" && find . -type f -printf '%P\n' | LC_ALL=C sort |
			tar --no-recursion --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
				--format=gnu -cf - -T - | gzip -n -9 >"$out/$archive")
	fi
	sum=$(sha256sum "$out/$archive" | cut -d' ' -f1)
	echo "$sum  $archive" >"$out/$archive.sha256"
	sed -i -e "s|@URI_${os}_${arch}@|$base_url/$archive|" -e "s|@SHA256_${os}_${arch}@|$sum|" "$manifest"
	{
		echo "$platform: $archive $(stat -c %s "$out/$archive") bytes, sha256 $sum"
		(cd "$stage" && find . -type f -printf '  %P %s\n' | LC_ALL=C sort)
	} >&2
done
# Platforms not built (PLATFORMS) leave placeholders: drop those entries.
if grep -q '@URI_' "$manifest"; then
	awk '
		/^  - selector:/ { if (blk != "" && blk !~ /@URI_/) printf "%s", blk; blk = $0 "\n"; inplat = 1; next }
		inplat && /^  [^ -]/ { if (blk !~ /@URI_/) printf "%s", blk; blk = ""; inplat = 0 }
		inplat { blk = blk $0 "\n"; next }
		{ print }
		END { if (blk != "" && blk !~ /@URI_/) printf "%s", blk }
	' "$manifest" >"$manifest.tmp" && mv "$manifest.tmp" "$manifest"
fi
cp "$manifest" "$out/containerdisk.yaml"
echo "Released $version ($commit) in $out in $((SECONDS - start)) s" >&2
echo "$out"
