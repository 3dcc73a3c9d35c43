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

struct task_ctx {
	__u32 layer;
	__u32 generation;
	__u64 comm[2];
	__u64 matched_ns;
	__u64 runnable_ns;
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
	__u32 cg = cg_bits ? *cg_bits : 0, exe = exe_bits ? *exe_bits : 0;

	for (__u32 i = 0; i < NODUS_MAX_LAYERS; i++) {
		if (i >= nr_layers)
			break;
		__u32 key = i;
		struct nodus_layer *l = bpf_map_lookup_elem(&NODUS_LAYERS, &key);
		if (!l)
			break;
		for (__u32 r = 0; r < NODUS_MAX_RULES; r++) {
			if (r >= l->nr_rules)
				break;
			struct nodus_rule *rule = &l->rules[r];
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

/* Whether a task of `layer` may run on a CPU owned by `owner`, and whether
 * that CPU is the layer's own. */
static __always_inline bool may_run(__u32 layer, __u32 kind, __u32 owner)
{
	if (owner == layer)
		return true;
	if (kind == NODUS_LAYER_CONFINED)
		return false;
	return owner == NODUS_NONE || layer_kind(owner) != NODUS_LAYER_CONFINED;
}

/* Whether no CPU `p` may run on (its affinity) is one its layer may use. */
static __always_inline bool needs_fallback(struct task_struct *p, __u32 layer, __u32 nr_cpus)
{
	__u32 kind = layer_kind(layer);
	for (__u32 cpu = 0; cpu < NODUS_MAX_CPUS; cpu++) {
		if (cpu >= nr_cpus)
			break;
		__u32 key = cpu;
		struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
		if (!c)
			break;
		if (may_run(layer, kind, c->owner) && bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			return false;
	}
	return true;
}

/* An idle CPU for a task of `layer`, claimed: its own CPUs first, then free
 * ones, then idle CPUs lent by grouped layers. -1 when none. */
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
	/* pass 0: own CPUs; 1: free CPUs; 2: lent CPUs */
	for (int pass = 0; pass < 3; pass++) {
		if (pass > 0 && kind == NODUS_LAYER_CONFINED)
			break;
		for (__u32 cpu = 0; cpu < NODUS_MAX_CPUS; cpu++) {
			if (cpu >= nr_cpus)
				break;
			__u32 key = cpu;
			struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
			if (!c)
				break;
			bool fits = pass == 0 ? c->owner == layer
				  : pass == 1 ? c->owner == NODUS_NONE
				  : c->owner != layer && c->owner != NODUS_NONE &&
				    may_run(layer, kind, c->owner);
			if (fits && bpf_cpumask_test_cpu(cpu, p->cpus_ptr) &&
			    scx_bpf_test_and_clear_cpu_idle(cpu))
				return cpu;
		}
	}
	return -1;
}

/* A CPU owned by `layer` running a task of a layer that does not preempt,
 * to preempt; -1 when none. */
static __always_inline s32 find_victim(struct task_struct *p, __u32 layer, __u32 nr_cpus)
{
	for (__u32 cpu = 0; cpu < NODUS_MAX_CPUS; cpu++) {
		if (cpu >= nr_cpus)
			break;
		__u32 key = cpu;
		struct nodus_cpu *c = bpf_map_lookup_elem(&NODUS_CPUS, &key);
		struct nodus_cpu_state *st = bpf_map_lookup_elem(&NODUS_CPU_STATE, &key);
		if (!c || !st)
			break;
		if (c->owner != layer || st->layer == layer || st->layer == NODUS_NONE)
			continue;
		struct nodus_layer *running = layer_cfg(st->layer);
		if (running && running->preempt)
			continue;
		if (bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			return cpu;
	}
	return -1;
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
		cpu = find_victim(p, layer, g->nr_cpus);
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
	__u32 layer = tctx->layer;
	__u64 slice = layer_slice(layer);
	struct nodus_layer_stats *s = stats(layer);

	if (tctx->preempt_cpu) {
		s32 cpu = tctx->preempt_cpu - 1;
		tctx->preempt_cpu = 0;
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, enq_flags | SCX_ENQ_PREEMPT);
		if (s)
			s->preempted++;
		return;
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
	/* A task that slept long gets at most one slice of credit. */
	if (now && vtime + slice < *now)
		vtime = *now - slice;
	scx_bpf_dsq_insert_vtime(p, dsq_id(layer, dom), slice, vtime, enq_flags);
	if (s)
		s->enqueued++;

	/* Wake an idle CPU that may run it, if select_cpu did not. */
	s32 cpu = claim_idle(p, layer, layer_kind(layer), g->nr_cpus, -1);
	if (cpu >= 0)
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

/* Moves the first task of `layer`'s queues (this CPU's domain first) to
 * this CPU. */
static __always_inline bool consume(__u32 layer, __u32 dom, __u32 nr_doms)
{
	if (scx_bpf_dsq_move_to_local(dsq_id(layer, dom)))
		return true;
	for (__u32 d = 0; d < NODUS_MAX_DOMS; d++) {
		if (d >= nr_doms)
			break;
		if (d != dom && scx_bpf_dsq_move_to_local(dsq_id(layer, d)))
			return true;
	}
	return false;
}

/* A free or lent CPU takes the other non-confined layers' tasks, in profile
 * order, then the default layer's. */
static __always_inline bool consume_others(__u32 owner, __u32 dom, struct nodus_global *g)
{
	for (__u32 l = 0; l <= NODUS_MAX_LAYERS; l++) {
		if (l > g->nr_layers)
			break;
		if (l == owner || (l < g->nr_layers && layer_kind(l) == NODUS_LAYER_CONFINED))
			continue;
		if (consume(l, dom, g->nr_doms))
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
	if (owner != NODUS_NONE) {
		if (layer_kind(owner) == NODUS_LAYER_CONFINED) {
			consume(owner, c->dom, g->nr_doms);
			return;
		}
		/* Grouped: its own tasks first, but a waiting task of another
		 * layer gets this CPU at least every NODUS_LEND_EVERY_NS. */
		struct nodus_cpu_state *st = bpf_map_lookup_elem(&NODUS_CPU_STATE, &key);
		__u64 now = bpf_ktime_get_ns();
		if (st && now - st->lent_ns > NODUS_LEND_EVERY_NS) {
			st->lent_ns = now;
			if (consume_others(owner, c->dom, g))
				return;
		}
		if (consume(owner, c->dom, g->nr_doms))
			return;
	}
	consume_others(owner, c->dom, g);
}

void BPF_STRUCT_OPS(nodus_runnable, struct task_struct *p, u64 enq_flags)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx = task_ctx(p);
	if (!g || !tctx)
		return;
	__u64 now = bpf_ktime_get_ns();
	tctx->runnable_ns = now;
	__u64 comm[2];
	read_comm(p, comm);
	if (tctx->refresh || tctx->generation != g->generation || comm[0] != tctx->comm[0] ||
	    comm[1] != tctx->comm[1] || now - tctx->matched_ns > REMATCH_NS) {
		__u32 before = tctx->layer;
		rematch(p, tctx, g, false);
		if (tctx->layer != before)
			tctx->fallback = needs_fallback(p, tctx->layer, g->nr_cpus);
	}
}

void BPF_STRUCT_OPS(nodus_set_cpumask, struct task_struct *p, const struct cpumask *cpumask)
{
	struct nodus_global *g = global();
	struct task_ctx *tctx = task_ctx(p);
	if (g && tctx)
		tctx->fallback = needs_fallback(p, tctx->layer, g->nr_cpus);
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
	tctx->fallback = needs_fallback(p, tctx->layer, g->nr_cpus);
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
