#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests use, when missing:
# qemu-img (qemu-utils) makes and checks test disks, skopeo reads what the
# tool writes, kubectl dispatches to the plugin binaries, xz compresses a
# test upstream's disks.
set -euo pipefail
missing=()
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
command -v xz >/dev/null || missing+=(xz-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "Missing: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "Installing ${missing[*]}" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
