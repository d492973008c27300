#!/usr/bin/env bash
# bench/mirror.sh: mirror a set of containerdisks between two registries on
# loopback with kubectl-containerdisk mirror and with its peers, skopeo sync
# (Debian), regsync once and a crane copy per tag (both built from the module
# proxy at pinned versions), and compare a cold sync (an empty target) with a
# no-op sync (everything already there).
#
# The set: 8 repositories x 3 tags x 2 arches (amd64, arm64), each tag an OCI
# index, each image a base layer that every image of its arch shares (across
# repositories) plus a layer of its own; about MIRROR_BENCH_GIB GiB of blobs.
# It checks the acceptance line "cold sync at least as fast as the fastest
# peer, no-op sync at least 3x faster than skopeo sync, peak RSS under 100 MiB"
# and exits non-zero when ours misses it (or cannot run), after printing
# everything.
#
# Usage: bench/mirror.sh        (from the repository root or from bench/)
# Knobs (environment):
#   MIRROR_BENCH_GIB=2    size of the set's blobs in GiB; 0.25 for a quick run
#   REPS=3                cold syncs of every contender (a fresh target each);
#                         the table shows medians
#   NOOP_RUNS=5           no-op syncs after each cold one; the table shows medians
#   CONTENDERS="ours ours-skopeo-yaml skopeo regsync crane"
#                         which to run, in this order
#   OURS_FLAGS=           more flags for ours, e.g. "--workers 1"
#   REGSYNC_PARALLEL=     regsync's defaults.parallel (sync entries run at once);
#                         empty keeps its default, one after the other
#   BENCH_CACHE=DIR       where the set and the peers' binaries are kept between
#                         runs (default ${XDG_CACHE_HOME:-~/.cache}/kubectl-containerdisk-bench)
# The helper that makes the set, serves registries that count requests and
# checks a target is a complete copy is bench/mirror (its own module):
#   (cd bench/mirror && go run . fill DIR 0.25 > list)
set -euo pipefail
export LC_ALL=C  # decimal points in the clock and in awk

# --- Acceptance thresholds (ours, its native config) -------------------------
MAX_RSS_MIB=100            # peak RSS of cold and no-op syncs must stay below this
MAX_COLD_VS_FASTEST=1.0    # ours' cold seconds / the fastest peer's
MIN_NOOP_VS_SKOPEO=3.0     # skopeo's no-op seconds / ours'

GIB=${MIRROR_BENCH_GIB:-2}
REPS=${REPS:-3}
NOOP_RUNS=${NOOP_RUNS:-5}
REGSYNC_PARALLEL=${REGSYNC_PARALLEL:-}
read -r -a ours_flags <<< "${OURS_FLAGS:-}"
read -r -a contenders <<< "${CONTENDERS:-ours ours-skopeo-yaml skopeo regsync crane}"
REGSYNC_VERSION=v0.11.7
CRANE_VERSION=v0.22.1

# The script lives in bench/; everything runs from the repository root so
# that it works from either directory.
cd "$(dirname "$0")/.."
root=$PWD

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

awk -v g="$GIB" 'BEGIN { exit !(g > 0) }' || die "MIRROR_BENCH_GIB=$GIB: expected a positive number of GiB such as 2 or 0.25"

# --- Tools ------------------------------------------------------------------
apt_install() {
	[ "$(id -u)" = 0 ] || die "$1 is missing: install it with 'sudo apt-get install -y $2'"
	log "Installing $2"
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2
}
# GNU time gives wall time, CPU time and peak RSS of a child process (for the
# crane loop, of the largest of its children).
[ -x /usr/bin/time ] || apt_install /usr/bin/time time
command -v skopeo >/dev/null || apt_install skopeo skopeo
command -v go >/dev/null || die "the go command is missing: install Go 1.26 or later"

work=$(mktemp -d "${TMPDIR:-/tmp}/containerdisk-mirror-bench.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/bin" "$work/results" "$work/logs" "$CACHE"

log "== Building the tools"
(cd bench/mirror && go build -o "$work/bin/mirrorbench" .)
ours=$root/bin/kubectl-containerdisk-mirror
ours_ok=0
if go build -o "$ours" ./plugins/mirror/kubectl-containerdisk-mirror >&2 &&
	"$ours" --help 2>&1 | grep -q -- '-f, --'; then
	ours_ok=1
else
	log "Warning: $ours does not build or has no -f flag yet: skipping ours (the acceptance check fails)"
	read -r -a contenders <<< "$(printf '%s\n' "${contenders[@]}" | { grep -v '^ours' || true; } | paste -sd' ')"
fi
# The peers are built once per version into the cache, in a scratch
# directory so that no go.mod around it takes part.
peer() {
	local name=$1 version=$2 pkg=$3 dir=$CACHE/$1-$2
	if [ ! -x "$dir/$name" ]; then
		log "Building $name $version (once; cached in $CACHE)"
		local scratch
		scratch=$(mktemp -d "$work/build.XXXXXX")
		(cd "$scratch" && GOBIN="$dir" go install "$pkg@$version") >&2
	fi
	printf '%s\n' "$dir/$name"
}
regsync=$(peer regsync "$REGSYNC_VERSION" github.com/regclient/regclient/cmd/regsync)
crane=$(peer crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane)
skopeo_version=$(skopeo --version | awk '{ print $3 }')
# skopeo needs a signature policy; this one accepts anything, as a mirror of
# unsigned images must.
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > "$work/policy.json"

# --- The set ------------------------------------------------------------------
# Made once and cached: a registry's storage directory, served read-only by
# every run. The key includes the generator's source so a change to the
# content it makes makes a new set.
set_key=$(sha256sum < bench/mirror/fill.go | cut -c1-12)
src_dir=$CACHE/mirror-set-$GIB-$set_key
if [ ! -s "$src_dir/list" ]; then
	log "== Making the set ($GIB GiB; once, cached in $src_dir)"
	rm -rf "$src_dir"
	"$work/bin/mirrorbench" fill "$src_dir" "$GIB" > "$work/list"
	mv "$work/list" "$src_dir/list"
fi
list=$src_dir/list
set_bytes=$(find "$src_dir/docker/registry/v2/blobs" -type f -name data -printf '%s\n' | awk '{ n += $1 } END { print n }')
set_mib=$(awk -v b="$set_bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
log "set: $(wc -l < "$list") tags in $(cut -d' ' -f1 "$list" | sort -u | wc -l) repositories, $set_mib MiB of blobs"

# --- Registries -----------------------------------------------------------------
# start_registry DIR VAR starts a counting registry stored in DIR and sets
# VAR_host and VAR_pid.
start_registry() {
	local dir=$1 var=$2 pid host= hostfile=$work/$2.host
	mkdir -p "$dir"
	rm -f "$hostfile"
	"$work/bin/mirrorbench" registry "$dir" > "$hostfile" 2>> "$work/logs/registry.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 200); do [ -s "$hostfile" ] && break; sleep 0.05; done
	host=$(cat "$hostfile")
	[ -n "$host" ] || die "the registry in $dir did not start: $(tail -3 "$work/logs/registry.log")"
	printf -v "${var}_host" '%s' "$host"
	printf -v "${var}_pid" '%s' "$pid"
}
stop_registry() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
# stats PID DIR OUT asks the registry for its request counts since the last
# time and writes them to OUT ("key value" lines).
stats() {
	rm -f "$2/stats"
	kill -USR1 "$1"
	for _ in $(seq 200); do [ -s "$2/stats" ] && break; sleep 0.01; done
	[ -s "$2/stats" ] || die "the registry in $2 wrote no stats"
	cp "$2/stats" "$3"
}

start_registry "$src_dir" src
# Distribution writes nothing under its root to serve reads, so the cached
# set stays as made; the stats file is ours.

# --- Contenders ---------------------------------------------------------------
# config NAME DST writes NAME's configuration for a sync of the whole set to
# the registry DST and prints its path.
config() {
	local name=$1 dst=$2 f=$work/$1.yaml
	case $name in
	ours)
		# The native config (pkg/mirror/config.go): one unit from the
		# source's containerdisks/ to the target's, the set's repositories
		# with their tags. Loopback registries are plain HTTP.
		{
			printf 'version: 1\nunits:\n- source: %s/containerdisks\n  target: %s/containerdisks\n  tlsVerify: false\n  images:\n' "$src_host" "$dst"
			awk '{ sub(/^containerdisks\//, "", $1); if (!($1 in t)) o[n++] = $1; t[$1] = t[$1] (t[$1] ? ", " : "") "\"" $2 "\"" }
				END { for (i = 0; i < n; i++) printf "  - repository: %s\n    tags: [%s]\n", o[i], t[o[i]] }' "$list"
		} > "$f"
		;;
	ours-skopeo-yaml | skopeo)
		# skopeo sync's YAML, keyed by the source registry.
		f=$work/skopeo.yaml
		{
			printf '%s:\n  tls-verify: false\n  images:\n' "$src_host"
			awk '{ t[$1] = t[$1] (t[$1] ? ", " : "") "\"" $2 "\"" } END { for (r in t) printf "    %s: [%s]\n", r, t[r] }' "$list" | sort
		} > "$f"
		;;
	regsync)
		# One repository entry per repository, its tags allowed by name
		# (regsync anchors the patterns); all platforms by default.
		{
			printf 'version: 1\ncreds:\n- registry: %s\n  tls: disabled\n- registry: %s\n  tls: disabled\n' "$src_host" "$dst"
			printf 'defaults:\n  skipDockerConfig: true\n'
			[ -z "$REGSYNC_PARALLEL" ] || printf '  parallel: %s\n' "$REGSYNC_PARALLEL"
			printf 'sync:\n'
			awk -v s="$src_host" -v d="$dst" -v q="'" '{ t[$1] = t[$1] (t[$1] ? ", " : "") q $2 q }
				END { for (r in t) { gsub(/\./, "\\.", t[r]); printf "- source: %s/%s\n  target: %s/%s\n  type: repository\n  tags:\n    allow: [%s]\n", s, r, d, r, t[r] } }' "$list"
		} > "$f"
		;;
	crane)
		# crane has no config: a copy per tag, one after the other.
		awk -v s="$src_host" -v d="$dst" '{ printf "%s/%s:%s %s/%s:%s\n", s, $1, $2, d, $1, $2 }' "$list" > "$f"
		;;
	esac
	printf '%s\n' "$f"
}

# sync_cmd NAME DST prints nothing and sets the array cmd to NAME's command
# for a sync of the whole set to DST.
sync_cmd() {
	local name=$1 dst=$2 f
	f=$(config "$name" "$dst")
	case $name in
	# The set lives under containerdisks/, and skopeo (and ours reading its
	# file) puts a yaml source's images under DESTINATION/<last path element>.
	ours) cmd=("$ours" -q "${ours_flags[@]}" -f "$f") ;;
	ours-skopeo-yaml) cmd=("$ours" -q "${ours_flags[@]}" -f "$f" --to "$dst/containerdisks") ;;
	skopeo) cmd=(skopeo --policy "$work/policy.json" sync --all --src yaml --dest docker --dest-tls-verify=false "$f" "$dst/containerdisks") ;;
	regsync) cmd=("$regsync" once -c "$f") ;;
	crane) cmd=(sh -c 'while read -r from to; do "$0" copy --insecure "$from" "$to" || exit 1; done < "$1"' "$crane" "$f") ;;
	esac
}

# timed NAME PHASE CMD... runs CMD, logging its output, and appends
# "wall cpu rss_kib" to results/NAME.PHASE.
timed() {
	local name=$1 phase=$2 t=$work/results/$1.$2.t start end; shift 2
	# GNU time's wall time has 10 ms steps, too coarse for a no-op sync:
	# the shell's clock (microseconds) times it instead.
	start=$EPOCHREALTIME
	if ! /usr/bin/time -f '%U %S %M' -o "$t" "$@" > "$work/logs/$name.$phase.log" 2>&1; then
		tail -20 "$work/logs/$name.$phase.log" >&2
		die "$name failed its $phase sync (command: $*)"
	fi
	end=$EPOCHREALTIME
	awk -v s="$start" -v e="$end" '{ printf "%.3f %.2f %s\n", e - s, $1 + $2, $3 }' "$t" >> "$work/results/$name.$phase"
}

# summary FILE prints "requests blob_mib_in blob_mib_out" of a stats file.
summary() {
	awk '$1 == "blob-bytes-in" { i = $2; next } $1 == "blob-bytes-out" { o = $2; next } { n += $2 }
		END { printf "%d %.1f %.1f\n", n, i / 1048576, o / 1048576 }' "$1"
}

# run NAME REP: a cold sync to a fresh target registry, a check that the
# target is a complete copy, then NOOP_RUNS no-op syncs.
run() {
	local name=$1 rep=$2 dst_dir=$work/target-$1-$2 res=$work/results/$1
	start_registry "$dst_dir" dst
	stats "$src_pid" "$src_dir" /dev/null
	sync_cmd "$name" "$dst_host"
	timed "$name" cold "${cmd[@]}"
	stats "$src_pid" "$src_dir" "$res.cold.src"
	stats "$dst_pid" "$dst_dir" "$res.cold.dst"
	"$work/bin/mirrorbench" check "$src_host" "$dst_host" "$list" 2> "$work/logs/$name.check.log" ||
		{ tail -20 "$work/logs/$name.check.log" >&2; die "$name: the target is not a complete copy of the set"; }
	stats "$src_pid" "$src_dir" /dev/null
	stats "$dst_pid" "$dst_dir" /dev/null
	for n in $(seq "$NOOP_RUNS"); do
		timed "$name" noop "${cmd[@]}"
	done
	stats "$src_pid" "$src_dir" "$res.noop.src"
	stats "$dst_pid" "$dst_dir" "$res.noop.dst"
	stop_registry "$dst_pid"
	rm -rf "$dst_dir"
	log "  rep $rep $name: cold $(tail -1 "$res.cold" | awk '{ printf "%.2f s, %.1f MiB RSS", $1, $3 / 1024 }');" \
		"no-op $(tail -"$NOOP_RUNS" "$res.noop" | awk '{ s = s sep sprintf("%.3f", $1); sep = " " } END { print s }') s"
}

warn_if_busy

log "== Running ${#contenders[@]} contenders, $REPS cold and $((REPS * NOOP_RUNS)) no-op syncs each (a fresh target per cold sync)"
for rep in $(seq "$REPS"); do
	for c in "${contenders[@]}"; do
		run "$c" "$rep"
	done
done

# --- Tables -------------------------------------------------------------------
# median FILE COLUMN
median() { awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxcol() { cat "$@" | awk '$3 > m { m = $3 } END { print m }'; }
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

printf '\nMirror of %s tags (%s repositories x 3 tags x 2 arches), %s MiB of blobs, between two registries on loopback; %s CPUs\n' \
	"$(wc -l < "$list")" "$(cut -d' ' -f1 "$list" | sort -u | wc -l)" "$set_mib" "$(nproc)"
printf 'median of %s cold syncs and %s no-op syncs\n' "$REPS" "$((REPS * NOOP_RUNS))"
printf '%-17s %8s %7s %8s %9s %8s %9s %8s\n' contender cold-s MiB/s cold-CPU noop-s noop-CPU RSS-MiB vs-ours
ours_cold=
[ -s "$work/results/ours.cold" ] && ours_cold=$(median "$work/results/ours.cold" 1)
for c in "${contenders[@]}"; do
	f=$work/results/$c
	awk -v c="$c" -v s="$(median "$f.cold" 1)" -v cpu="$(median "$f.cold" 2)" -v n="$(median "$f.noop" 1)" \
		-v ncpu="$(median "$f.noop" 2)" -v rss="$(maxcol "$f.cold" "$f.noop")" -v mib="$set_mib" -v o="$ours_cold" 'BEGIN {
		printf "%-17s %8.2f %7.1f %8.2f %9.3f %8.2f %9.1f %8s\n", c, s, mib / s, cpu, n, ncpu, rss / 1024, (o == "" ? "-" : sprintf("%.2fx", s / o)) }'
done
printf '\nRequests (per sync; the no-op figures are the average of its runs)\n'
printf '%-17s %-5s %8s %8s %8s %9s %9s %8s %8s %8s %8s\n' contender sync src-req src-MiB dst-req dst-MiB blob-head blob-up mf-head mf-get mf-put
for c in "${contenders[@]}"; do
	for phase in cold noop; do
		f=$work/results/$c.$phase
		# Only the last rep's counts are kept; a no-op's cover its NOOP_RUNS runs.
		[ "$phase" = cold ] && runs=1 || runs=$NOOP_RUNS
		read -r sreq _ sout <<< "$(summary "$f.src")"
		read -r dreq din _ <<< "$(summary "$f.dst")"
		awk -v c="$c" -v p="$phase" -v r="$runs" -v sreq="$sreq" -v sout="$sout" -v dreq="$dreq" -v din="$din" \
			-v bh="$(stat_of "$f.dst" blob-head)" -v bp="$(stat_of "$f.dst" blob-post)" \
			-v mh="$(stat_of "$f.dst" manifest-head)" -v mg="$(stat_of "$f.dst" manifest-get)" -v mp="$(stat_of "$f.dst" manifest-put)" 'BEGIN {
			printf "%-17s %-5s %8.0f %8.1f %8.0f %9.1f %9.0f %8.0f %8.0f %8.0f %8.0f\n", c, p, sreq / r, sout / r, dreq / r, din / r, bh / r, bp / r, mh / r, mg / r, mp / r }'
	done
done
cat <<EOF

cold-s: wall time of the first sync to an empty target; MiB/s: the set's blob MiB / cold-s;
noop-s: wall time of a sync finding everything there; *-CPU: user+sys seconds of the contender
(the registries' are not counted); RSS-MiB: peak RSS over all its syncs; vs-ours: its cold-s /
ours' (>1: ours is faster). Requests: src-*/dst-*: all requests to the source / target registry
and the blob MiB it sent / received; blob-up: blob upload sessions started on the target
(POST, mounts included); mf-*: manifest HEAD, GET and PUT on the target.
ours: kubectl-containerdisk mirror -q ${OURS_FLAGS:+$OURS_FLAGS }-f with its native config; ours-skopeo-yaml: the same with
skopeo's YAML and --to; skopeo: skopeo $skopeo_version sync --all --src yaml (Debian);
regsync: regsync $REGSYNC_VERSION once (one repository entry per repository, parallel: ${REGSYNC_PARALLEL:-default});
crane: crane $CRANE_VERSION copy --insecure, once per tag, one after the other.
EOF

# --- Acceptance ---------------------------------------------------------------
fail=0
printf '\nAcceptance (ours):\n'
if [ "$ours_ok" != 1 ] || [ ! -s "$work/results/ours.cold" ]; then
	printf '  FAIL ours did not run (no kubectl-containerdisk-mirror with -f, or not in CONTENDERS)\n'
	exit 1
fi
fastest=
fastest_s=
for c in "${contenders[@]}"; do
	case $c in ours*) continue ;; esac
	s=$(median "$work/results/$c.cold" 1)
	if [ -z "$fastest_s" ] || awk -v a="$s" -v b="$fastest_s" 'BEGIN { exit !(a < b) }'; then fastest=$c; fastest_s=$s; fi
done
ours_noop=$(median "$work/results/ours.noop" 1)
ours_rss_mib=$(awk -v k="$(maxcol "$work/results/ours.cold" "$work/results/ours.noop")" 'BEGIN { printf "%.1f", k / 1024 }')
if [ -n "$fastest" ]; then
	ratio=$(awk -v o="$ours_cold" -v f="$fastest_s" 'BEGIN { printf "%.2f", o / f }')
	if awk -v r="$ratio" -v m="$MAX_COLD_VS_FASTEST" 'BEGIN { exit !(r <= m) }'; then
		printf '  PASS cold sync %s s = %sx the fastest peer'"'"'s (%s, %s s) <= %sx\n' "$ours_cold" "$ratio" "$fastest" "$fastest_s" "$MAX_COLD_VS_FASTEST"
	else
		printf '  FAIL cold sync %s s = %sx the fastest peer'"'"'s (%s, %s s) > %sx\n' "$ours_cold" "$ratio" "$fastest" "$fastest_s" "$MAX_COLD_VS_FASTEST"; fail=1
	fi
else
	printf '  SKIP cold sync against the fastest peer: no peer in CONTENDERS\n'
fi
if [ -s "$work/results/skopeo.noop" ]; then
	skopeo_noop=$(median "$work/results/skopeo.noop" 1)
	ratio=$(awk -v s="$skopeo_noop" -v o="$ours_noop" 'BEGIN { printf "%.2f", s / o }')
	if awk -v r="$ratio" -v m="$MIN_NOOP_VS_SKOPEO" 'BEGIN { exit !(r >= m) }'; then
		printf '  PASS no-op sync %s s, skopeo sync'"'"'s %s s / ours = %sx >= %sx\n' "$ours_noop" "$skopeo_noop" "$ratio" "$MIN_NOOP_VS_SKOPEO"
	else
		printf '  FAIL no-op sync %s s, skopeo sync'"'"'s %s s / ours = %sx < %sx\n' "$ours_noop" "$skopeo_noop" "$ratio" "$MIN_NOOP_VS_SKOPEO"; fail=1
	fi
else
	printf '  SKIP no-op sync against skopeo: skopeo not in CONTENDERS\n'
fi
if awk -v r="$ours_rss_mib" -v m="$MAX_RSS_MIB" 'BEGIN { exit !(r < m) }'; then
	printf '  PASS peak RSS %s MiB < %s MiB\n' "$ours_rss_mib" "$MAX_RSS_MIB"
else
	printf '  FAIL peak RSS %s MiB >= %s MiB\n' "$ours_rss_mib" "$MAX_RSS_MIB"; fail=1
fi
exit "$fail"
