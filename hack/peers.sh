#!/usr/bin/env bash
# Builds the peer tools the testscripts read this project's OCI layouts
# with, and prints their directories as a PATH list:
#
#   PATH=$(hack/peers.sh):$PATH
#
# crane (go-containerregistry), oras and regctl (regclient) are built from
# the module proxy at pinned versions, each cached by version under
# ~/.cache/kubectl-containerdisk/peers/NAME-VERSION; the first build takes
# about a minute each, later calls return at once. skopeo comes from Debian
# (hack/deps.sh).
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/peers
peers=(
	"crane v0.22.1 github.com/google/go-containerregistry/cmd/crane"
	"oras v1.3.6 oras.land/oras/cmd/oras"
	"regctl v0.11.7 github.com/regclient/regclient/cmd/regctl"
)

path=
for peer in "${peers[@]}"; do
	read -r name version module <<<"$peer"
	dir=$cache/$name-$version
	if [ ! -x "$dir/$name" ]; then
		echo "Building $name $version into $dir" >&2
		start=$SECONDS
		mkdir -p "$cache"
		tmp=$(mktemp -d "$cache/.build.XXXXXX")
		# Installed beside the target and renamed, so that a build that
		# stops halfway never leaves a binary that looks finished.
		CGO_ENABLED=0 GOBIN=$tmp go install -trimpath "$module@$version" >&2
		mkdir -p "$dir"
		mv "$tmp/$name" "$dir/$name"
		rmdir "$tmp"
		echo "Built $name $version in $((SECONDS - start)) s" >&2
	fi
	path=${path:+$path:}$dir
done
echo "$path"
