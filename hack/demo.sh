#!/usr/bin/env bash
# The main job, offline: keep the curated containerdisks in step with their
# upstreams. A local server stands in for every upstream (a build of each
# curated version, in each distribution's real formats); gather finds the
# latest releases, push builds and publishes what changed into an OCI
# layout, then into a registry started on loopback. A second run finds
# everything up to date; a new upstream build is the only thing published
# next.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
work=demo
rm -rf "$work" && mkdir -p "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "Starting the stand-in upstream and a registry on loopback"
go build -o "$work/upstream" ./hack/upstream
go build -o "$work/registry" ./hack/registry
"$work/upstream" "$work/upstream-data" > "$work/upstream.url" &
upid=$!
"$work/registry" "$work/registry-data" > "$work/registry.host" &
rpid=$!
trap 'kill $upid $rpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/upstream.url" ] && [ -s "$work/registry.host" ] && break; sleep 0.1; done
upstream=$(cat "$work/upstream.url")
registry=$(cat "$work/registry.host")
echo "upstream at $upstream, registry at $registry" >&2
mirror="*=$upstream"
cache="$work/cache"

step "kubectl containerdisk gather: the latest release of every distribution, version and architecture"
kubectl containerdisk gather --mirror "$mirror" -o table

step "kubectl containerdisk push --focus '*:*' (a dry run by default): what would be published"
kubectl containerdisk push --mirror "$mirror" --focus '*:*' --to "oci:$work/containerdisks"

step "Publishing into the OCI layout $work/containerdisks, four entries at a time"
kubectl containerdisk push --mirror "$mirror" --focus '*:*' --dry-run=false --workers 4 \
	--cache-dir "$cache" --to "oci:$work/containerdisks" --results "$work/results.json"

step "The same, to the registry: the downloads come from the cache"
kubectl containerdisk push --mirror "$mirror" --focus '*:*' --dry-run=false --workers 4 \
	--cache-dir "$cache" --to "$registry/containerdisks"

step "Running again: everything is up to date, nothing is downloaded or sent"
kubectl containerdisk push --mirror "$mirror" --focus '*:*' --dry-run=false --workers 8 \
	--cache-dir "$cache" --to "$registry/containerdisks"

step "Upstream publishes Fedora 42 build 1.2: only fedora:42 is published, its tags move"
"$work/upstream" "$work/upstream-data" fedora 42 1.2
kubectl containerdisk push --mirror "$mirror" --focus '*:*' --dry-run=false \
	--cache-dir "$cache" --to "$registry/containerdisks" | grep -v ' up to date$'
skopeo list-tags --tls-verify=false "docker://$registry/containerdisks/fedora"

step "The shell pipeline: gather | build | push"
kubectl containerdisk gather --mirror "$mirror" --focus 'ubuntu:*' |
	kubectl containerdisk build -q --cache-dir "$cache" -o json "oci:$work/built" |
	kubectl containerdisk push -q --dry-run=false --to "$registry/pipeline"

step "Done: the layouts are in $work/containerdisks/NAME, the results in $work/results.json"
