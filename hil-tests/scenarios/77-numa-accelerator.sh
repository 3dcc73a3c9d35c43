# Accelerator locality: a process that opens one of the profile's
# accelerators (a character device node this scenario makes, declared
# with node 1 in hil-tests/profiles/qemu-virt-numa-npu.toml) is seen in
# the kernel (fexit on chrdev_open: a BPF link, no perf_event_open, so a
# service unit denying that system call loses nothing) and placed on the
# device's node: its CPU affinity set to node 1's CPUs, its memory moved
# there. An open that fails (a device number with no driver) is not a use.
mknod /dev/fake-npu0 c 1 7 || fail "mknod"
mknod /dev/fake-npu1 c 511 0 || fail "mknod"

# A shell holding 32 MiB first-touched on node 0 (pinned there while it
# fills), then trying npu1, then opening npu0 and sleeping; comm is the
# script's name.
cat >/tmp/infer <<'EOF'
#!/bin/sh
s=x
i=0
while [ $i -lt 25 ]; do s="$s$s"; i=$((i + 1)); done
: >/tmp/infer.filled
until [ -f /tmp/infer.go ]; do sleep 0.1; done
# (in a subshell: a failed redirection of exec ends the shell)
(exec 4</dev/fake-npu1) 2>/dev/null
exec 3</dev/fake-npu0
: >/tmp/infer.opened
# Waking five times a second: the scheduler matches a task again when it
# wakes.
while :; do sleep 0.2; done
EOF
chmod +x /tmp/infer
rm -f /tmp/infer.filled /tmp/infer.go /tmp/infer.opened
taskset -c 0-1 /tmp/infer 2>/dev/null &
user=$!
wait_file /tmp/infer.filled 60 "the 32 MiB process did not fill its memory"

# pages_on PID NODE: the process's pages on NODE by /proc/PID/numa_maps.
pages_on() {
  n=0
  for v in $(grep -o "N$2=[0-9]*" "/proc/$1/numa_maps" | cut -d= -f2); do n=$((n + v)); done
  echo "$n"
}

printf '[profile]\npath = "/nodus/profiles/qemu-virt-numa-npu.toml"\n[numa]\ninterval_ms = 500\n' >/tmp/numa-npu.toml
nodus_start --config /tmp/numa-npu.toml
wait_status "^      accelerators +npu0 /dev/fake-npu0 node1: no users; npu1 /dev/fake-npu1 node1: no users$" 60 ||
  fail "the accelerators are not watched: $(nodus status)"
wait_status "^      layers +npu-users: grouped, [0-9]+ cpus, [0-9]+% busy, 0 tasks" 30 ||
  fail "the scheduler is not running with the npu-users layer empty: $(nodus status | grep -E 'layers|state')"
out=$(nodus status)
expect_line "^  numa +healthy" "$out" "numa healthy (the device watch attached)"
expect_line "^      accelerator_watch +fexit on chrdev_open$" "$out" "the opens seen by fexit (the board has fentry)"
# kprobes would hold a perf event open (aya attaches them through
# perf_event_open); fexit holds a BPF link only.
perf=$(ls -l "/proc/$NODUS_PID/fd" | grep -c "perf_event" || true)
[ "$perf" = 0 ] || fail "nodus holds $perf perf events: $(ls -l /proc/$NODUS_PID/fd | grep -E 'perf|bpf')"
before=$(pages_on "$user" 0)
echo "before the open: $before pages on node 0, $(pages_on "$user" 1) on node 1; affinity $(taskset -p "$user")"

: >/tmp/infer.go
wait_status "^      accelerators +npu0 /dev/fake-npu0 node1: infer $user \([0-9]+ threads pinned to cpus 2-3\); npu1 /dev/fake-npu1 node1: no users$" 10 ||
  fail "the open of npu0 was not seen or not placed: $(nodus status)"
[ -f /tmp/infer.opened ] || fail "the process did not open the device"
mask=$(taskset -p "$user" | sed 's/.*: //')
[ "$mask" = c ] || fail "affinity mask $mask after the open, want c (CPUs 2-3)"
out=$(nodus status)
echo "$out" | grep -E "accelerator|infer" | cut -c1-300
expect_line "^      accelerator_opens +1$" "$out" "one successful open (the failed one is not counted)"
wait_status "infer $user: [0-9]+ MiB,.* home node1 \(device npu0\)" 5 ||
  fail "home not by the device at the next look: $(nodus status | grep processes)"
grep -q "numa: infer $user opened npu0 (/dev/fake-npu0): home node1, 1 threads pinned to cpus 2-3" "$NODUS_LOG" ||
  fail "no log line for the placement"

# The scheduler's layer for npu0's users takes it (the layer's device
# rule, from what the numa component saw), and only it.
wait_status "^      layers +npu-users: grouped, [0-9]+ cpus, [0-9]+% busy, 1 tasks" 10 ||
  fail "the accelerator's user is not in the npu-users layer: $(nodus status | grep -E 'layers|state')"
nodus status | grep -E "^      (state|layers) "

# Its memory follows: the mover brings what it holds on node 0 home.
i=0
while :; do
  on1=$(pages_on "$user" 1) on0=$(pages_on "$user" 0)
  [ $((on1 * 100)) -ge $(((on0 + on1) * 90)) ] && break
  i=$((i + 1))
  [ "$i" -lt 60 ] || fail "memory not moved to node 1 within 30 s: $on0 pages on node 0, $on1 on node 1"
  sleep 0.5
done
echo "after: $on0 pages on node 0, $on1 on node 1"

kill "$user"
nodus_stop
rm -f /dev/fake-npu0 /dev/fake-npu1
