#!/usr/bin/env bash
# The main job, offline: make two small disks, build them into one
# amd64+arm64 containerdisk in a local OCI layout, then publish it to a
# registry started on loopback, and push again to show that nothing is sent.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
work=demo
rm -rf "$work" && mkdir -p "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "Making two small disks (qcow2 for amd64, raw for arm64)"
go run ./hack/mkdisk qcow2 "$work/amd64.qcow2" 64
go run ./hack/mkdisk raw "$work/arm64.img" 32
ls -l "$work"/amd64.qcow2 "$work"/arm64.img >&2

step "kubectl containerdisk build: amd64+arm64 index into the OCI layout $work/layout"
kubectl containerdisk build \
	--disk amd64="$work/amd64.qcow2" --disk arm64="$work/arm64.img" --disk-name disk.img \
	--version 1.0 --source https://example.com/demo --created 2024-05-01T12:00:00Z \
	-o json "oci:$work/layout:1.0" | tee "$work/build.json"

step "Starting a registry on loopback"
go build -o "$work/registry" ./hack/registry
"$work/registry" "$work/registry-data" > "$work/registry.host" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$work/registry.host" ] && break; sleep 0.1; done
registry=$(cat "$work/registry.host")
echo "registry at $registry" >&2

step "kubectl containerdisk push: the unique tag first, the moving tag 1.0 last"
kubectl containerdisk push --dry-run=false --tag 1.0-2405011200 --to "$registry/containerdisks/demo" < "$work/build.json"

step "Pushing again: everything is in place, nothing is sent"
kubectl containerdisk push --dry-run=false --tag 1.0-2405011200 --to "$registry/containerdisks/demo" < "$work/build.json"

step "What the registry has, as skopeo sees it"
skopeo inspect --tls-verify=false --raw "docker://$registry/containerdisks/demo:1.0"
echo
skopeo list-tags --tls-verify=false "docker://$registry/containerdisks/demo"

step "Done: the OCI layout is in $work/layout"
