# bench/lib.sh: what the benchmark scripts share. Source it from the
# repository root.

log() { printf '%s\n' "$*" >&2; }
die() { log "Error: $*"; exit 2; }

# CACHE keeps what a run builds or downloads (disks, peer binaries) for the
# next one.
CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-containerdisk-bench}

# Other processes competing for the CPUs make wall times meaningless:
# measure how busy the CPUs are for a second and say so up front rather
# than publish skewed figures silently.
cpu_busy() {
	local a b
	a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat); sleep 1
	b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); u = y[1] - x[1]; i = y[2] - x[2]; printf "%.0f", 100 * u / (u + i) }'
}

# warn_if_busy warns, with the busiest processes, when the CPUs are more
# than 10% busy.
warn_if_busy() {
	local busy
	busy=$(cpu_busy)
	if [ "$busy" -gt 10 ]; then
		log "Warning: the CPUs are ${busy}% busy before the benchmark; other processes compete with it:"
		top -b -n 1 -o %CPU | sed -n '7,11p' | cut -c1-100 >&2
	fi
}
