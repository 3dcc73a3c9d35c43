//! Every eBPF object nodus embeds, once: its name (the program binary in
//! `ebpf/programs` that builds it), the programs it must contain and the
//! maps userspace opens by name.
//!
//! The build checks every object against this list (each listed program and
//! map must be a symbol of the object), and userspace names programs and
//! maps only through these constants, so a renamed map is a build error,
//! not a runtime "map missing".

/// One embedded object, as the build checks it.
#[derive(Clone, Copy, Debug)]
pub struct Object {
    /// The file name (and the program binary's name).
    pub name: &'static str,
    /// The C source it is compiled from (relative to the workspace), for
    /// the objects libbpf loads; `None`: a program binary of
    /// `ebpf/programs`.
    pub c_source: Option<&'static str>,
    /// Programs userspace loads from it.
    pub programs: &'static [&'static str],
    /// Maps userspace opens by name.
    pub maps: &'static [&'static str],
}

macro_rules! maybe {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}

macro_rules! objects {
    ($(
        $(#[doc = $doc:literal])+
        $module:ident {
            $(c_source: $c_source:literal,)?
            programs: [$($program:ident),* $(,)?],
            maps: [$($map:ident),* $(,)?] $(,)?
        }
    )*) => {
        $(
            $(#[doc = $doc])+
            pub mod $module {
                /// The object, as the build checks it.
                pub const OBJECT: super::Object = super::Object {
                    name: stringify!($module),
                    c_source: maybe!($($c_source)?),
                    programs: &[$(stringify!($program)),*],
                    maps: &[$(stringify!($map)),*],
                };
                /// Its programs' names.
                #[allow(non_upper_case_globals)]
                pub mod programs {
                    $(
                        #[doc = concat!("`", stringify!($program), "`.")]
                        pub const $program: &str = stringify!($program);
                    )*
                }
                /// Its maps' names.
                #[allow(non_upper_case_globals)]
                pub mod maps {
                    $(
                        #[doc = concat!("`", stringify!($map), "`.")]
                        pub const $map: &str = stringify!($map);
                    )*
                }
            }
        )*

        /// Every object, in build order.
        pub const ALL: &[Object] = &[$($module::OBJECT),*];
    };
}

objects! {
    /// Tiny map-less programs of each type `nodus probe` checks.
    probe {
        programs: [probe_tracepoint, probe_tc, probe_xdp, probe_reuseport, probe_fentry],
        maps: [],
    }
    /// Ring-buffer probe: a RINGBUF map and a program writing to it.
    probe_ringbuf {
        programs: [probe_ringbuf],
        maps: [PROBE_EVENTS],
    }
    /// Socket-map probe: a SOCKHASH map and an sk_skb stream verdict program.
    probe_sockhash {
        programs: [probe_verdict],
        maps: [PROBE_SOCKS],
    }
    /// Process cache: fork/exec/exit raw tracepoints feeding a ring buffer.
    proccache {
        programs: [proccache_fork, proccache_exec, proccache_exit],
        maps: [PROC_EVENTS, PROC_DROPS],
    }
    /// File-server connection steering: an sk_reuseport program choosing the
    /// listening socket of the worker on the CPU that received the connection.
    fileserver_reuseport {
        programs: [fileserver_reuseport],
        maps: [FS_SOCKETS, FS_CPU_SLOT, FS_STEER_STATS],
    }
    /// File-server request classifier: a TC ingress program counting requests
    /// by method and path class.
    fileserver_tc {
        programs: [fileserver_tc],
        maps: [FS_TC_CONFIG, FS_REQUESTS],
    }
    /// Page-cache hits and misses: the filemap tracepoints counting pages
    /// accessed and inserted per file, process and cgroup, exec keeping the
    /// processes' names current, and (where the kernel allows fentry)
    /// fentry/fexit around the read, splice and fault paths for exact hits.
    pagecache {
        programs: [
            pagecache_get_pages, pagecache_fault, pagecache_add, pagecache_exec,
            pagecache_read_entry, pagecache_read_exit, pagecache_splice_entry,
            pagecache_splice_exit, pagecache_fault_exit,
        ],
        maps: [
            PC_TOTALS, PC_FILES, PC_PROCESSES, PC_NAMES, PC_CGROUPS, PC_READS, PC_CALLS,
            PC_FRESH, PC_EVENTS, PC_DROPS,
        ],
    }
    /// The proxy's sockhash data path: an sk_skb stream verdict program
    /// redirecting each relayed socket's bytes to its peer's socket.
    proxy_sockhash {
        programs: [proxy_verdict],
        maps: [PROXY_SOCKS, PROXY_PEERS, PROXY_BYTES, PROXY_VERDICTS],
    }
    /// The proxy's XDP guard: drops SYNs to the listening port from
    /// blocklisted prefixes or over a per-source rate, counting each.
    proxy_guard {
        programs: [proxy_guard],
        maps: [GUARD_CONFIG, GUARD_BLOCKLIST, GUARD_SOURCES, GUARD_COUNTS],
    }
    /// NUMA locality: per-process runs, switches, run-queue wait, CPU
    /// and node migrations and (where the CPU has counters) instructions,
    /// cycles and cache misses from the scheduler's tracepoints, and opens of
    /// the profile's accelerator devices (`chrdev_open`).
    numa {
        programs: [numa_switch, numa_wakeup, numa_wakeup_new, numa_migrate, numa_dev_open_exit, numa_dev_open, numa_dev_opened],
        maps: [NUMA_TASKS, NUMA_QUEUED, NUMA_RUNNING, NUMA_RUNNING_TGID, NUMA_PMU_INSTRUCTIONS, NUMA_PMU_CYCLES, NUMA_PMU_CACHE_MISSES, NUMA_PMU_AT, NUMA_CPU_NODE, NUMA_DEVICES, NUMA_OPENING, NUMA_OPENS, NUMA_DROPS],
    }
    /// The sched_ext layered scheduler (C, loaded by libbpf: aya cannot
    /// load struct_ops): its callbacks, the program rebuilding its CPU
    /// sets after an ownership change, and a test program running its
    /// match rules on facts userspace gives it.
    sched {
        c_source: "ebpf/sched/nodus_sched.bpf.c",
        programs: [
            nodus_select_cpu, nodus_enqueue, nodus_dispatch, nodus_runnable, nodus_running,
            nodus_stopping, nodus_set_weight, nodus_set_cpumask, nodus_enable, nodus_init_task, nodus_exit_task,
            nodus_init, nodus_exit, nodus_refresh_masks, nodus_match_test,
        ],
        maps: [
            nodus_ops, NODUS_GLOBAL, NODUS_LAYERS, NODUS_CPUS, NODUS_CPU_STATE, NODUS_CGROUPS,
            NODUS_EXES, NODUS_PROCS, NODUS_STATS, NODUS_TASKS, NODUS_VTIME, NODUS_EXIT,
            NODUS_MASKS, NODUS_SCRATCH,
        ],
    }
}
