# nodus sees the board as QEMU was told to build it: 2 NUMA nodes x 2 CPUs.
out=$(nodus profile show) || fail "nodus profile show exited $?"
echo "$out"
expect_line "^detected topology: 2 nodes: node0 cpus 0-1 \([0-9]+ MiB\), node1 cpus 2-3 \([0-9]+ MiB\)$" "$out" "topology"
expect_line "^  node0: .*distances 10 20$" "$out" "node distances"
# And it is an ARMv9-class CPU: SVE2 and MTE are visible to userspace.
features=$(grep -m1 '^Features' /proc/cpuinfo)
echo "$features"
for f in sve2 mte; do
  printf '%s\n' "$features" | grep -qw "$f" || fail "CPU feature $f missing: $features"
done
