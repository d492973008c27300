#!/usr/bin/env bash
# Checks the krew manifest the way krew's index does, and installs the plugin
# with the real krew, offline:
#
#   hack/krew.sh DIST      DIST is what hack/release.sh wrote (containerdisk.yaml,
#                          the archives and their .sha256 files)
#   hack/krew.sh --tools   only build krew and validate-krew-manifest; print their directory
#
# krew and validate-krew-manifest are built from the module proxy in a scratch
# module (krew builds only at v0.4.4 or v0.5.0, and not with @latest), cached
# by version under ~/.cache/kubectl-containerdisk/krew/VERSION; the first build
# takes a few minutes. KREW_VERSION overrides the version.
#
# validate-krew-manifest downloads the archive the manifest names, so the
# manifest is rendered again with its uris pointing at a loopback server
# serving DIST. Then `kubectl krew install --manifest --archive` installs the
# platform's archive into a temporary KREW_ROOT and the plugin runs through the
# real kubectl.
set -euo pipefail

version=${KREW_VERSION:-v0.4.4}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/krew/$version
repo=$(cd "$(dirname "$0")/.." && pwd)

build_tools() {
	if [ -x "$cache/kubectl-krew" ] && [ -x "$cache/validate-krew-manifest" ]; then
		return
	fi
	echo "Building krew $version into $cache (a few minutes the first time)" >&2
	local start=$SECONDS scratch
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' RETURN
	mkdir -p "$cache"
	(
		cd "$scratch"
		go mod init krewbuild >/dev/null 2>&1
		go get "sigs.k8s.io/krew/cmd/krew@$version" "sigs.k8s.io/krew/cmd/validate-krew-manifest@$version" >&2
		# Build beside the target and rename, so that a build that stops
		# halfway never leaves a binary that looks finished.
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$version" -o "$cache/kubectl-krew.tmp" sigs.k8s.io/krew/cmd/krew
		CGO_ENABLED=0 go build -trimpath -o "$cache/validate-krew-manifest.tmp" sigs.k8s.io/krew/cmd/validate-krew-manifest
	)
	mv "$cache/kubectl-krew.tmp" "$cache/kubectl-krew"
	mv "$cache/validate-krew-manifest.tmp" "$cache/validate-krew-manifest"
	echo "Built krew $version in $((SECONDS - start)) s" >&2
}

build_tools
if [ "${1:-}" = --tools ]; then
	echo "$cache"
	exit 0
fi

dist=${1:?usage: hack/krew.sh DIST (the directory hack/release.sh printed) | --tools}
dist=$(cd "$dist" && pwd)
[ -f "$dist/containerdisk.yaml" ] || { echo "$dist has no containerdisk.yaml: run hack/release.sh VERSION first" >&2; exit 2; }
work=$(mktemp -d)
server=
cleanup() {
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# A loopback server for DIST, on a free port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$dist" "$port" >"$work/http.log" 2>&1 &
server=$!
for _ in $(seq 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
	sleep 0.1
done
manifest=$work/containerdisk.yaml
sed -E "s|^(    uri: \")[^\"]*/([^/\"]+)\"|\1http://127.0.0.1:$port/\2\"|" "$dist/containerdisk.yaml" >"$manifest"

os=$(go env GOOS) arch=$(go env GOARCH)
# validate-krew-manifest installs with "kubectl krew" too: only krew's bin
# directory, kubectl and krew on PATH, nothing of a build.
export KREW_ROOT=$work/krew
kubectl=$(command -v kubectl)
mkdir -p "$work/path"
ln -s "$kubectl" "$work/path/kubectl"
ln -s "$cache/kubectl-krew" "$work/path/kubectl-krew"
export PATH=$KREW_ROOT/bin:$work/path:/usr/bin:/bin
start=$SECONDS
echo "validate-krew-manifest (downloads each platform's archive from 127.0.0.1:$port)" >&2
# Go on to the install when it fails, so that both are reported; the
# script fails at the end.
valid=ok
if "$cache/validate-krew-manifest" -manifest "$manifest" >&2; then
	echo "validated in $((SECONDS - start)) s" >&2
else
	valid=failed
	echo "validate-krew-manifest FAILED after $((SECONDS - start)) s" >&2
fi

# The validator must refuse what krew would refuse: an archive whose sha256
# is not the manifest's. (The file is named after the plugin, as the
# validator requires.)
mkdir "$work/bad"
bad=$work/bad/containerdisk.yaml
awk '!done && /^    sha256: "/ { sub(/"[0-9a-f]+"/, "\"" sprintf("%064d", 0) "\""); done = 1 } { print }' "$manifest" >"$bad"
if "$cache/validate-krew-manifest" -manifest "$bad" >"$work/bad.log" 2>&1; then
	echo "validate-krew-manifest accepted a manifest with a wrong sha256:" >&2
	cat "$work/bad.log" >&2
	exit 1
fi
grep -q 'checksum does not match' "$work/bad.log" || { echo "validate-krew-manifest refused a wrong sha256 without saying so:" >&2; cat "$work/bad.log" >&2; exit 1; }
echo "a wrong sha256 is refused: $(grep -o -m1 'checksum does not match, want: 0*' "$work/bad.log")" >&2

archive=$(ls "$dist"/kubectl-containerdisk_*_"${os}_${arch}".* | grep -v '\.sha256$')
start=$SECONDS
kubectl krew install --manifest="$manifest" --archive="$archive" </dev/null >&2
echo "installed in $((SECONDS - start)) s" >&2
ls -l "$KREW_ROOT/bin" >&2
kubectl containerdisk version
kubectl containerdisk verify --help | grep -q '^  kubectl containerdisk verify \[flags\]'
kubectl containerdisk gather --help | grep -q '^  kubectl containerdisk gather \[flags\]'
kubectl containerdisk promote --help | grep -q 'kubectl containerdisk verify promote'
echo "kubectl containerdisk verify, gather and promote run from the krew install in $KREW_ROOT" >&2
if [ "$valid" != ok ]; then
	echo "the install works, but validate-krew-manifest failed: see above" >&2
	exit 1
fi
