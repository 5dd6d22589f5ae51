// SPDX-License-Identifier: MIT
// The perf_event sampling program of `profiler record`, compiled by BCC.
//
// Configured only with -D flags (see profiler/record/bpf/program.py, `defines()`):
//   MAX_DEPTH           frames kept per stack (kernel.perf_event_max_stack)
//   STACK_STORAGE_SIZE  distinct stacks held between two drains
//   COUNTS_SIZE         distinct (process, thread, comm, stacks) keys per drain
//   SLOTS               count slots per generation: the stack-trace maps' buckets
//                       (STACK_STORAGE_SIZE rounded up to a power of 2)
//   FILTER_TGID / FILTER_TID   1: sample only the ids user space names: the one
//                       in config[CONFIG_TARGET], or those in the `targets` map
//   FILTER_CGROUP       1: sample only tasks in the cgroup (v2) config[CONFIG_CGROUP]:
//                       `-- COMMAND` and every process it starts
//   WANT_USER / WANT_KERNEL    1: walk that side of the stack
//   PER_THREAD          1: key counts by thread id as well
//   INCLUDE_IDLE        1: keep samples of the idle task (pid 0)
//   CALL_GRAPH_DWARF    1: user stacks are not walked here: each sample sends the
//                       user registers and a copy of the user stack (STACK_COPY
//                       bytes at most) through the `copies` ring buffer, and user
//                       space unwinds it with the objects' CFI (profiler/unwind/)
//   STACK_COPY          bytes of user stack copied per sample (a multiple of 8)
//   COPY_RING_PAGES     pages of the `copies` ring buffer (a power of 2)
//   OUTPUT_PERF         1: `notices` and `copies` are perf buffers (BPF_PERF_OUTPUT),
//                       for kernels without BPF ring buffers (before 5.8); user
//                       space reads one per CPU and sets how often each wakes it
//   HAVE_TASK_PT_REGS   1: the kernel has bpf_task_pt_regs() (5.15): a sample taken
//                       in the kernel gets the user registers saved on entry; 0:
//                       it gets none (dwarf: no user stack, counted as such)
//   COPY_CPUS           possible CPUs (dwarf: a scratch slot per CPU; not NR_CPUS,
//                       which the kernel headers define as the kernel's own limit)
//
// Nothing that changes from run to run (a pid, a cgroup id) is compiled in,
// so one compiled program serves every run with the same options (see
// profiler/record/bpf/image.py: the compiled program is kept and loaded without
// compiling again).
//
// A stack is stored the way BCC's profile tool stores it, in a stack-trace
// map by bucket id (the kernel walks, hashes and dedups in one helper). BCC's
// tool keeps one such map for the whole run, so the more distinct stacks it
// has seen, the likelier a new stack finds its bucket taken (-EEXIST) and is
// lost: a fifth of the samples at 999 Hz over 8 s of a many-stacks workload.
// Here the stack-trace maps come in two generations, like the counts: the
// program writes to the live pair (control[0]), and user space, once a
// second (sooner when the maps fill), makes the other pair live, waits for
// the programs still running on the old one, reads it and empties it. A map
// then holds a second's stacks, not the whole run's, so collisions stay rare.
// Where one happens anyway (or the map is full: -ENOMEM), we walk again and
// store the frames by their content (a 64-bit hash) in a hash map user space
// empties at every drain.
// Count keys say which store holds a stack: bit 63 set for a bucket id (of
// the generation the count is in), clear for a content hash.
//
// A sample is counted where it is cheapest. A bucket id is unique to its
// stack within a generation, so it indexes an array of count slots: the
// first key to reach a slot claims it, and later samples with that same key
// add to it, with no hashing (BCC's tool hashes its key up to three times
// per sample). A key whose slot another key holds, or without a bucket id,
// is counted in the hash map instead. User space reads both. Every sample
// that cannot be kept is counted in `stats`.

#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>

#ifndef MAX_DEPTH
#define MAX_DEPTH 127
#endif
#ifndef STACK_STORAGE_SIZE
#define STACK_STORAGE_SIZE 16384
#endif
#ifndef COUNTS_SIZE
#define COUNTS_SIZE 16384
#endif
#ifndef SLOTS
#define SLOTS 16384
#endif
#ifndef PID_WORDS
#define PID_WORDS 65536  // pid_max / 64, rounded up: one bit per process id
#endif
#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef EFAULT
#define EFAULT 14
#endif
#ifndef ENOMEM
#define ENOMEM 12
#endif
#ifndef CALL_GRAPH_DWARF
#define CALL_GRAPH_DWARF 0
#endif
#ifndef STACK_COPY
#define STACK_COPY 16384
#endif
#ifndef COPY_RING_PAGES
#define COPY_RING_PAGES 1
#endif
#ifndef OUTPUT_PERF
#define OUTPUT_PERF 0
#endif
#ifndef HAVE_TASK_PT_REGS
#define HAVE_TASK_PT_REGS 1
#endif
#define FP_FIXUP (WANT_USER && !CALL_GRAPH_DWARF)
#ifndef LEAF_RULES
#define LEAF_RULES 16384  // slots for judged (process, leaf pc) pairs; a power of 2
#endif
#ifndef COPY_CPUS
#define COPY_CPUS 1  // possible CPUs: one scratch slot each
#endif
#define STACK_ID_TAG (1ULL << 63)
#ifndef RECENT_SLOTS
#define RECENT_SLOTS 1024  // per-CPU cache of stack hashes already stored; a power of 2
#endif

// Indexes of `stats`; keep in step with STATS in profiler/record/bpf/program.py.
enum stat_index {
    STAT_SAMPLES = 0,          // samples that passed the filters
    STAT_LOST_STACK_FULL = 1,  // stack store full (or busy): sample dropped
    STAT_LOST_COUNTS_FULL = 2, // counts map full (or busy): sample dropped
    STAT_USER_WALK_ERROR = 3,  // user stack walk returned an error (kept, no user frames)
    STAT_KERNEL_WALK_ERROR = 4,// kernel stack walk returned an error (kept, no kernel frames)
    STAT_NOTICES_LOST = 5,     // ring buffer full: a process notice was not delivered
    STAT_WALKED_AGAIN = 6,     // a stack stored by content (its bucket was taken)
    STAT_LOST_COPY_RING = 7,   // dwarf: copy ring buffer full: sample dropped
    STAT_COPY_FAILED = 8,      // dwarf: not one byte of the user stack could be read (kept)
    N_STATS = 9,
};

enum notice_kind { NOTICE_NEW = 1, NOTICE_EXEC = 2 };

struct sample_key {
    u32 pid;           // process (tgid)
    u32 tid;           // thread, 0 unless PER_THREAD
    u64 user_hash;     // 0: no user frames; STACK_ID_TAG | id, or a content hash
    u64 kernel_hash;   // 0: no kernel frames; likewise
    char comm[16];
    u64 ret_word;      // fp: the word that holds the frameless leaf's return address
    u64 ret_from;      // fp: its offset from sp, plus 1; 0: none read
};

enum slot_state { SLOT_EMPTY = 0, SLOT_CLAIMED = 1, SLOT_READY = 2 };

struct count_slot {
    u64 count;
    u64 state;         // enum slot_state; the key is valid once READY
    struct sample_key key;
};

struct stack {
    u64 nr;            // frames used in ips[], leaf first
    u64 ips[MAX_DEPTH];
};


struct notice {
    u32 pid;
    u32 kind;
};

BPF_PERCPU_ARRAY(scratch, struct stack, 1);  // the walk of a colliding stack
BPF_STACK_TRACE(stack_ids0, STACK_STORAGE_SIZE);  // generation 0
BPF_STACK_TRACE(stack_ids1, STACK_STORAGE_SIZE);  // generation 1
BPF_HASH(stacks, u64, struct stack, STACK_STORAGE_SIZE);
// A hash found here was stored once, so its frames reach user space (a drain
// copies a stack out before deleting it): repeats skip the hash-map update.
BPF_PERCPU_ARRAY(recent, u64, RECENT_SLOTS);
BPF_HASH(counts0, struct sample_key, u64, COUNTS_SIZE);
BPF_HASH(counts1, struct sample_key, u64, COUNTS_SIZE);
// Memory-mapped: user space reads and clears a whole generation at once.
BPF_F_TABLE("array", u32, struct count_slot, slots0, SLOTS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", u32, struct count_slot, slots1, SLOTS, BPF_F_MMAPABLE);
BPF_ARRAY(control, u32, 1);  // the live generation: 0 or 1
// Set by user space before attaching: the one id to sample (0: the `targets`
// map decides) and the command's cgroup id.
enum config_index { CONFIG_TARGET = 0, CONFIG_CGROUP = 1, N_CONFIG = 2 };
BPF_ARRAY(config, u64, N_CONFIG);
BPF_PERCPU_ARRAY(stats, u64, N_STATS);
// Bitmaps indexed by id: array lookups are inlined by the verifier, where a
// hash lookup would cost a hash of the key on every sample.
BPF_ARRAY(targets, u64, PID_WORDS);  // ids to sample (FILTER_TGID / FILTER_TID)
BPF_ARRAY(seen, u64, PID_WORDS);     // processes already announced to user space
#if OUTPUT_PERF
BPF_PERF_OUTPUT(notices);
#else
BPF_RINGBUF_OUTPUT(notices, 16);
#endif

// --call-graph dwarf: one record per sample, counted in user space.
enum copy_flags {
    COPY_GEN1 = 1,       // kernel_hash is a bucket id of generation 1 (else 0)
    COPY_USER = 2,       // user registers are valid (the task has a user context)
};

struct copy_head {
    u32 pid;
    u32 tid;             // the thread, always (user space drops it unless PER_THREAD)
    u64 kernel_hash;     // as in sample_key
    u64 ip, sp, fp, lr;  // user registers: x86_64 ip, sp, bp (lr 0); arm64 pc, sp, x29, x30
    u32 size;            // bytes of user stack copied, from sp up
    u32 flags;           // enum copy_flags
    char comm[16];
};

// A record as sent: the head, then `size` bytes of stack. Built in a
// per-CPU scratch slot and sent with the bytes it holds, so the ring holds
// what was copied, not STACK_COPY for every sample. The slack page lets
// the copy loop prove to the verifier that every read stays inside.
struct copy_record {
    struct copy_head head;
    u8 stack[STACK_COPY + 4096];
};

#if FP_FIXUP
// A frame-pointer walk from a frameless leaf (a small leaf function, a
// prologue or epilogue) skips the leaf's caller: the frame pointer still
// holds the caller's frame, whose return address leads to the caller's
// caller. The leaf's own return address lies at sp + k. User space judges
// each (process, leaf pc) from its CFI and says here where that word is:
// k + 1, or 0 where the CFI says the frame is set up (nothing to add). A
// pc not judged yet reads the word at sp, which user space uses only if the
// CFI puts the return address there.
// Judgements live in an array indexed by a hash of (process, pc): an array
// lookup is inlined by the verifier, where a hash map would hash a key on
// every sample. Two pairs with one slot: the later judgement stays, and the
// other pair's samples read sp as if not judged yet (still right, as said).
struct leaf_rule {
    u64 ip;
    u32 pid;
    u32 rule;  // k + 1, or 0
};
BPF_ARRAY(leaf_rules, struct leaf_rule, LEAF_RULES);
#endif

#if CALL_GRAPH_DWARF
BPF_ARRAY(copy_scratch, struct copy_record, COPY_CPUS);
BPF_PERCPU_ARRAY(copy_pending, u64, 1);  // bytes sent since this CPU last woke user space
#if OUTPUT_PERF
BPF_PERF_OUTPUT(copies);
#else
BPF_RINGBUF_OUTPUT(copies, COPY_RING_PAGES);
#endif
#endif

static __always_inline void stat_add(u32 index)
{
    u64 *value = stats.lookup(&index);
    if (value)
        *value += 1;  // per-CPU slot: no atomic needed
}

static __always_inline void notify(void *ctx, u32 pid, u32 kind)
{
    struct notice n = {.pid = pid, .kind = kind};
#if OUTPUT_PERF
    if (notices.perf_submit(ctx, &n, sizeof(n)) != 0)
#else
    if (notices.ringbuf_output(&n, sizeof(n), 0) != 0)
#endif
        stat_add(STAT_NOTICES_LOST);
}

static __always_inline int is_target(u32 id)
{
    u32 word = id / 64;
    u64 *bits = targets.lookup(&word);
    return bits && (*bits >> (id % 64)) & 1;
}

static __always_inline u64 config_value(u32 index)
{
    u64 *value = config.lookup(&index);  // an array: the verifier inlines it
    return value ? *value : 0;
}

static __always_inline int wanted(u32 tgid, u32 tid)
{
#if !INCLUDE_IDLE
    if (tid == 0)
        return 0;
#endif
#if FILTER_CGROUP
    if (bpf_get_current_cgroup_id() != config_value(CONFIG_CGROUP))
        return 0;
#elif FILTER_TGID || FILTER_TID
#if FILTER_TGID
    u32 id = tgid;
#else
    u32 id = tid;
#endif
    u64 one = config_value(CONFIG_TARGET);
    if (one ? id != one : !is_target(id))  // one target: a compare, no bitmap
        return 0;
#endif
    return 1;
}

// Announce a process the first time it is sampled. Not atomic: two CPUs may
// both announce it, which only costs a second snapshot.
static __always_inline void announce(void *ctx, u32 tgid)
{
    u32 word = tgid / 64;
    u64 *bits = seen.lookup(&word);
    u64 bit = 1ULL << (tgid % 64);
    if (bits && !(*bits & bit)) {
        *bits |= bit;
        notify(ctx, tgid, NOTICE_NEW);
    }
}

// Hash a stack by content; 0 is kept for "no frames", bit 63 for bucket ids.
static __always_inline u64 stack_hash(struct stack *s, u64 seed)
{
    u64 h = seed ^ (s->nr * 0x9E3779B97F4A7C15ULL);
    // A bounded loop (kernel >= 5.3), not 127 unrolled copies per call site.
#pragma clang loop unroll(disable)
    for (int i = 0; i < MAX_DEPTH; i++) {
        if (i >= s->nr)
            break;
        h = (h ^ s->ips[i]) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    h &= ~STACK_ID_TAG;
    return h ? h : 1;
}

// Walk one side and store it; *hash is 0 for no frames. Returns 0, or -1
// when the sample is lost (the content store is full).
static __always_inline int take_stack(struct bpf_perf_event_data *ctx, u32 live, u64 flags,
                                      u64 seed, u32 walk_error, u64 *hash)
{
    *hash = 0;
    int id = live ? stack_ids1.get_stackid(ctx, flags) : stack_ids0.get_stackid(ctx, flags);
    if (id >= 0) {
        *hash = STACK_ID_TAG | (u32)id;
        return 0;
    }
    if (id != -EEXIST && id != -ENOMEM) {  // -EFAULT: nothing to walk; else an error
        if (id != -EFAULT)
            stat_add(walk_error);
        return 0;
    }
    // The bucket holds another stack, or the map is full: walk again and
    // store by content.
    stat_add(STAT_WALKED_AGAIN);
    u32 zero = 0;
    struct stack *s = scratch.lookup(&zero);
    if (!s)
        return 0;
    long len = bpf_get_stack(ctx, s->ips, sizeof(s->ips), flags);
    if (len < 0) {
        stat_add(walk_error);
        return 0;
    }
    s->nr = len / sizeof(u64);
    if (s->nr == 0)
        return 0;
    u64 h = stack_hash(s, seed);
    u32 slot = h & (RECENT_SLOTS - 1);
    u64 *seen_before = recent.lookup(&slot);
    if (!seen_before || *seen_before != h) {
        int err = stacks.insert(&h, s);  // one update; EEXIST: stored already
        if (err != 0 && err != -EEXIST) {
            stat_add(STAT_LOST_STACK_FULL);
            return -1;
        }
        if (seen_before)
            *seen_before = h;
    }
    *hash = h;
    return 0;
}

struct user_regs_out {
    u64 ip, sp, fp, lr;
};

// The user registers of the sampled task: the interrupted ones when the
// sample hit user code, else those saved on entry to the kernel. 0 when the
// task has no user context (a kernel thread), or the kernel cannot say
// where they were saved (no bpf_task_pt_regs()).
#if defined(__x86_64__)
#define IN_USER_MODE(r) (((r)->cs & 3) == 3)
#define TAKE_USER_REGS(h, r) \
    do { (h)->ip = (r)->ip; (h)->sp = (r)->sp; (h)->fp = (r)->bp; (h)->lr = 0; } while (0)
#elif defined(__aarch64__)
#define IN_USER_MODE(r) (((r)->pstate & 0xf) == 0)  // PSR_MODE_EL0t
#define TAKE_USER_REGS(h, r) \
    do { (h)->ip = (r)->pc; (h)->sp = (r)->sp; (h)->fp = (r)->regs[29]; \
         (h)->lr = (r)->regs[30]; } while (0)
#endif

static __always_inline int user_regs(struct bpf_perf_event_data *ctx, struct user_regs_out *h)
{
#ifdef IN_USER_MODE
    if (IN_USER_MODE(&ctx->regs)) {  // the sample hit user code: the registers are at hand
        TAKE_USER_REGS(h, &ctx->regs);
        return h->sp != 0;
    }
#if HAVE_TASK_PT_REGS
    struct pt_regs regs;
    void *saved = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());
    if (!saved || bpf_probe_read_kernel(&regs, sizeof(regs), saved) != 0 ||
        !IN_USER_MODE(&regs))
        return 0;
    TAKE_USER_REGS(h, &regs);
    return h->sp != 0;
#endif
#endif
    return 0;
}

#if FP_FIXUP
// Keep in step with leaf_slot() in profiler/record/bpf/program.py.
static __always_inline u32 leaf_slot(u32 pid, u64 ip)
{
    u64 h = (ip ^ ((u64)pid << 40)) * 0x9E3779B97F4A7C15ULL;
    return (u32)(h >> 40) & (LEAF_RULES - 1);
}

static __always_inline void read_return_word(struct bpf_perf_event_data *ctx, u32 tgid,
                                             struct sample_key *key)
{
    struct user_regs_out regs;
    if (tgid == 0 || !user_regs(ctx, &regs))
        return;
    u32 slot = leaf_slot(tgid, regs.ip);
    struct leaf_rule *known = leaf_rules.lookup(&slot);
    u64 from = known && known->ip == regs.ip && known->pid == tgid ? known->rule : 1;
    if (from == 0)
        return;
    if (bpf_probe_read_user(&key->ret_word, sizeof(key->ret_word),
                            (void *)(regs.sp + from - 1)) == 0)
        key->ret_from = from;
}
#endif

static __always_inline u64 *counts_lookup(u32 live, struct sample_key *key)
{
    return live ? counts1.lookup(key) : counts0.lookup(key);
}

static __always_inline int counts_insert(u32 live, struct sample_key *key, u64 *value)
{
    return live ? counts1.insert(key, value) : counts0.insert(key, value);
}

static __always_inline int same_key(struct sample_key *a, struct sample_key *b)
{
    u64 *x = (u64 *)a, *y = (u64 *)b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4] &&
           x[5] == y[5] && x[6] == y[6];
}

// Add one to key's count in its slot; 0 when the slot is another key's (or
// the key has no bucket id to index it by).
static __always_inline int count_in_slot(u32 live, struct sample_key *key)
{
    u64 by = key->user_hash & STACK_ID_TAG ? key->user_hash : key->kernel_hash;
    if (!(by & STACK_ID_TAG))
        return 0;
    u32 index = (u32)by & (SLOTS - 1);
    struct count_slot *slot = live ? slots1.lookup(&index) : slots0.lookup(&index);
    if (!slot)
        return 0;
    // Atomic operations order memory on every architecture: the key is read
    // after the state that says it is complete, and written before it.
    u64 state = __sync_fetch_and_add(&slot->state, 0);
    if (state == SLOT_READY) {
        if (!same_key(&slot->key, key))
            return 0;
        __sync_fetch_and_add(&slot->count, 1);
        return 1;
    }
    if (state != SLOT_EMPTY ||
        __sync_val_compare_and_swap(&slot->state, SLOT_EMPTY, SLOT_CLAIMED) != SLOT_EMPTY)
        return 0;  // being claimed by another CPU right now
    slot->key = *key;
    slot->count = 1;
    __sync_lock_test_and_set(&slot->state, SLOT_READY);
    return 1;
}

// Add one to key's count in the live map; 0 when the map is full (or busy).
static __always_inline int count(u32 live, struct sample_key *key)
{
    if (count_in_slot(live, key))
        return 1;
    u64 *c = counts_lookup(live, key);
    if (!c) {
        u64 one = 1;
        int err = counts_insert(live, key, &one);
        if (err == 0)
            return 1;
        if (err != -EEXIST)
            return 0;
        c = counts_lookup(live, key);  // inserted meanwhile by another CPU
        if (!c)
            return 0;
    }
    __sync_fetch_and_add(c, 1);
    return 1;
}

#if CALL_GRAPH_DWARF
// Copy the user stack from sp up, a page at a time, so that a copy running
// past the end of the stack's mapping keeps the pages before it (one read
// of the whole would fail as a whole). Returns the bytes copied.
static __always_inline u32 copy_stack(struct copy_record *r, u64 sp)
{
    // 64-bit: the verifier then narrows `done` by the loop's own test (a
    // 32-bit compare leaves the 64-bit register it tracks unbounded).
    u64 done = 0;
    u64 want = 4096 - (sp & 4095);
    // Reads: a partial first page, whole pages, a partial last page.
#pragma clang loop unroll(disable)
    for (int i = 0; i < STACK_COPY / 4096 + 2; i++) {
        if (done >= STACK_COPY)
            break;
        if (want > STACK_COPY - done)
            want = STACK_COPY - done;
        if (want == 0 || want > 4096)
            break;
        if (bpf_probe_read_user(&r->stack[done], want, (void *)(sp + done)) != 0)
            break;
        done += want;
        want = 4096;
    }
    return done;
}

static __always_inline void send_copy(struct bpf_perf_event_data *ctx, u32 tgid, u32 tid,
                                      u32 live)
{
    u32 cpu = bpf_get_smp_processor_id();
    struct copy_record *r = copy_scratch.lookup(&cpu);
    if (!r)
        return;
    r->head.pid = tgid;
    r->head.tid = tid;
    r->head.flags = live ? COPY_GEN1 : 0;
    r->head.size = 0;
    r->head.kernel_hash = 0;
    r->head.ip = r->head.sp = r->head.fp = r->head.lr = 0;
    bpf_get_current_comm(&r->head.comm, sizeof(r->head.comm));
#if WANT_KERNEL
#ifdef IN_USER_MODE
    if (!IN_USER_MODE(&ctx->regs))
#endif
    if (take_stack(ctx, live, 0, 0x6b65726eULL, STAT_KERNEL_WALK_ERROR,
                   &r->head.kernel_hash) < 0)
        return;
#endif
#if WANT_USER
    struct user_regs_out regs;
    if (tgid != 0 && user_regs(ctx, &regs)) {
        r->head.ip = regs.ip;
        r->head.sp = regs.sp;
        r->head.fp = regs.fp;
        r->head.lr = regs.lr;
        r->head.flags |= COPY_USER;
        r->head.size = copy_stack(r, r->head.sp);
        if (r->head.size == 0)
            stat_add(STAT_COPY_FAILED);
    }
#endif
    u64 n = sizeof(struct copy_head) + r->head.size;
    if (n > sizeof(struct copy_head) + STACK_COPY)  // for the verifier
        n = sizeof(struct copy_head) + STACK_COPY;
#if OUTPUT_PERF
    // Each CPU's perf buffer wakes user space after a number of records
    // user space chose when it opened it.
    if (copies.perf_submit(ctx, r, n) != 0)
        stat_add(STAT_LOST_COPY_RING);
#else
    // User space reads the ring on its own timer (the ring holds half a
    // second): a wake-up per record would cost an interrupt per sample.
    // Each CPU wakes it once it has sent a quarter of the ring's share of
    // one CPU since its last wake-up, so a burst (page faults at -c 1) is
    // read while it lasts instead of overflowing.
    u64 wake = BPF_RB_NO_WAKEUP;
    u32 zero = 0;
    u64 *pending = copy_pending.lookup(&zero);
    if (pending) {
        *pending += n;  // per-CPU: no atomic needed
        if (*pending > COPY_RING_PAGES * 4096ULL / (4 * COPY_CPUS)) {
            *pending = 0;
            wake = BPF_RB_FORCE_WAKEUP;
        }
    }
    if (copies.ringbuf_output(r, n, wake) != 0)
        stat_add(STAT_LOST_COPY_RING);
#endif
}
#endif

int prof_sample(struct bpf_perf_event_data *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    u32 tid = (u32)id;
    if (!wanted(tgid, tid))
        return 0;
    stat_add(STAT_SAMPLES);

    if (tgid != 0)
        announce(ctx, tgid);

    // Read once: the stacks and the count of one sample go to one generation.
    u32 zero = 0;
    u32 *control_live = control.lookup(&zero);
    u32 live = control_live ? *control_live : 0;

#if CALL_GRAPH_DWARF
    send_copy(ctx, tgid, tid, live);
    return 0;
#endif

    struct sample_key key = {.pid = tgid};
#if PER_THREAD
    key.tid = tid;
#endif
    bpf_get_current_comm(&key.comm, sizeof(key.comm));

#if WANT_USER
    if (take_stack(ctx, live, BPF_F_USER_STACK, 0x75736572ULL,
                   STAT_USER_WALK_ERROR, &key.user_hash) < 0)
        return 0;
#if FP_FIXUP
    if (key.user_hash)
        read_return_word(ctx, tgid, &key);
#endif
#endif
#if WANT_KERNEL
#ifdef IN_USER_MODE
    // Interrupted in user mode: there are no kernel frames to walk.
    if (!IN_USER_MODE(&ctx->regs))
#endif
    if (take_stack(ctx, live, 0, 0x6b65726eULL,
                   STAT_KERNEL_WALK_ERROR, &key.kernel_hash) < 0)
        return 0;
#endif

    if (!count(live, &key))
        stat_add(STAT_LOST_COUNTS_FULL);
    return 0;
}

// A process replaced its image: its memory maps must be read again.
// Attached to the raw tracepoint sched_process_exec (no tracefs needed).
int prof_exec(struct bpf_raw_tracepoint_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (wanted(tgid, (u32)id))
        notify(ctx, tgid, NOTICE_EXEC);
    return 0;
}
