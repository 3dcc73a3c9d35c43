#!/usr/bin/env bash
# NUMA locality's benchmark (`make bench` runs it): boots the QEMU board
# once with Debian's arm64 stress-ng, runs hil-tests/bench/numa-bench.sh
# there (kernel automatic NUMA balancing, DAMON migrate_hot if the kernel
# has it, and nodus, in rounds), and prints the time until a misplaced
# 256 MiB process is 90% local and the CPU spent, as ratios: medians of
# rounds, with their range.
#
#   hil-tests/bench-numa.sh [ROUNDS [LIMIT_SECONDS]]   (3 rounds, 180 s limit)
#
# Needs `make aarch64` (the binary) and the board (hil-tests/fetch.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${1:-3}
limit=${2:-180}
cache=$here/cache/bench-root
log() { printf 'bench-numa: %s\n' "$*" >&2; }

"$here/bench-root.sh"
mkdir -p "$cache/nodus-bench"
printf 'BENCH_ROUNDS=%s\nBENCH_LIMIT_S=%s\n' "$rounds" "$limit" >"$cache/nodus-bench/env"
# BENCH_CONDS="kernel nodus" runs only those conditions.
[ -z "${BENCH_CONDS:-}" ] || printf 'BENCH_CONDS="%s"\n' "$BENCH_CONDS" >>"$cache/nodus-bench/env"
# BENCH_WORKER=quiet: the worker writes its memory once, then sleeps.
[ -z "${BENCH_WORKER:-}" ] || printf 'BENCH_WORKER=%s\n' "$BENCH_WORKER" >>"$cache/nodus-bench/env"

out=$root/target/bench-numa
rm -rf "$out"
timeout_s=$((rounds * 3 * (limit + 150) + 120))
log "$rounds rounds (each run up to ${limit} s; the board run up to ${timeout_s} s)"
"$here/run.sh" --scenarios "$here/bench" --rootfs "$cache" --out "$out" \
  --timeout "$((timeout_s + 120))" --scenario-timeout "$timeout_s" \
  --only numa-bench >"$out.log" 2>&1 || {
  log "the board run failed:"
  tail -n 60 "$out.log" >&2
  exit 1
}
grep -a "@@BENCH\|DAMON sysfs\|worker: " "$out/console.log" | sed 's/^\[numa-bench\] //' >"$out/results.txt"
grep -a "DAMON sysfs" "$out/results.txt" | head -n 1 | sed 's/^/  /' || true
grep -a "@@BENCH-STATUS" "$out/results.txt" | tail -n 4 | sed 's/^@@BENCH-STATUS /  nodus status (last round): /' || true

python3 - "$out/results.txt" <<'EOF'
import statistics, sys
rows = []
worker = "busy"
for line in open(sys.argv[1]):
    if line.startswith("worker: "):
        worker = line.split()[1]
    if not line.startswith("@@BENCH "):
        continue
    rows.append(dict(f.split("=", 1) for f in line.split()[1:] if "=" in f))
conds = [c for c in ("kernel", "damon", "nodus") if any(r["condition"] == c for r in rows)]
def vals(c, k):
    return [float(r[k]) for r in rows if r["condition"] == c]
print(f"numa bench on the QEMU board: {len(vals('nodus', 'seconds'))} rounds, one boot; 256 MiB first touched on node 0, worker pinned to node 1; "
      + ("the worker rewrites it without pause" if worker == "busy" else "the worker wrote it once and sleeps"))
print(f"{'condition':<10} {'s to 90% local':>22} {'CPU s spent':>20} {'of which worker sys':>22} {'reached':>8}")
for c in conds:
    s, u, w, ok = vals(c, "seconds"), vals(c, "cpu_s"), vals(c, "worker_sys_s"), vals(c, "reached")
    print(f"{c:<10} {statistics.median(s):>8.2f} ({min(s):.2f}-{max(s):.2f}) {statistics.median(u):>8.2f} ({min(u):.2f}-{max(u):.2f}) "
          f"{statistics.median(w):>8.2f} ({min(w):.2f}-{max(w):.2f}) {int(sum(ok))}/{len(ok)}")
def ratio(a, b, k, what, target):
    ra, rb = vals(a, k), vals(b, k)
    rs = [x / y for x, y in zip(ra, rb) if y]
    if rs:
        missed = int(len(vals(a, "reached")) - sum(vals(a, "reached")))
        bound = f"; at least: {a} did not reach 90% within the limit in {missed} rounds" if k == "seconds" and missed else ""
        print(f"{what}: {statistics.median(rs):.2f}x (rounds {min(rs):.2f}-{max(rs):.2f}; target {target}{bound})")
ratio("kernel", "nodus", "seconds", "time to 90% local, kernel balancing / nodus", ">= 5x")
ratio("nodus", "kernel", "cpu_s", "CPU spent, nodus / kernel balancing", "<= 1x")
if "damon" in conds:
    ratio("damon", "nodus", "seconds", "time to 90% local, DAMON migrate_hot / nodus", "-")
    ratio("nodus", "damon", "cpu_s", "CPU spent, nodus / DAMON migrate_hot", "-")
EOF
