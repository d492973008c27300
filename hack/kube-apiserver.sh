#!/usr/bin/env bash
# Puts the binaries internal/testcluster runs (kube-apiserver and etcd) in one
# directory and prints that directory on stdout, for KUBEBUILDER_ASSETS:
#
#   export KUBEBUILDER_ASSETS=$(hack/kube-apiserver.sh)
#
# kube-apiserver is built from the module proxy with the version that
# hack/tools/kube-apiserver/go.mod pins (about 8 minutes the first time), into
# a cache directory keyed by that version, so a warm machine builds nothing.
# etcd is Debian's etcd-server, installed here when missing and run as root.
# KUBE_ASSETS_DIR overrides the directory.
set -euo pipefail

tools=$(cd "$(dirname "$0")/tools/kube-apiserver" && pwd)
version=$(cd "$tools" && GOFLAGS=-mod=mod go list -m -f '{{.Version}}' k8s.io/kubernetes)
dir=${KUBE_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk/kube-assets/$version}

if ! command -v etcd >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "etcd is missing; install it with: sudo apt-get install -y etcd-server" >&2
		exit 1
	fi
	echo "Installing etcd-server" >&2
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2
fi

mkdir -p "$dir"
ln -sfn "$(command -v etcd)" "$dir/etcd"

if [ ! -x "$dir/kube-apiserver" ]; then
	echo "Building kube-apiserver $version into $dir (about 8 minutes the first time)" >&2
	minor=${version#v*.}
	minor=${minor%%.*}
	# The version variables are what the Kubernetes release build sets; without
	# them the server calls itself v0.0.0-master.
	pkg=k8s.io/component-base/version
	ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	# Build beside the target and rename, so that a build that stops halfway
	# (or two at once) never leaves a broken binary that looks finished.
	tmp=$(mktemp "$dir/kube-apiserver.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	(cd "$tools" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver) >&2
	mv "$tmp" "$dir/kube-apiserver"
fi

echo "$dir"
