/*
 * sigbus.c - answer SIGBUS in guest memory with zeros (see sigbus.h).
 *
 * Why a handler and not only seals: QEMU's memfd backend seals its files
 * against shrinking, but hugetlbfs and /dev/shm files cannot be sealed,
 * and a sparse file on a full tmpfs raises SIGBUS without any shrinking
 * (a write into a hole finds no page to allocate).  Checking the file
 * size at map time cannot catch either, so the fault itself is handled.
 *
 * The table is read from the signal handler, which may interrupt any code
 * on any thread, including a thread holding the registration mutex: the
 * handler takes no lock and calls only async-signal-safe functions (mmap,
 * write, sigaction, raise).  Slots live in chunks that are allocated once
 * and never freed, so a pointer the handler loaded stays valid; each slot
 * is a seqlock (gen odd while being rewritten), so the handler never
 * trusts a half-written range.  A range the handler matches is stable:
 * a fault in it means a thread is using the mapping, which holds a
 * reference, and a referenced region is neither evicted nor unmapped
 * (dma.c), so it cannot be unregistered under the handler.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "muser.h"
#include "sigbus.h"

#define CHUNK_SLOTS 1024u
#define MAX_CHUNKS 256u         /* 262144 mapped regions, process-wide */

struct slot {
    unsigned gen;               /* even: stable; odd: being rewritten */
    uintptr_t start, end;       /* end == 0: free */
    int prot;
    int wake_fd;
    uintptr_t fault;            /* first faulting address, 0: none */
};

static struct slot *chunks[MAX_CHUNKS];     /* published with release */
static unsigned nr_slots;                   /* high-water mark, release */
static uint64_t nr_faults;

/* Registration state: only under reg_lock, never touched by the handler. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned *free_slots;
static unsigned nr_free, cap_free;
static bool installed, owned;
static struct sigaction old_action;         /* written before installing */
static unsigned nr_live;                    /* ranges registered now */
static uint64_t checked_ns;                 /* when install() last looked */

/*
 * How stale our belief that the handler is still ours may get while
 * ranges stay registered.  Asking the kernel is a syscall, as dear as the
 * mmap it would guard (a third of a fault-in), so it is not asked on
 * every registration: always when no range is registered (a test
 * framework that swaps handlers per test does it then), otherwise at most
 * this often.  A handler someone installs over ours while ranges are
 * registered leaves those unprotected whenever we look; looking at every
 * registration would only shorten the window for new ones.
 */
#define RECHECK_NS 100000000ull

static uint64_t coarse_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);     /* vDSO: no syscall */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct slot *slot_at(unsigned i)
{
    struct slot *c = __atomic_load_n(&chunks[i / CHUNK_SLOTS],
                                     __ATOMIC_ACQUIRE);

    return c == NULL ? NULL : &c[i % CHUNK_SLOTS];
}

/*
 * The seqlock uses sequentially consistent accesses throughout rather than
 * relaxed ones between fences: one total order makes the argument plain,
 * this is no hot path, and ThreadSanitizer does not model fences.
 */
#define LD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define ST(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)

/* Seqlock read of slot s: false if it is free or being rewritten. */
static bool slot_read(struct slot *s, uintptr_t *start, uintptr_t *end,
                      int *prot, int *wake_fd)
{
    unsigned g1 = LD(&s->gen);

    if (g1 & 1)
        return false;
    *start = LD(&s->start);
    *end = LD(&s->end);
    *prot = LD(&s->prot);
    *wake_fd = LD(&s->wake_fd);
    return LD(&s->gen) == g1 && *end != 0;
}

/* Seqlock write (reg_lock held). */
static void slot_write(struct slot *s, uintptr_t start, uintptr_t end,
                       int prot, int wake_fd)
{
    unsigned g = LD(&s->gen);

    ST(&s->gen, g + 1);
    ST(&s->start, start);
    ST(&s->end, end);
    ST(&s->prot, prot);
    ST(&s->wake_fd, wake_fd);
    ST(&s->fault, 0);
    ST(&s->gen, g + 2);
}

bool mu_sigbus_handle(siginfo_t *si)
{
    uintptr_t a, start, end;
    unsigned n;
    int prot, wake_fd;

    if (si == NULL || si->si_signo != SIGBUS)
        return false;
    a = (uintptr_t)si->si_addr;
    n = __atomic_load_n(&nr_slots, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        struct slot *s = slot_at(i);
        uintptr_t none = 0;
        uint64_t one = 1;
        ssize_t w;

        if (s == NULL || !slot_read(s, &start, &end, &prot, &wake_fd) ||
            a < start || a >= end)
            continue;
        /*
         * The whole range, not just the page: the file is gone or full
         * from here on, and one fault a page would be a signal storm.
         * Private anonymous memory reads as zeros and takes writes that
         * nobody will see, which is what a DMA to vanished memory does.
         */
        if (mmap((void *)start, end - start, prot,
                 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
            return false;
        __atomic_compare_exchange_n(&s->fault, &none, a, false,
                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
        __atomic_fetch_add(&nr_faults, 1, __ATOMIC_RELAXED);
        w = write(wake_fd, &one, sizeof(one));
        (void)w;            /* a full eventfd is already readable */
        return true;
    }
    return false;
}

/* Not ours: do what would have happened without us. */
static void chain(int sig, siginfo_t *si, void *uc)
{
    struct sigaction dfl;

    if (old_action.sa_flags & SA_SIGINFO) {
        if (old_action.sa_sigaction != NULL)
            old_action.sa_sigaction(sig, si, uc);
        return;
    }
    if (old_action.sa_handler != SIG_DFL && old_action.sa_handler != SIG_IGN) {
        old_action.sa_handler(sig);
        return;
    }
    if (old_action.sa_handler == SIG_IGN && si->si_code <= 0)
        return;             /* a sent signal, ignored as asked */
    /*
     * Default action: for a fault, returning re-runs the access, which
     * faults again and now kills the process with the usual core; a sent
     * signal is raised again and delivered once this handler returns.
     */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGBUS, &dfl, NULL);
    if (si->si_code <= 0)
        raise(SIGBUS);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;

    if (!mu_sigbus_handle(si))
        chain(sig, si, uc);
    errno = saved;
}

/*
 * reg_lock held.  Also when a handler installed after ours has replaced
 * it (test frameworks do, per test): ours goes on top again, chaining to
 * that one, so a new mapping is not left unprotected (looked at when
 * RECHECK_NS says, above).
 */
static int install(void)
{
    struct sigaction sa, cur;
    uint64_t now = coarse_now_ns();

    if (installed && nr_live > 0 && now - checked_ns < RECHECK_NS)
        return 0;
    checked_ns = now;
    if (installed && sigaction(SIGBUS, NULL, &cur) == 0 &&
        (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &old_action) < 0)
        return -errno;
    installed = true;
    return 0;
}

int mu_sigbus_own(void)
{
    int rc = 0;

    pthread_mutex_lock(&reg_lock);
    if (installed)
        rc = -EBUSY;
    else
        owned = true;
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

/* A slot index for a new range (reg_lock held), or -ENOMEM. */
static int slot_alloc(void)
{
    unsigned i;
    struct slot *c;

    if (nr_free > 0)
        return (int)free_slots[--nr_free];
    i = nr_slots;
    if (i / CHUNK_SLOTS >= MAX_CHUNKS)
        return -ENOMEM;
    if (chunks[i / CHUNK_SLOTS] == NULL) {
        c = calloc(CHUNK_SLOTS, sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        __atomic_store_n(&chunks[i / CHUNK_SLOTS], c, __ATOMIC_RELEASE);
    }
    return (int)i;
}

int mu_sigbus_register(void *addr, size_t len, int prot, int wake_fd)
{
    int rc = 0, i;

    if (addr == NULL || len == 0 || (uintptr_t)addr + len < (uintptr_t)addr)
        return -EINVAL;
    pthread_mutex_lock(&reg_lock);
    if (!owned)
        rc = install();
    /* Room to free this slot later, so unregister cannot fail. */
    if (rc == 0 && cap_free <= nr_slots) {
        unsigned cap = cap_free == 0 ? 64 : cap_free * 2;
        unsigned *v = realloc(free_slots, cap * sizeof(*v));

        if (v == NULL)
            rc = -ENOMEM;
        else {
            free_slots = v;
            cap_free = cap;
        }
    }
    i = rc == 0 ? slot_alloc() : rc;
    if (i >= 0) {
        slot_write(slot_at((unsigned)i), (uintptr_t)addr,
                   (uintptr_t)addr + len, prot, wake_fd);
        if ((unsigned)i == nr_slots)
            __atomic_store_n(&nr_slots, (unsigned)i + 1, __ATOMIC_RELEASE);
        nr_live++;
    }
    pthread_mutex_unlock(&reg_lock);
    return i;
}

uintptr_t mu_sigbus_fault_addr(int slot)
{
    struct slot *s;

    if (slot < 0 || (unsigned)slot >= __atomic_load_n(&nr_slots,
                                                      __ATOMIC_ACQUIRE))
        return 0;
    s = slot_at((unsigned)slot);
    return s == NULL ? 0 : __atomic_load_n(&s->fault, __ATOMIC_ACQUIRE);
}

uintptr_t mu_sigbus_unregister(int slot)
{
    uintptr_t fault;

    if (slot < 0)
        return 0;
    pthread_mutex_lock(&reg_lock);
    fault = mu_sigbus_fault_addr(slot);
    slot_write(slot_at((unsigned)slot), 0, 0, 0, -1);
    free_slots[nr_free++] = (unsigned)slot;
    nr_live--;
    pthread_mutex_unlock(&reg_lock);
    return fault;
}

uint64_t mu_sigbus_faults(void)
{
    return __atomic_load_n(&nr_faults, __ATOMIC_RELAXED);
}
