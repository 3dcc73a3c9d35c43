/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Types the nodus scheduler (nodus_sched.bpf.c) shares with userspace.
 *
 * The Rust side mirrors each one in nodus_common::sched; the build passes the
 * Rust sizes and offsets in as NODUS_SCHED_* macros (xtask writes
 * sched_layout.h) and the static asserts below refuse to compile when the two
 * disagree, so a map value can never be misread.
 */
#ifndef NODUS_SCHED_H
#define NODUS_SCHED_H

/* At most this many layers; the default layer (tasks no rule matches) is
 * one more, at index nr_layers. */
#define NODUS_MAX_LAYERS 16
/* Match rules per layer. */
#define NODUS_MAX_RULES 8
/* CPUs the scheduler knows; higher CPUs are never dispatched to. */
#define NODUS_MAX_CPUS 512
/* Scheduling domains (NUMA nodes, or LLCs): one dispatch queue per layer
 * and domain. */
#define NODUS_MAX_DOMS 8
/* Wakeup-latency histogram buckets: bucket b counts waits of [2^b, 2^(b+1))
 * nanoseconds; the last bucket takes everything longer. */
#define NODUS_LAT_BUCKETS 32

/* No layer, or no owner. */
#define NODUS_NONE 0xffffffffu

/* Layer kinds (profile `policy`). */
#define NODUS_LAYER_CONFINED 0
#define NODUS_LAYER_GROUPED 1
#define NODUS_LAYER_OPEN 2

/* Rule kinds (profile `match`). */
#define NODUS_RULE_COMM 1   /* comm starts with a prefix: masked compare */
#define NODUS_RULE_NICE 2   /* nice in [lo, hi] */
#define NODUS_RULE_UID 3    /* effective uid == lo */
#define NODUS_RULE_CGROUP 4 /* the task's cgroup has this layer's bit in NODUS_CGROUPS */
#define NODUS_RULE_EXE 5    /* the task's executable has this layer's bit in NODUS_EXES */
#define NODUS_RULE_PROCESS 6 /* the task's process has this layer's bit in NODUS_PROCS
			      * (a workload class or an accelerator, decided in userspace) */

struct nodus_rule {
	__u32 kind;
	__s32 lo;
	__s32 hi;
	__u32 pad;
	/* comm prefix as two little-endian words and the mask of its bytes */
	__u64 comm[2];
	__u64 mask[2];
};

struct nodus_layer {
	__u32 kind;
	/* wakeups of this layer preempt tasks of non-preempting layers */
	__u32 preempt;
	__u64 slice_ns;
	__u32 nr_rules;
	__u32 pad;
	struct nodus_rule rules[NODUS_MAX_RULES];
};

/* Key 0 of NODUS_GLOBAL. */
struct nodus_global {
	__u32 nr_layers;
	__u32 nr_cpus;
	__u32 nr_doms;
	/* bumped by userspace when rules or the cgroup/executable sets change:
	 * every task is matched again at its next wakeup */
	__u32 generation;
};

/* NODUS_CPUS, by CPU: set by userspace (owners change as grouped layers are
 * resized). */
struct nodus_cpu {
	__u32 dom;
	/* the confined or grouped layer that owns the CPU, or NODUS_NONE */
	__u32 owner;
};

/* NODUS_CPU_STATE, by CPU: what runs there, for preemption. */
struct nodus_cpu_state {
	__u32 layer;
	__u32 pad;
	__u64 started_ns;
};

/* A CPU serves its own layer first, unless another layer's first task has
 * waited this much longer than its own layer's: then that task (oldest
 * first), so nothing starves, whatever the owners' load. */
#define NODUS_LEND_AFTER_NS 50000000ULL

/* How far, in its own slices, a task's virtual time may run ahead of its
 * layer's clock. Weight (nice) charges a task's run at 100/weight: a
 * nice-19 task pays 100 times its run, and without a bound a kernel thread
 * such as khugepaged, after a long collapse, queued behind busy nice-0
 * tasks for seconds, until the kernel's watchdog ended the scheduler. With
 * the bound it still runs behind them, a few times less often, never
 * starved. */
#define NODUS_MAX_DEBT_SLICES 8

/* NODUS_EXES key: an executable by its file's device (kernel encoding) and
 * inode. */
struct nodus_exe {
	__u64 dev;
	__u64 ino;
};

/* NODUS_STATS (per CPU), by layer. */
struct nodus_layer_stats {
	/* time its tasks ran */
	__u64 runtime_ns;
	/* wakeups queued on the layer's dispatch queues */
	__u64 enqueued;
	/* wakeups sent straight to an idle CPU */
	__u64 direct;
	/* wakeups that preempted another layer's task */
	__u64 preempted;
	/* tasks that left another layer for this one on a new match */
	__u64 moved_in;
	/* runnable-to-running waits */
	__u64 lat_count;
	__u64 lat_sum_ns;
	__u64 lat_hist[NODUS_LAT_BUCKETS];
};

/* The facts a task is matched on: the scheduler reads them from the task,
 * the test program takes them from userspace. */
struct nodus_facts {
	__u64 comm[2];
	__s32 nice;
	__u32 uid;
	__u64 cgroup_id;
	struct nodus_exe exe;
	/* out: the layer chosen (the test program's answer) */
	__u32 layer;
	/* the task's process (thread group) id */
	__u32 tgid;
};

/* Key 0 of NODUS_EXIT: how the kernel ended the scheduler (ops.exit). kind
 * is written last: userspace polls it. */
struct nodus_exit {
	__s64 kind;
	__s64 exit_code;
	char reason[128];
	char msg[1024];
};

#endif
