# nodus recognises the board as qemu-virt-numa, pins every thread to node 1's
# CPUs with memory bound to node 1, moves the NIC's interrupts to node 0, sets
# its sysctls, and puts every original value back on stop.
irqs=$(ls /sys/class/net/eth0/device/../msi_irqs 2>/dev/null)
[ -n "$irqs" ] || fail "no MSI interrupts found for eth0"
before_irq=""
for i in $irqs; do before_irq="$before_irq $i=$(cat /proc/irq/$i/smp_affinity_list)"; done
before_numa=$(cat /proc/sys/kernel/numa_balancing)
before_stat=$(cat /proc/sys/vm/stat_interval)
echo "before: irqs$before_irq numa_balancing=$before_numa stat_interval=$before_stat"

nodus_start
out=$(nodus status) || fail "nodus status exited $?"
echo "$out"
expect_line "^  profile +healthy" "$out" "profile component"
expect_line "^      profile +qemu-virt-numa$" "$out" "chosen profile"
expect_line "^      runtime_cpus +2-3$" "$out" "runtime CPUs"

for t in /proc/$NODUS_PID/task/*; do
  allowed=$(sed -n 's/^Cpus_allowed_list:\t*//p' "$t/status")
  # File-server workers are each pinned to one CPU of the runtime's set.
  case "$(cat "$t/comm"):$allowed" in nodus-fs-[0-9]*:2|nodus-fs-[0-9]*:3|nodus-proc-even:3) continue ;; esac
  [ "$allowed" = "2-3" ] || fail "thread $(basename "$t") ($(cat "$t/comm")) runs on $allowed, profile says 2-3"
done
grep -q " bind:1 " /proc/$NODUS_PID/numa_maps || fail "memory policy is not bind:1: $(head -3 /proc/$NODUS_PID/numa_maps)"
for i in $irqs; do
  now=$(cat /proc/irq/$i/smp_affinity_list)
  [ "$now" = "0-1" ] || fail "irq $i affinity $now, profile says 0-1 (node 0)"
done
[ "$(cat /proc/sys/kernel/numa_balancing)" = 0 ] || fail "numa_balancing not 0"
[ "$(cat /proc/sys/vm/stat_interval)" = 3 ] || fail "stat_interval not 3"

nodus_stop
after_irq=""
for i in $irqs; do after_irq="$after_irq $i=$(cat /proc/irq/$i/smp_affinity_list)"; done
[ "$after_irq" = "$before_irq" ] || fail "irq affinity not restored:$after_irq vs$before_irq"
[ "$(cat /proc/sys/kernel/numa_balancing)" = "$before_numa" ] || fail "numa_balancing not restored"
[ "$(cat /proc/sys/vm/stat_interval)" = "$before_stat" ] || fail "stat_interval not restored"
echo "applied and restored: irqs$after_irq numa_balancing=$before_numa stat_interval=$before_stat"
