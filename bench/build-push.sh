#!/usr/bin/env bash
# bench/build-push.sh: build and push a 1 GiB qcow2 containerdisk to a real
# registry on loopback, and compare kubectl-containerdisk with the approach of
# kubevirt/containerdisks (go-containerregistry's tarball.LayerFromOpener +
# remote.Write) and with `oras push` of the same pre-made layer tarball.
#
# It checks the acceptance line "one read of the input, streaming, constant
# memory (peak RSS under 100 MiB), at least 2x the go-containerregistry
# approach with gzip on 2 cores" and exits non-zero when ours-gzip misses it.
#
# Usage: bench/build-push.sh        (from the repository root or from bench/)
# Knobs (environment):
#   REPS=3                 repetitions of every contender; the table shows medians
#   DISK_VIRTUAL_MIB=1365  virtual size of the generated disk; a quarter of it is
#                          holes, so 1365 gives a qcow2 file of about 1 GiB
#   BENCH_CACHE=DIR        where the disk and the oras binary are kept between
#                          runs (default ${XDG_CACHE_HOME:-~/.cache}/kubectl-containerdisk-bench)
#   STRACE_CHECK=1         count the bytes each contender reads from the disk
#                          file (one untimed run under strace); 0 skips it
# To see where ours spends its time, bench/phases times the layer and upload
# phases through the same library calls and writes a CPU profile:
#   (cd bench && go run ./phases -cpuprofile cpu.prof DISK HOST/REPO:TAG)
set -euo pipefail

# --- Acceptance thresholds (ours-gzip, built straight to the registry) -------
MAX_RSS_MIB=100          # peak RSS must stay below this
MIN_SPEEDUP_VS_GGCR=2.0  # throughput must be at least this multiple of ggcr's
MAX_INPUT_READS=1.05     # bytes read from the disk file / its size (one read;
                         # the qcow2 header and tables checks add a little)

REPS=${REPS:-3}
DISK_VIRTUAL_MIB=${DISK_VIRTUAL_MIB:-1365}
ORAS_VERSION=v1.3.6
STRACE_CHECK=${STRACE_CHECK:-1}

# The script lives in bench/; everything runs from the repository root so
# that it works from either directory.
cd "$(dirname "$0")/.."
root=$PWD

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

# --- Tools ------------------------------------------------------------------
# GNU time gives wall time, CPU time and peak RSS of a child process.
if [ ! -x /usr/bin/time ]; then
	[ "$(id -u)" = 0 ] || die "/usr/bin/time is missing: install it with 'sudo apt-get install -y time'"
	log "Installing GNU time"
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >&2
fi
command -v qemu-img >/dev/null || die "qemu-img is missing: install it with 'apt-get install -y qemu-utils' (or run 'make deps')"
command -v curl >/dev/null || die "curl is missing: install it with 'apt-get install -y curl'"
if [ "$STRACE_CHECK" = 1 ] && ! command -v strace >/dev/null; then
	log "strace is missing: skipping the one-read check (install it with 'apt-get install -y strace')"
	STRACE_CHECK=0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/containerdisk-bench.XXXXXX")
reg_pid=
cleanup() {
	if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/bin" "$work/results" "$CACHE"

log "== Building the tools"
make build >&2
ours_build=$root/bin/kubectl-containerdisk-build
ours_push=$root/bin/kubectl-containerdisk-push
go build -o "$work/bin/registry" ./hack/registry
(cd bench && go build -o "$work/bin/ggcr-build" ./ggcr-build)
# oras is built once per version into the cache, in a scratch directory so
# that no go.mod around it takes part.
oras=$CACHE/oras-$ORAS_VERSION/oras
if [ ! -x "$oras" ]; then
	log "Building oras $ORAS_VERSION (once; cached in $CACHE)"
	scratch=$(mktemp -d "$work/oras-build.XXXXXX")
	(cd "$scratch" && GOBIN="$CACHE/oras-$ORAS_VERSION" go install "oras.land/oras/cmd/oras@$ORAS_VERSION")
fi

# --- The disk ---------------------------------------------------------------
# Made once and cached; the key includes the generator's source so a change
# to the content it writes makes a new disk.
gen_key=$(cat hack/mkdisk/*.go internal/testdisk/testdisk.go | sha256sum | cut -c1-12)
disk=$CACHE/disk-$DISK_VIRTUAL_MIB-$gen_key.qcow2
if [ ! -s "$disk" ]; then
	log "== Making the disk (virtual $DISK_VIRTUAL_MIB MiB: holes, text-like and random 64 KiB blocks)"
	go run ./hack/mkdisk qcow2 "$disk.tmp" "$DISK_VIRTUAL_MIB"
	mv "$disk.tmp" "$disk"
fi
disk_bytes=$(stat -c %s "$disk")
disk_mib=$(awk -v b="$disk_bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
log "disk: $disk, $disk_bytes bytes ($disk_mib MiB)"

# --- Registry: a fresh one, with fresh storage, for every single run ----------
# so that no contender finds a blob another one uploaded, and what a run
# stores is exactly what it uploaded.
reg_n=0
start_registry() {
	reg_n=$((reg_n + 1))
	reg_dir=$work/registry-$reg_n
	"$work/bin/registry" "$reg_dir" > "$reg_dir.host" &
	reg_pid=$!
	for _ in $(seq 100); do [ -s "$reg_dir.host" ] && break; sleep 0.05; done
	host=$(cat "$reg_dir.host")
	[ -n "$host" ] || die "the registry did not start"
}
# stop_registry REPO checks that the tag is there, sets layer_bytes to the
# size of the largest blob stored (the layer), and stops the registry.
stop_registry() {
	local repo=$1 largest
	curl -sf -o /dev/null \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
		"http://$host/v2/$repo/manifests/1" || die "the registry has no manifest $repo:1"
	largest=$(find "$reg_dir/docker/registry/v2/blobs" -type f -name data -printf '%s\n' | sort -n | tail -1)
	kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; reg_pid=
	rm -rf "$reg_dir"
	# A layer this small means nothing was really uploaded.
	[ "${largest:-0}" -gt 1048576 ] || die "the registry stored no layer for $repo (largest blob ${largest:-0} bytes)"
	layer_bytes=$largest
}

# timed FILE CMD... runs CMD, appending "wall cpu rss_kib" to FILE.
timed() {
	local out=$1; shift
	/usr/bin/time -f '%e %U %S %M' -o "$out.t" "$@" > /dev/null
	awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$out.t" >> "$out"
}

# layer_of LAYOUT prints the path of the largest blob of an OCI layout: its layer.
layer_of() { find "$1/blobs/sha256" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-; }

# Contenders. ours-*: kubectl-containerdisk build straight to the registry.
# ours2-*: the two-step variant, build to an OCI layout, then push.
contenders=(ours-gzip ours-zstd ours-none ours2-gzip ours2-zstd ours2-none ggcr-gzip oras-gzip)

# run NAME REP: one timed run of a contender against a fresh registry; it
# appends "wall cpu rss_kib layer_bytes" to results/NAME.
run() {
	local name=$1 rep=$2 res=$work/results/$1 comp=${1#*-} t=$work/results/$1.step
	local repo=bench/$name
	rm -f "$t"
	start_registry
	case $name in
	ours-*)
		mkdir -p "$work/tmp"
		timed "$t" "$ours_build" -q --compression "$comp" --disk amd64="$disk" --temp-dir "$work/tmp" "$host/$repo:1"
		;;
	ours2-*)
		# A fresh layout each time: build skips blobs a layout already has.
		rm -rf "$work/layout-$comp"; mkdir -p "$work/tmp"
		timed "$t" "$ours_build" -q --compression "$comp" --disk amd64="$disk" --temp-dir "$work/tmp" "oci:$work/layout-$comp:1"
		timed "$t" "$ours_push" -q --dry-run=false "oci:$work/layout-$comp:1" "$host/$repo:1"
		# oras pushes the very gzip layer our build made.
		if [ "$comp" = gzip ] && [ ! -e "$work/oras/layer.tar.gz" ]; then
			mkdir -p "$work/oras"; cp "$(layer_of "$work/layout-gzip")" "$work/oras/layer.tar.gz"
		fi
		;;
	ggcr-gzip)
		timed "$t" "$work/bin/ggcr-build" "$disk" "$host/$repo:1"
		;;
	oras-gzip)
		# From the tarball's directory, so the file is named plainly in the artifact.
		timed "$t" sh -c 'cd "$1" && exec "$2" push --plain-http --no-tty "$3" layer.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip' \
			sh "$work/oras" "$oras" "$host/$repo:1"
		;;
	esac
	stop_registry "$repo"
	# Steps add up in time and CPU; the peak RSS is the larger one.
	awk -v layer="$layer_bytes" '{ w += $1; c += $2; if ($3 > r) r = $3 } END { printf "%.2f %.2f %d %d\n", w, c, r, layer }' "$t" >> "$res"
	if [ "$(wc -l < "$t")" -gt 1 ]; then
		awk '{ printf "%s%.2f", (NR > 1 ? " + " : ""), $1 }' "$t" >> "$res.steps"; echo >> "$res.steps"
	fi
	log "  rep $rep $name: $(tail -1 "$res" | awk '{ printf "%.2f s, %.2f CPU s, %.1f MiB RSS, layer %.1f MiB", $1, $2, $3 / 1024, $4 / 1048576 }')"
	rm -rf "$work/tmp"
}

warn_if_busy

log "== Running ${#contenders[@]} contenders, $REPS repetitions each (a fresh registry per run)"
for rep in $(seq "$REPS"); do
	for c in "${contenders[@]}"; do
		run "$c" "$rep"
	done
done

# --- One read of the input --------------------------------------------------
# Untimed runs under strace; bench/input-reads.awk adds up the bytes read
# from the disk file's descriptors (read, pread64, sendfile, copy_file_range).
declare -A reads=()
if [ "$STRACE_CHECK" = 1 ]; then
	log "== Counting the bytes read from the disk file (strace, untimed)"
	count_reads() {
		strace -f -qq -s 0 -e trace=openat,close,read,pread64,sendfile,copy_file_range -e signal=none \
			-o "$work/strace.log" "$@" > /dev/null
		awk -v path="$disk" -v size="$disk_bytes" -f bench/input-reads.awk "$work/strace.log"
	}
	start_registry
	reads[ours-gzip]=$(mkdir -p "$work/tmp" && count_reads "$ours_build" -q --compression gzip --disk amd64="$disk" --temp-dir "$work/tmp" "$host/bench/reads-ours:1")
	reads[ggcr-gzip]=$(count_reads "$work/bin/ggcr-build" "$disk" "$host/bench/reads-ggcr:1")
	kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; reg_pid=; rm -rf "$reg_dir" "$work/tmp"
fi

# --- Table ------------------------------------------------------------------
# median FILE COLUMN
median() { awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxcol() { awk -v c="$2" '$c > m { m = $c } END { print m }' "$1"; }

ggcr_s=$(median "$work/results/ggcr-gzip" 1)
oras_s=$(median "$work/results/oras-gzip" 1)
printf '\nBuild+push of a %s MiB qcow2 (virtual %s MiB) to a registry on loopback; %s CPUs; median of %s runs\n' \
	"$disk_mib" "$DISK_VIRTUAL_MIB" "$(nproc)" "$REPS"
printf '%-11s %8s %8s %8s %9s %9s %8s %8s %7s\n' contender seconds MiB/s CPU-s RSS-MiB layerMiB vs-ggcr vs-oras reads
for c in "${contenders[@]}"; do
	f=$work/results/$c
	s=$(median "$f" 1)
	awk -v c="$c" -v s="$s" -v cpu="$(median "$f" 2)" -v rss="$(maxcol "$f" 3)" -v layer="$(median "$f" 4)" \
		-v mib="$disk_mib" -v g="$ggcr_s" -v o="$oras_s" -v r="${reads[$c]:--}" 'BEGIN {
		printf "%-11s %8.2f %8.1f %8.2f %9.1f %9.1f %7.2fx %7.2fx %7s\n", c, s, mib / s, cpu, rss / 1024, layer / 1048576, g / s, o / s, r }'
done
cat <<EOF

seconds: median wall time; MiB/s: disk file size / seconds; CPU-s: user+sys of the
contender (the registry's is not counted); RSS-MiB: peak RSS, highest of the runs;
vs-ggcr, vs-oras: speedup (the other's seconds / these seconds; >1 is faster);
reads: bytes read from the disk file / its size ("-": not measured).
ours-*: kubectl-containerdisk build straight to the registry (one pass into a temp file, then upload).
ours2-*: build to oci:DIR, then kubectl-containerdisk push (times and CPU added up).
ggcr-gzip: go-containerregistry v0.22.1 tarball.LayerFromOpener + remote.Write (kubevirt/containerdisks).
oras-gzip: oras $ORAS_VERSION push of the gzip layer tarball ours2-gzip made; its time EXCLUDES making the tarball.
EOF
for c in "${contenders[@]}"; do
	[ -s "$work/results/$c.steps" ] && printf '%s steps (build + push, s): %s\n' "$c" "$(paste -sd, "$work/results/$c.steps" | sed 's/,/, /g')"
done

# --- Acceptance ---------------------------------------------------------------
ours_s=$(median "$work/results/ours-gzip" 1)
ours_rss_mib=$(awk -v k="$(maxcol "$work/results/ours-gzip" 3)" 'BEGIN { printf "%.1f", k / 1024 }')
speedup=$(awk -v g="$ggcr_s" -v s="$ours_s" 'BEGIN { printf "%.2f", g / s }')
fail=0
printf '\nAcceptance (ours-gzip):\n'
if awk -v r="$ours_rss_mib" -v m="$MAX_RSS_MIB" 'BEGIN { exit !(r < m) }'; then
	printf '  PASS peak RSS %s MiB < %s MiB\n' "$ours_rss_mib" "$MAX_RSS_MIB"
else
	printf '  FAIL peak RSS %s MiB >= %s MiB\n' "$ours_rss_mib" "$MAX_RSS_MIB"; fail=1
fi
if awk -v s="$speedup" -v m="$MIN_SPEEDUP_VS_GGCR" 'BEGIN { exit !(s >= m) }'; then
	printf '  PASS throughput %sx ggcr >= %sx\n' "$speedup" "$MIN_SPEEDUP_VS_GGCR"
else
	printf '  FAIL throughput %sx ggcr < %sx\n' "$speedup" "$MIN_SPEEDUP_VS_GGCR"; fail=1
fi
if [ -n "${reads[ours-gzip]:-}" ]; then
	if awk -v r="${reads[ours-gzip]}" -v m="$MAX_INPUT_READS" 'BEGIN { exit !(r <= m) }'; then
		printf '  PASS input read %sx its size (one read)\n' "${reads[ours-gzip]}"
	else
		printf '  FAIL input read %sx its size, more than one read (> %s)\n' "${reads[ours-gzip]}" "$MAX_INPUT_READS"; fail=1
	fi
fi
exit "$fail"
