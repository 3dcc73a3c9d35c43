/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nodus's layered sched_ext scheduler: the BPF policy.
 *
 * Tasks are put in layers by the board profile's match rules (comm prefix,
 * nice range, uid, cgroup, executable), the first layer with a matching rule
 * winning and a default open layer taking the rest. Each layer has a
 * dispatch queue per scheduling domain (NUMA node), ordered by virtual time
 * within the layer. CPUs are owned by confined and grouped layers (userspace
 * decides which, and resizes grouped layers); a confined layer's CPUs run
 * only its tasks and its tasks run nowhere else, a grouped layer's idle CPUs
 * are lent to the others, open layers run on whatever is not confined. A
 * preempting layer's wakeup takes a CPU it owns from a borrower at once.
 *
 * The idea is scx_layered's (sched-ext/scx); this is a smaller policy of
 * our own, with the tuning loop in the daemon (appliance/src/sched).
 */
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_tracing.h"
#include "bpf_core_read.h"

#include "nodus_sched.h"
#include "sched_layout.h"

char _license[] SEC("license") = "GPL";

/* scx's spelling of a struct_ops callback (its headers are not ours). */
#define BPF_STRUCT_OPS(name, args...) SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define BPF_STRUCT_OPS_SLEEPABLE(name, args...) SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

/* The shared-types fingerprint, as every nodus eBPF object carries it. */
const __u64 nodus_abi_stamp SEC("nodus_abi") = NODUS_LAYOUT_FINGERPRINT;

/* The C types are the Rust types: sizes and offsets from the Rust side. */
_Static_assert(sizeof(struct nodus_rule) == NODUS_SIZE_RULE, "nodus_rule");
_Static_assert(__builtin_offsetof(struct nodus_rule, mask) == NODUS_OFFSET_RULE_MASK, "nodus_rule.mask");
_Static_assert(sizeof(struct nodus_layer) == NODUS_SIZE_LAYER, "nodus_layer");
_Static_assert(__builtin_offsetof(struct nodus_layer, rules) == NODUS_OFFSET_LAYER_RULES, "nodus_layer.rules");
_Static_assert(sizeof(struct nodus_global) == NODUS_SIZE_GLOBAL, "nodus_global");
_Static_assert(sizeof(struct nodus_cpu) == NODUS_SIZE_CPU, "nodus_cpu");
_Static_assert(sizeof(struct nodus_cpu_state) == NODUS_SIZE_CPU_STATE, "nodus_cpu_state");
_Static_assert(sizeof(struct nodus_exe) == NODUS_SIZE_EXE, "nodus_exe");
_Static_assert(sizeof(struct nodus_layer_stats) == NODUS_SIZE_LAYER_STATS, "nodus_layer_stats");
_Static_assert(__builtin_offsetof(struct nodus_layer_stats, lat_hist) == NODUS_OFFSET_LAYER_STATS_LAT_HIST, "nodus_layer_stats.lat_hist");
_Static_assert(sizeof(struct nodus_facts) == NODUS_SIZE_FACTS, "nodus_facts");
_Static_assert(__builtin_offsetof(struct nodus_facts, layer) == NODUS_OFFSET_FACTS_LAYER, "nodus_facts.layer");
_Static_assert(sizeof(struct nodus_exit) == NODUS_SIZE_EXIT, "nodus_exit");
_Static_assert(__builtin_offsetof(struct nodus_exit, msg) == NODUS_OFFSET_EXIT_MSG, "nodus_exit.msg");

#define ALL_LAYERS (NODUS_MAX_LAYERS + 1)
/* Re-match a task at its wakeup when its last match is older than this:
 * uid and cgroup changes have no callback of their own. */
#define REMATCH_NS 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nodus_global);
} NODUS_GLOBAL SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NODUS_MAX_LAYERS);
	__type(key, __u32);
	__type(value, struct nodus_layer);
} NODUS_LAYERS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NODUS_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct nodus_cpu);
} NODUS_CPUS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NODUS_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct nodus_cpu_state);
} NODUS_CPU_STATE SEC(".maps");

/* cgroup id -> bitmask of the layers with a cgroup rule matching it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} NODUS_CGROUPS SEC(".maps");

/* executable -> bitmask of the layers with an exe rule naming it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct nodus_exe);
	__type(value, __u32);
} NODUS_EXES SEC(".maps");

/* process (tgid) -> bitmask of the layers whose class or device rule it
 * meets: userspace decides from what it measured */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} NODUS_PROCS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ALL_LAYERS);
	__type(key, __u32);
	__type(value, struct nodus_layer_stats);
} NODUS_STATS SEC(".maps");

/* Tasks in each layer now. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ALL_LAYERS);
	__type(key, __u32);
	__type(value, __s64);
} NODUS_TASKS SEC(".maps");

/* Each layer's virtual clock: the largest vtime started. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ALL_LAYERS);
	__type(key, __u32);
	__type(value, __u64);
} NODUS_VTIME SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nodus_exit);
} NODUS_EXIT SEC(".maps");

/* CPU sets as kernel cpumasks, so the hot callbacks ask the kernel for an
 * idle CPU in a set (scx_bpf_pick_idle_cpu) instead of walking every CPU:
 * indexes 0..NODUS_MAX_LAYERS are each layer's own CPUs (the default
 * layer's, index nr_layers, is empty), then the CPUs no layer owns, the
 * CPUs grouped layers own (lent when idle), and every CPU no confined
 * layer owns. Rebuilt from NODUS_CPUS by nodus_refresh_masks, which
 * userspace runs whenever it changes the owners. */
#define MASK_FREE (NODUS_MAX_LAYERS + 1)
#define MASK_GROUPED (NODUS_MAX_LAYERS + 2)
#define MASK_SHARED (NODUS_MAX_LAYERS + 3)
#define NR_MASKS (NODUS_MAX_LAYERS + 4)

struct mask_slot {
	struct bpf_cpumask __kptr *mask;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_MASKS);
	__type(key, __u32);
	__type(value, struct mask_slot);
} NODUS_MASKS SEC(".maps");

/* One scratch mask per CPU (a set intersected with a task's affinity),
 * used with that CPU's runqueue locked: never two users at once. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NODUS_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct mask_slot);
} NODUS_SCRATCH SEC(".maps");

struct task_ctx {
	__u32 layer;
	__u32 generation;
	__u64 comm[2];
	__u64 matched_ns;
	/* when it woke (for the wakeup latency histogram), 0 once running */
	__u64 runnable_ns;
	/* when it last entered a layer queue: how long the head has waited */
	__u64 queued_ns;
	/* the CPU select_cpu chose to preempt, + 1 (0: none) */
	__u32 preempt_cpu;
	__u32 refresh;
	/* its affinity allows none of its layer's CPUs: it runs where its
	 * affinity says (the layer cannot place it, and must not starve it) */
	__u32 fallback;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} NODUS_TASK_CTX SEC(".maps");

static __always_inline struct nodus_global *global(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&NODUS_GLOBAL, &zero);
}

static __always_inline __u64 dsq_id(__u32 layer, __u32 dom)
{
	return ((__u64)layer << 8) | dom;
}

/* The first layer, in profile order, with a rule matching `f`; the default
 * layer (nr_layers) when none does. */
static __always_inline __u32 match_layer(const struct nodus_facts *f, __u32 nr_layers)
{
	/* keys on the stack: `f` may be the test program's context */
	__u64 cgroup_id = f->cgroup_id;
	struct nodus_exe exe_key = { .dev = f->exe.dev, .ino = f->exe.ino };
	__u32 *cg_bits = bpf_map_lookup_elem(&NODUS_CGROUPS, &cgroup_id);
	__u32 *exe_bits = bpf_map_lookup_elem(&NODUS_EXES, &exe_key);
	__u32 tgid = f->tgid;
	__u32 *proc_bits = bpf_map_lookup_elem(&NODUS_PROCS, &tgid);
	__u32 cg = cg_bits ? *cg_bits : 0, exe = exe_bits ? *exe_bits : 0;
	__u32 proc = proc_bits ? *proc_bits : 0;

	__u32 n = nr_layers < NODUS_MAX_LAYERS ? nr_layers : NODUS_MAX_LAYERS;
	int i, r;
	/* open-coded iterators: verified once, not unrolled per layer */
	bpf_for(i, 0, n) {
		__u32 key = i;
		struct nodus_layer *l = bpf_map_lookup_elem(&NODUS_LAYERS, &key);
		if (!l)
			break;
		__u32 nr_rules = l->nr_rules < NODUS_MAX_RULES ? l->nr_rules : NODUS_MAX_RULES;
		bpf_for(r, 0, nr_rules) {
			struct nodus_rule *rule = &l->rules[r & (NODUS_MAX_RULES - 1)];
			bool hit = false;
			switch (rule->kind) {
			case NODUS_RULE_COMM:
				hit = (f->comm[0] & rule->mask[0]) == rule->comm[0] &&
				      (f->comm[1] & rule->mask[1]) == rule->comm[1];
				break;
			case NODUS_RULE_NICE:
				hit = f->nice >= rule->lo && f->nice <= rule->hi;
				break;
			case NODUS_RULE_UID:
				hit = f->uid == (__u32)rule->lo;
				break;
			case NODUS_RULE_CGROUP:
				hit = cg & (1u << i);
				break;
			case NODUS_RULE_EXE:
				hit = exe & (1u << i);
				break;
			case NODUS_RULE_PROCESS:
				hit = proc & (1u << i);
				break;
			}
			if (hit)
				return i;
		}
	}
	return nr_layers;
}

static __always_inline void read_comm(struct task_struct *p, __u64 comm[2])
{
	bpf_probe_read_kernel(comm, 16, p->comm);
}

static __always_inline void task_facts(struct task_struct *p, struct nodus_facts *f)
{
	read_comm(p, f->comm);
	f->nice = (__s32)p->static_prio - 120;
	f->uid = BPF_CORE_READ(p, cred, euid.val);
	f->cgroup_id = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
	f->exe.ino = BPF_CORE_READ(p, mm, exe_file, f_inode, i_ino);
	f->exe.dev = f->exe.ino ? BPF_CORE_READ(p, mm, exe_file, f_inode, i_sb, s_dev) : 0;
	f->tgid = p->tgid;
}

static __always_inline void tasks_add(__u32 layer, __s64 n)
{
	__s64 *count = bpf_map_lookup_elem(&NODUS_TASKS, &layer);
	if (count)
		__sync_fetch_and_add(count, n);
}

static __always_inline struct nodus_layer_stats *stats(__u32 layer)
{
	return bpf_map_lookup_elem(&NODUS_STATS, &layer);
}

/* Matches `p` again and moves it (its count) to the layer found. */
static __always_inline void rematch(struct task_struct *p, struct task_ctx *tctx,
				    struct nodus_global *g, bool first)
{
	struct nodus_facts f = {};
	task_facts(p, &f);
	__u32 layer = match_layer(&f, g->nr_layers);
	tctx->comm[0] = f.comm[0];
	tctx->comm[1] = f.comm[1];
	tctx->generation = g->generation;
	tctx->matched_ns = bpf_ktime_get_ns();
	tctx->refresh = 0;
	if (!first && layer == tctx->layer)
		return;
	if (!first) {
		tasks_add(tctx->layer, -1);
		struct nodus_layer_stats *s = stats(layer);
		if (s)
			s->moved_in++;
	}
	tasks_add(layer, 1);
	tctx->layer = layer;
}

static __always_inline struct task_ctx *task_ctx(struct task_struct *p)
{
	return bpf_task_storage_get(&NODUS_TASK_CTX, p, 0, 0);
}

static __always_inline struct nodus_layer *layer_cfg(__u32 layer)
{
	return bpf_map_lookup_elem(&NODUS_LAYERS, &layer);
}

static __always_inline __u32 layer_kind(__u32 layer)
{
	struct nodus_layer *l = layer_cfg(layer);
	/* the default layer (and anything unknown) is open */
	return l ? l->kind : NODUS_LAYER_OPEN;
}

static __always_inline __u64 layer_slice(__u32 layer)
{
	struct nodus_layer *l = layer_cfg(layer);
	return l && l->slice_ns ? l->slice_ns : SCX_SLICE_DFL;
}

/* Whether a task of `layer` may run on a CPU owned by `owner`. */
static __always_inline bool may_run(__u32 layer, __u32 kind, __u32 owner)
{
	if (owner == layer)
		return true;
	if (kind == NODUS_LAYER_CONFINED)
		return false;
	return owner == NODUS_NONE || layer_kind(owner) != NODUS_LAYER_CONFINED;
}

/* The CPU set `index` (a layer's own CPUs, or MASK_*); NULL before the
 * first refresh. */
static __always_inline const struct cpumask *cpu_set(__u32 index)
{
	struct mask_slot *slot = bpf_map_lookup_elem(&NODUS_MASKS, &index);
	return slot ? (const struct cpumask *)slot->mask : NULL;
}

/* This CPU's scratch mask. */
static __always_inline struct bpf_cpumask *scratch(void)
{
	__u32 key = bpf_get_smp_processor_id();
	struct mask_slot *slot = bpf_map_lookup_elem(&NODUS_SCRATCH, &key);
	return slot ? slot->mask : NULL;
}

/* Whether none of the CPUs `p` may run on (its affinity) is one its layer
 * may use: its own CPUs, and unless confined, every CPU no confined layer
 * owns. */
static __always_inline bool needs_fallback(struct task_struct *p, __u32 layer)
{
	const struct cpumask *own = cpu_set(layer), *shared = cpu_set(MASK_SHARED);
	if (own && bpf_cpumask_intersects(own, p->cpus_ptr))
		return false;
	if (layer_kind(layer) == NODUS_LAYER_CONFINED)
		return true;
	return !(shared && bpf_cpumask_intersects(shared, p->cpus_ptr));
}

/* An idle CPU of the set `index` that `p` may run on, claimed; -1 when
 * none. */
static __always_inline s32 claim_idle_in(struct task_struct *p, __u32 index,
					 struct bpf_cpumask *tmp)
{
	const struct cpumask *set = cpu_set(index);
	if (!set)
		return -1;
	bpf_cpumask_and(tmp, set, p->cpus_ptr);
	return scx_bpf_pick_idle_cpu((const struct cpumask *)tmp, 0);
}

/* An idle CPU for a task of `layer`, claimed: its previous CPU if it may
 * run there, then its own CPUs, then free ones, then idle CPUs lent by
 * grouped layers. -1 when none. */
static __always_inline s32 claim_idle(struct task_struct *p, __u32 layer, __u32 kind,
				      __u32 nr_cpus, s32 prev_cpu)
{
	if (prev_cpu >= 0 && (__u32)prev_cpu < nr_cpus) {
		__u32 key = prev_cpu;
		struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
		if (c && may_run(layer, kind, c->owner) &&
		    bpf_cpumask_test_cpu(prev_cpu, p->cpus_ptr) &&
		    scx_bpf_test_and_clear_cpu_idle(prev_cpu))
			return prev_cpu;
	}
	struct bpf_cpumask *tmp = scratch();
	if (!tmp)
		return -1;
	s32 cpu = claim_idle_in(p, layer, tmp);
	if (cpu >= 0 || kind == NODUS_LAYER_CONFINED)
		return cpu;
	cpu = claim_idle_in(p, MASK_FREE, tmp);
	if (cpu >= 0)
		return cpu;
	return claim_idle_in(p, MASK_GROUPED, tmp);
}

/* Whether `cpu`, one of `layer`'s own (`own`) that `p` may run on, runs a
 * task of another layer that does not preempt: a CPU to take back. */
static __always_inline bool is_victim(struct task_struct *p, __u32 layer,
				      const struct cpumask *own, s32 cpu)
{
	if (cpu < 0 || !bpf_cpumask_test_cpu(cpu, own) || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
		return false;
	__u32 key = cpu;
	struct nodus_cpu_state *st = bpf_map_lookup_elem(&NODUS_CPU_STATE, &key);
	if (!st || st->layer == layer || st->layer == NODUS_NONE)
		return false;
	struct nodus_layer *running = layer_cfg(st->layer);
	return !(running && running->preempt);
}

/* A CPU owned by `layer` running a task of a layer that does not preempt,
 * to preempt: the task's previous CPU or the waking CPU first (a timer
 * wakeup runs on the CPU that armed it: preempting there needs no
 * cross-CPU interrupt, and the cache is warm), then any; -1 when none. */
static __always_inline s32 find_victim(struct task_struct *p, __u32 layer, __u32 nr_cpus,
				       s32 prev_cpu)
{
	const struct cpumask *own = cpu_set(layer);
	if (!own)
		return -1;
	if (is_victim(p, layer, own, prev_cpu))
		return prev_cpu;
	s32 here = bpf_get_smp_processor_id();
	if (is_victim(p, layer, own, here))
		return here;
	int cpu;
	bpf_for(cpu, 0, nr_cpus) {
		if (is_victim(p, layer, own, cpu))
			return cpu;
	}
	return -1;
}

/* Matches `p` again when something its layer depends on may have changed:
 * its comm (exec, prctl), its nice (set_weight), the cgroup and executable
 * sets (generation), or, for uid and cgroup moves that have no callback,
 * a second since the last match. Called at wakeups and at every enqueue,
 * so a task that never sleeps (it exec'd while running) still moves. */
static __always_inline void refresh_layer(struct task_struct *p, struct task_ctx *tctx,
					  struct nodus_global *g, __u64 now)
{
	__u64 comm[2];
	read_comm(p, comm);
	if (tctx->refresh || tctx->generation != g->generation || comm[0] != tctx->comm[0] ||
	    comm[1] != tctx->comm[1] || now - tctx->matched_ns > REMATCH_NS) {
		__u32 before = tctx->layer;
		rematch(p, tctx, g, false);
		if (tctx->layer != before)
			tctx->fallback = needs_fallback(p, tctx->layer);
	}
}

s32 BPF_STRUCT_OPS(nodus_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx = task_ctx(p);
	if (!g || !tctx)
		return prev_cpu;
	__u32 layer = tctx->layer, kind = layer_kind(layer);
	if (tctx->fallback) {
		if (scx_bpf_test_and_clear_cpu_idle(prev_cpu))
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, layer_slice(layer), 0);
		return prev_cpu;
	}
	s32 cpu = claim_idle(p, layer, kind, g->nr_cpus, prev_cpu);
	if (cpu >= 0) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, layer_slice(layer), 0);
		struct nodus_layer_stats *s = stats(layer);
		if (s)
			s->direct++;
		return cpu;
	}
	struct nodus_layer *l = layer_cfg(layer);
	if (l && l->preempt) {
		cpu = find_victim(p, layer, g->nr_cpus, prev_cpu);
		if (cpu >= 0) {
			tctx->preempt_cpu = cpu + 1;
			return cpu;
		}
	}
	return prev_cpu;
}

void BPF_STRUCT_OPS(nodus_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx = task_ctx(p);
	if (!g || !tctx) {
		scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
		return;
	}
	refresh_layer(p, tctx, g, bpf_ktime_get_ns());
	__u32 layer = tctx->layer;
	__u64 slice = layer_slice(layer);
	struct nodus_layer_stats *s = stats(layer);

	if (tctx->preempt_cpu) {
		s32 cpu = tctx->preempt_cpu - 1;
		tctx->preempt_cpu = 0;
		/* select_cpu chose it; the task may have left the preempting
		 * layer since (an exec renamed it) */
		struct nodus_layer *l = layer_cfg(layer);
		if (l && l->preempt) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice,
					   enq_flags | SCX_ENQ_PREEMPT);
			if (s)
				s->preempted++;
			return;
		}
	}
	/* Pinned tasks (per-CPU kernel threads), and tasks whose affinity
	 * excludes their layer's CPUs, run where they must. */
	if (p->nr_cpus_allowed == 1 || tctx->fallback) {
		s32 cpu = scx_bpf_task_cpu(p);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, enq_flags);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	__u32 key = scx_bpf_task_cpu(p);
	struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
	__u32 dom = c ? c->dom : 0;
	__u64 vtime = p->scx.dsq_vtime;
	__u64 *now = bpf_map_lookup_elem(&NODUS_VTIME, &layer);
	/* A task that slept long gets at most one slice of credit, and owes
	 * at most NODUS_MAX_DEBT_SLICES. */
	if (now && vtime + slice < *now)
		vtime = *now - slice;
	if (now && vtime > *now + NODUS_MAX_DEBT_SLICES * slice)
		vtime = *now + NODUS_MAX_DEBT_SLICES * slice;
	tctx->queued_ns = bpf_ktime_get_ns();
	scx_bpf_dsq_insert_vtime(p, dsq_id(layer, dom), slice, vtime, enq_flags);
	if (s)
		s->enqueued++;

	/* Wake an idle CPU that may run it, if select_cpu did not. */
	s32 cpu = claim_idle(p, layer, layer_kind(layer), g->nr_cpus, -1);
	if (cpu >= 0)
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

/* How long the first task of the queue `dsq` has waited; -1 when empty. */
static __always_inline s64 head_wait(__u64 dsq, __u64 now)
{
	struct task_struct *head = scx_bpf_dsq_peek(dsq);
	if (!head)
		return -1;
	struct task_ctx *tctx = bpf_task_storage_get(&NODUS_TASK_CTX, head, 0, 0);
	if (!tctx || !tctx->queued_ns || now < tctx->queued_ns)
		return 0;
	return now - tctx->queued_ns;
}

/* The longest wait at the head of `layer`'s queues, and which queue. */
static __always_inline s64 layer_wait(__u32 layer, __u32 nr_doms, __u64 now, __u64 *dsq)
{
	s64 longest = -1;
	int d;
	bpf_for(d, 0, nr_doms < NODUS_MAX_DOMS ? nr_doms : NODUS_MAX_DOMS) {
		s64 w = head_wait(dsq_id(layer, d), now);
		if (w > longest) {
			longest = w;
			*dsq = dsq_id(layer, d);
		}
	}
	return longest;
}

/* Moves a task of `layer`'s queues to this CPU: the first of this CPU's
 * domain, unless another domain's first task has waited NODUS_LEND_AFTER_NS
 * longer (a layer's tasks queue by the domain they last ran in, which may
 * hold none of its CPUs: that queue must not wait forever behind this
 * one); then any that may run here. */
static __always_inline bool consume(__u32 layer, __u32 dom, __u32 nr_doms, __u64 now)
{
	__u64 local = dsq_id(layer, dom), oldest = local;
	s64 longest = layer_wait(layer, nr_doms, now, &oldest);
	if (oldest != local && longest > head_wait(local, now) + (s64)NODUS_LEND_AFTER_NS &&
	    scx_bpf_dsq_move_to_local(oldest))
		return true;
	if (scx_bpf_dsq_move_to_local(local))
		return true;
	int d;
	bpf_for(d, 0, nr_doms < NODUS_MAX_DOMS ? nr_doms : NODUS_MAX_DOMS) {
		if (d != dom && scx_bpf_dsq_move_to_local(dsq_id(layer, d)))
			return true;
	}
	return false;
}

/* Whether a CPU owned by `owner` (or by none) runs tasks of layer `l`
 * when they wait: any other layer but a confined one (`nr_layers` is the
 * default layer, always open). */
static __always_inline bool lends_to(__u32 l, __u32 owner, __u32 nr_layers)
{
	return l != owner && (l == nr_layers || layer_kind(l) != NODUS_LAYER_CONFINED);
}

/* The queue, among the layers other than `owner` that may run on its CPUs
 * (not confined ones), whose first task has waited longest; -1 when all
 * are empty. */
static __always_inline s64 others_wait(__u32 owner, struct nodus_global *g, __u64 now,
				       __u64 *dsq)
{
	__u32 nr_layers = g->nr_layers < NODUS_MAX_LAYERS ? g->nr_layers : NODUS_MAX_LAYERS;
	s64 longest = -1;
	int l;
	bpf_for(l, 0, nr_layers + 1) {
		if (!lends_to(l, owner, nr_layers))
			continue;
		__u64 id = 0;
		s64 w = layer_wait(l, g->nr_doms, now, &id);
		if (w > longest) {
			longest = w;
			*dsq = id;
		}
	}
	return longest;
}

/* Another layer's task for this CPU: the longest-waiting head first, then
 * (its affinity may exclude this CPU) any, in profile order. */
static __always_inline bool consume_others(__u32 owner, __u32 dom, struct nodus_global *g,
					   __u64 oldest, __u64 now)
{
	if (oldest != (__u64)-1 && scx_bpf_dsq_move_to_local(oldest))
		return true;
	__u32 nr_layers = g->nr_layers < NODUS_MAX_LAYERS ? g->nr_layers : NODUS_MAX_LAYERS;
	__u32 nr_doms = g->nr_doms;
	int l;
	bpf_for(l, 0, nr_layers + 1) {
		if (!lends_to(l, owner, nr_layers))
			continue;
		if (consume(l, dom, nr_doms, now))
			return true;
	}
	return false;
}

void BPF_STRUCT_OPS(nodus_dispatch, s32 cpu, struct task_struct *prev)
{
	struct nodus_global *g = global();
	__u32 key = cpu;
	struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
	if (!g || !c)
		return;
	__u32 owner = c->owner;
	__u64 now = bpf_ktime_get_ns();
	if (owner != NODUS_NONE && layer_kind(owner) == NODUS_LAYER_CONFINED) {
		consume(owner, c->dom, g->nr_doms, now);
		return;
	}
	__u64 oldest = (__u64)-1;
	s64 others = others_wait(owner, g, now, &oldest);
	if (owner != NODUS_NONE) {
		/* Grouped: its own tasks first, unless another layer's have
		 * waited NODUS_LEND_AFTER_NS longer. */
		__u64 own_dsq = 0;
		s64 own = layer_wait(owner, g->nr_doms, now, &own_dsq);
		if (others >= 0 && others > own + (s64)NODUS_LEND_AFTER_NS &&
		    consume_others(owner, c->dom, g, oldest, now))
			return;
		if (consume(owner, c->dom, g->nr_doms, now))
			return;
	}
	if (others >= 0)
		consume_others(owner, c->dom, g, oldest, now);
}

void BPF_STRUCT_OPS(nodus_runnable, struct task_struct *p, u64 enq_flags)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx = task_ctx(p);
	if (!g || !tctx)
		return;
	__u64 now = bpf_ktime_get_ns();
	tctx->runnable_ns = now;
	refresh_layer(p, tctx, g, now);
}

void BPF_STRUCT_OPS(nodus_set_cpumask, struct task_struct *p, const struct cpumask *cpumask)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx = task_ctx(p);
	if (g && tctx)
		tctx->fallback = needs_fallback(p, tctx->layer);
}

static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 b = 0;
	for (int i = 0; i < 6; i++) {
		__u32 shift = 32 >> i;
		if (v >> shift) {
			v >>= shift;
			b += shift;
		}
	}
	return b < NODUS_LAT_BUCKETS ? b : NODUS_LAT_BUCKETS - 1;
}

void BPF_STRUCT_OPS(nodus_running, struct task_struct *p)
{
	struct task_ctx *tctx = task_ctx(p);
	if (!tctx)
		return;
	__u64 now = bpf_ktime_get_ns();
	__u32 layer = tctx->layer;
	__u32 key = bpf_get_smp_processor_id();
	struct nodus_cpu_state *st = bpf_map_lookup_elem(&NODUS_CPU_STATE, &key);
	if (st) {
		st->layer = layer;
		st->started_ns = now;
	}
	__u64 *vnow = bpf_map_lookup_elem(&NODUS_VTIME, &layer);
	if (vnow && p->scx.dsq_vtime > *vnow)
		*vnow = p->scx.dsq_vtime;
	if (tctx->runnable_ns) {
		__u64 wait = now - tctx->runnable_ns;
		tctx->runnable_ns = 0;
		struct nodus_layer_stats *s = stats(layer);
		if (s) {
			s->lat_count++;
			s->lat_sum_ns += wait;
			__u32 b = log2_bucket(wait);
			if (b < NODUS_LAT_BUCKETS)
				s->lat_hist[b]++;
		}
	}
}

void BPF_STRUCT_OPS(nodus_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = task_ctx(p);
	__u32 key = bpf_get_smp_processor_id();
	struct nodus_cpu_state *st = bpf_map_lookup_elem(&NODUS_CPU_STATE, &key);
	if (!tctx || !st)
		return;
	__u64 ran = bpf_ktime_get_ns() - st->started_ns;
	st->layer = NODUS_NONE;
	/* vtime advances inversely to weight (100 = nice 0) */
	__u32 weight = p->scx.weight ? p->scx.weight : 100;
	p->scx.dsq_vtime += ran * 100 / weight;
	struct nodus_layer_stats *s = stats(tctx->layer);
	if (s)
		s->runtime_ns += ran;
}

void BPF_STRUCT_OPS(nodus_set_weight, struct task_struct *p, u32 weight)
{
	struct task_ctx *tctx = task_ctx(p);
	if (tctx)
		tctx->refresh = 1; /* nice changed: match again */
}

void BPF_STRUCT_OPS(nodus_enable, struct task_struct *p)
{
	struct task_ctx *tctx = task_ctx(p);
	if (!tctx)
		return;
	__u32 layer = tctx->layer;
	__u64 *vnow = bpf_map_lookup_elem(&NODUS_VTIME, &layer);
	p->scx.dsq_vtime = vnow ? *vnow : 0;
}

s32 BPF_STRUCT_OPS(nodus_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx =
		bpf_task_storage_get(&NODUS_TASK_CTX, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!g || !tctx)
		return -12; /* -ENOMEM */
	rematch(p, tctx, g, true);
	tctx->fallback = needs_fallback(p, tctx->layer);
	return 0;
}

void BPF_STRUCT_OPS(nodus_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	struct task_ctx *tctx = task_ctx(p);
	if (tctx)
		tasks_add(tctx->layer, -1);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(nodus_init)
{
	struct nodus_global *g = global();
	if (!g)
		return -22; /* -EINVAL */
	for (__u32 l = 0; l <= NODUS_MAX_LAYERS; l++) {
		if (l > g->nr_layers)
			break;
		for (__u32 d = 0; d < NODUS_MAX_DOMS; d++) {
			if (d >= g->nr_doms)
				break;
			s32 err = scx_bpf_create_dsq(dsq_id(l, d), -1);
			if (err)
				return err;
		}
	}
	return 0;
}

void BPF_STRUCT_OPS(nodus_exit, struct scx_exit_info *ei)
{
	__u32 zero = 0;
	struct nodus_exit *e = bpf_map_lookup_elem(&NODUS_EXIT, &zero);
	if (!e)
		return;
	bpf_probe_read_kernel_str(e->reason, sizeof(e->reason), ei->reason);
	bpf_probe_read_kernel_str(e->msg, sizeof(e->msg), ei->msg);
	e->exit_code = ei->exit_code;
	/* kind last: the strings are complete when userspace sees it */
	asm volatile("" ::: "memory");
	e->kind = ei->kind;
}

/* Whether a CPU owned by `owner` belongs to the set `index`. */
static __always_inline bool in_set(__u32 index, __u32 owner)
{
	switch (index) {
	case MASK_FREE:
		return owner == NODUS_NONE;
	case MASK_GROUPED:
		return owner != NODUS_NONE && layer_kind(owner) == NODUS_LAYER_GROUPED;
	case MASK_SHARED:
		return owner == NODUS_NONE || layer_kind(owner) != NODUS_LAYER_CONFINED;
	default:
		return owner == index;
	}
}

/* Replaces slot `slot` of `map` by `fresh` (consumed), releasing the old. */
static __always_inline void put_mask(void *map, __u32 slot, struct bpf_cpumask *fresh)
{
	struct mask_slot *s = bpf_map_lookup_elem(map, &slot);
	if (!s) {
		bpf_cpumask_release(fresh);
		return;
	}
	struct bpf_cpumask *old = bpf_kptr_xchg(&s->mask, fresh);
	if (old)
		bpf_cpumask_release(old);
}

/* Rebuilds the CPU sets from NODUS_CPUS, and gives every CPU its scratch
 * mask. Userspace runs it (BPF_PROG_TEST_RUN) after writing the owners:
 * the hot callbacks then never walk the CPUs. */
SEC("syscall")
int nodus_refresh_masks(void *ctx)
{
	struct nodus_global *g = global();
	if (!g)
		return -22; /* -EINVAL */
	__u32 nr_cpus = g->nr_cpus < NODUS_MAX_CPUS ? g->nr_cpus : NODUS_MAX_CPUS;
	int index, cpu;
	bpf_for(index, 0, NR_MASKS) {
		struct bpf_cpumask *fresh = bpf_cpumask_create();
		if (!fresh)
			return -12; /* -ENOMEM */
		bpf_for(cpu, 0, nr_cpus) {
			__u32 key = cpu;
			struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
			if (c && in_set(index, c->owner))
				bpf_cpumask_set_cpu(cpu, fresh);
		}
		put_mask(&NODUS_MASKS, index, fresh);
	}
	bpf_for(cpu, 0, nr_cpus) {
		struct bpf_cpumask *fresh = bpf_cpumask_create();
		if (!fresh)
			return -12;
		put_mask(&NODUS_SCRATCH, cpu, fresh);
	}
	return 0;
}

/* The match rules as the scheduler applies them, for tests: userspace runs
 * it (BPF_PROG_TEST_RUN) with facts of its choosing, on any kernel. */
SEC("syscall")
int nodus_match_test(struct nodus_facts *f)
{
	struct nodus_global *g = global();
	if (!g)
		return -1;
	f->layer = match_layer(f, g->nr_layers);
	return 0;
}

SEC(".struct_ops.link")
struct sched_ext_ops nodus_ops = {
	.select_cpu = (void *)nodus_select_cpu,
	.enqueue = (void *)nodus_enqueue,
	.dispatch = (void *)nodus_dispatch,
	.runnable = (void *)nodus_runnable,
	.running = (void *)nodus_running,
	.stopping = (void *)nodus_stopping,
	.set_weight = (void *)nodus_set_weight,
	.set_cpumask = (void *)nodus_set_cpumask,
	.enable = (void *)nodus_enable,
	.init_task = (void *)nodus_init_task,
	.exit_task = (void *)nodus_exit_task,
	.init = (void *)nodus_init,
	.exit = (void *)nodus_exit,
	/* userspace sets timeout_ms and flags before loading */
	.timeout_ms = 5000,
	.name = "nodus",
};
