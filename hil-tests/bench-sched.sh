#!/usr/bin/env bash
# The layered scheduler's benchmark (`make bench` runs it): boots
# the QEMU board once with Debian's arm64 cyclictest and stress-ng, runs
# hil-tests/bench/sched-bench.sh there (default scheduler, a static cpuset
# partition and nodus, in rounds), and prints the critical task's wakeup
# latency and the hogs' throughput as ratios: medians of rounds, with their
# range.
#
#   hil-tests/bench-sched.sh [ROUNDS [SECONDS]]     (5 rounds of 10 s by default)
#
# Needs `make aarch64` (the binary) and the board (hil-tests/fetch.sh). The
# guest's packages are downloaded once into hil-tests/cache/bench-root
# (hil-tests/bench-root.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${1:-5}
secs=${2:-10}
cache=$here/cache/bench-root
log() { printf 'bench-sched: %s\n' "$*" >&2; }

"$here/bench-root.sh"

# The guest reads its rounds and run length from here.
mkdir -p "$cache/nodus-bench"
printf 'BENCH_ROUNDS=%s\nBENCH_SECONDS=%s\n' "$rounds" "$secs" >"$cache/nodus-bench/env"

out=$root/target/bench-sched
rm -rf "$out"
timeout_s=$((rounds * (18 * secs + 160) + 120))
log "$rounds rounds of ${secs} s per run (up to ${timeout_s} s)"
"$here/run.sh" --scenarios "$here/bench" --rootfs "$cache" --out "$out" \
  --timeout "$((timeout_s + 120))" --scenario-timeout "$timeout_s" \
  --only sched-bench >"$out.log" 2>&1 || {
  log "the board run failed:"
  tail -n 60 "$out.log" >&2
  exit 1
}
grep -a "@@BENCH" "$out/console.log" | sed 's/^\[sched-bench\] //' >"$out/results.txt"
grep -a "@@BENCH-STATUS" "$out/results.txt" | head -n 4 | sed 's/^@@BENCH-STATUS /  nodus status: /' || true

python3 - "$out/results.txt" <<'EOF'
import statistics, sys
rows = []
for line in open(sys.argv[1]):
    if not line.startswith("@@BENCH "):
        continue
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    rows.append(kv)
def values(cond, key):
    return [float(r[key]) for r in rows if r.get("condition") == cond and r.get(key)]
def med(cond, key):
    v = values(cond, key)
    return statistics.median(v) if v else float("nan")
def span(cond, key):
    v = values(cond, key)
    return f"{min(v):g}-{max(v):g}" if v else "-"
def ratio_range(a, b, key):
    # per-round ratios: the spread of the comparison itself
    ra = [float(r[key]) for r in rows if r.get("condition") == a]
    rb = [float(r[key]) for r in rows if r.get("condition") == b]
    rs = [x / y for x, y in zip(ra, rb) if y]
    return (statistics.median(rs), min(rs), max(rs)) if rs else (float("nan"),) * 3
n = len(values("nodus", "p99_us"))
print(f"sched bench on the QEMU board: {n} rounds, one boot")
print(f"{'condition':<14} {'p50 us':>14} {'p99 us':>16} {'max us':>8} {'samples':>8} {'bogo-ops w/ crit':>18} {'bogo-ops alone':>18}")
for c in ("default", "cpuset", "nodus", "nodus-confined"):
    print(f"{c:<14} {med(c,'p50_us'):>6g} ({span(c,'p50_us'):>9}) {med(c,'p99_us'):>7g} ({span(c,'p99_us'):>11}) "
          f"{med(c,'max_us'):>8g} {med(c,'samples'):>8g} {med(c,'bogo_ops_with_critical'):>18g} {med(c,'bogo_ops_alone'):>18g}")
def show(what, a, b, key, target):
    m, lo, hi = ratio_range(a, b, key)
    print(f"{what}: {m:.2f}x (rounds {lo:.2f}-{hi:.2f}; target {target})")
show("critical p99, nodus / default", "nodus", "default", "p99_us", "<= 0.5x")
show("critical p99, nodus-confined / default", "nodus-confined", "default", "p99_us", "<= 0.5x")
show("critical p99, nodus-confined / cpuset", "nodus-confined", "cpuset", "p99_us", "<= 1.2x")
show("background bogo-ops with the critical layer idle, default / cpuset", "default", "cpuset", "bogo_ops_alone", "- (4 CPUs vs 2: what the host gives the board)")
show("critical p99, nodus / cpuset", "nodus", "cpuset", "p99_us", "<= 1.2x")
show("critical p50, nodus / cpuset", "nodus", "cpuset", "p50_us", "-")
show("background bogo-ops with the critical layer idle, nodus / cpuset", "nodus", "cpuset", "bogo_ops_alone", ">= 1.3x")
show("background bogo-ops beside the critical task, nodus / cpuset", "nodus", "cpuset", "bogo_ops_with_critical", "-")
EOF
