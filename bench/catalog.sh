#!/usr/bin/env bash
# bench/catalog.sh: benchmark the catalog publishing loop (push --focus ... --to
# PREFIX) against a real registry and a fake upstream on loopback, with the two
# benchmarks of plugins/push/bench_test.go, and print their figures.
#
#   BenchmarkCatalogNoop          a scheduled run that finds ~40 entries (~110
#                                 images) up to date: it must download no disk,
#                                 read one index per entry and no blob, and
#                                 take under 2 s
#   BenchmarkCatalogColdPush3Arch the first publish of one 3-arch entry of
#                                 1 GiB qcow2 disks to an empty registry with an
#                                 empty cache: throughput, peak RSS of the push
#                                 process, and the three downloads in parallel
#
# The benchmarks check their own acceptance lines and fail when one is missed;
# the script exits non-zero then.
#
# Usage: bench/catalog.sh        (from the repository root or from bench/)
# Knobs (environment):
#   NOOP_RUNS=10               no-op runs to average over
#   CATALOG_BENCH_SIZE_MIB=1024  about the size of each qcow2 file of the cold
#                              push (its virtual size is a third larger); 64 for
#                              a quick run
#   COLD_RUNS=1                cold pushes (a fresh registry and cache each)
# The same by hand, without this script:
#   go test ./plugins/push -run '^$' -bench 'CatalogNoop$' -benchtime=10x
#   go test ./plugins/push -run '^$' -bench 'CatalogColdPush3Arch$' -benchtime=1x -timeout 60m
set -euo pipefail

NOOP_RUNS=${NOOP_RUNS:-10}
COLD_RUNS=${COLD_RUNS:-1}
export CATALOG_BENCH_SIZE_MIB=${CATALOG_BENCH_SIZE_MIB:-1024}

# The script lives in bench/; everything runs from the repository root so
# that it works from either directory.
cd "$(dirname "$0")/.."

log() { printf '%s\n' "$*" >&2; }
die() { log "Error: $*"; exit 2; }

command -v go >/dev/null || die "the go command is missing: install Go 1.26 or later"
command -v qemu-img >/dev/null || die "qemu-img is missing: install it with 'apt-get install -y qemu-utils' (or run 'make deps')"

work=$(mktemp -d "${TMPDIR:-/tmp}/containerdisk-catalog-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# bench NAME RUNS runs one benchmark, showing its output on stderr as it
# goes, and keeps it in $work/NAME.out; it returns go test's status.
bench() {
	local name=$1 runs=$2
	log "== $name ($runs run(s))"
	go test ./plugins/push -run '^$' -bench "^Benchmark$name\$" -benchtime "${runs}x" -timeout 60m -v 2>&1 |
		tee "$work/$name.out" >&2
}

# figures NAME prints the metrics of NAME's result line, one "metric value"
# a line; a result line is "BenchmarkNAME-CPUS N VALUE UNIT VALUE UNIT ...".
figures() {
	awk -v name="Benchmark$1" '
		$1 ~ "^" name "(-[0-9]+)?$" && NF > 2 {
			for (i = 3; i < NF; i += 2) printf "  %-32s %s\n", $(i + 1), $i
		}' "$work/$1.out"
}

fail=0
bench CatalogNoop "$NOOP_RUNS" || fail=1
bench CatalogColdPush3Arch "$COLD_RUNS" || fail=1

printf '\nNo-op catalog run: every entry up to date, %s runs, workers 8\n' "$NOOP_RUNS"
figures CatalogNoop
printf '\nCold push of one entry, 3 arches of about %s MiB each, %s run(s); %s CPUs\n' \
	"$CATALOG_BENCH_SIZE_MIB" "$COLD_RUNS" "$(nproc)"
figures CatalogColdPush3Arch
cat <<'EOF'

ms/run: mean wall time of a no-op run; registry-requests/run: HEAD and GET of
manifests and blobs (one GET of each entry's index); blob-bytes-out/run: blob
bytes the registry sent (none: the index records the checksums);
upstream-metadata-requests/run: release lists,
checksum files and directory indexes read upstream.
MiB/s: the three disk files' size / the wall time of the push process;
peak-RSS-MiB and cpu-s/run: of the push process alone (getrusage), not of the
registry or the upstream; download-s, layers-s, upload-s: the phases (command
start to the last disk sent, to the first blob byte received, to the last);
download-parallelism: summed download time / time any download was under way
(3 = fully parallel, 1 = one after the other).
EOF
if [ "$fail" != 0 ]; then
	printf '\nFAIL: a benchmark missed its acceptance line; see its output above\n'
fi
exit "$fail"
