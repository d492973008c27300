#!/usr/bin/env bash
# Builds hack/kvvalidate, which runs KubeVirt's own admission webhooks on
# VirtualMachines, and prints the binary's path on stdout:
#
#   export CONTAINERDISK_KVVALIDATE=$(hack/kvvalidate.sh)
#   $CONTAINERDISK_KVVALIDATE vm.yaml
#
# It is built from the module proxy with the kubevirt.io/kubevirt version
# that hack/kvvalidate/go.mod pins (about 3 minutes the first time), into a
# cache directory keyed by that version and by a digest of the module's own
# files, so that a warm machine builds nothing and an edit builds anew.
# KVVALIDATE_DIR overrides the directory.
set -euo pipefail

src=$(cd "$(dirname "$0")/kvvalidate" && pwd)
version=$(cd "$src" && GOFLAGS=-mod=mod go list -m -f '{{.Version}}' kubevirt.io/kubevirt)
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }
digest=$(cd "$src" && cat go.mod go.sum main.go | sha256 | cut -c1-12)
dir=${KVVALIDATE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/kvvalidate/$version-$digest}
bin=$dir/kvvalidate

if [ ! -x "$bin" ]; then
	echo "Building kvvalidate with kubevirt.io/kubevirt $version into $dir (about 3 minutes the first time)" >&2
	mkdir -p "$dir"
	# Build beside the target and rename, so that a build that stops halfway
	# (or two at once) never leaves a broken binary that looks finished.
	tmp=$(mktemp "$dir/kvvalidate.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tmp" .) >&2
	mv "$tmp" "$bin"
fi

echo "$bin"
