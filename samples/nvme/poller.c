/*
 * poller.c - the controller lock, and the threads that serve doorbells in
 * polled mode.
 *
 * In polled mode the doorbell page is shared memory the client stores to
 * directly: no message, no notification.  The poller reads the tail
 * doorbell of every live SQ (and the head doorbell of every live CQ) and
 * runs what is new.  It spins with a pause instruction while busy, yields
 * after a short idle spell, then sleeps, from a few microseconds doubling
 * up to 200 us, so an idle controller does not burn a core: the price is
 * up to 200 us on the first command after a long pause.  With nothing to
 * poll at all (the controller not running, or in ioeventfd mode a client
 * that took the ioeventfds, whose kicks are the doorbells) it waits on a
 * condition variable instead, woken by the register write, PCI command
 * or migration change that gives it work (ctrl_unlock): no wakeups then.
 *
 * Several pollers (polled mode, --pollers N).  I/O CQ qid is served by
 * poller qid % N, and an I/O SQ by the poller of the CQ it completes to,
 * so a queue (and every SQ a stalled CQ restarts) is only ever touched by
 * one poller.  Poller 0 also serves the admin queue.  The controller lock
 * is every poller's mutex, in poller order, then ctrl->lock (lock_all).
 * A poller runs its I/O queues holding its own mutex only (an I/O pass),
 * so pollers run in parallel; what an I/O pass shares with the others it
 * writes under ctrl->lock alone (ctrl_common_lock: error log, queued
 * events, vector coalescing, INTx) or atomically (CFS, dirty granules),
 * and it counts its I/O in its own counters.  Everything else it reads
 * (registers, features, which queues exist and where) changes only under
 * the controller lock, which no I/O pass holds, so between two passes of
 * a poller: that is how queues change hands.  Poller 0's admin pass
 * (the admin queue, events an I/O pass raised, work the context thread
 * left) takes the whole controller lock, so creating or deleting an I/O
 * queue there is the same handover as on the context thread: the owner
 * is between passes, its next pass sees the queue or does not.
 * Trapped and ioeventfd modes have one poller, whose pass takes the
 * whole controller lock as before (full_pass).
 *
 * Locking: a pass holds its lock for one pass over the queues.  The
 * context thread (register writes, DMA unmap, reset) raises pause_req
 * before taking the controller lock; the pollers do not start a pass
 * while pause_req is set, so the context thread gets in after at most
 * one pass of each.
 * The pass lets go of the lock while it waits for a DMA_READ/DMA_WRITE
 * reply (fd-less guest memory, ctrl_dma): the context thread is the one
 * that receives that reply, and holding the lock the context thread may
 * be waiting for would stall both until the call timed out.  (It lets
 * go around every mu_dma_read/mu_dma_write, fd-backed memory too: an I/O
 * command's PRP list is read that way.)  Meanwhile the controller lock
 * may change anything; the command goes on unless its own SQ or CQ was
 * torn down (q_gone): with several pollers the admin pass deletes and
 * creates other queues of this very poller in that window.
 * Because every guest-memory reference the poller takes for a command is
 * put before its pass ends, while the context thread holds the lock the
 * poller holds no data references: what the DMA unmap callback needs.
 *
 * In trapped mode the same thread runs the commands whenever the guest
 * has memory without an fd: the context thread never waits for a reply
 * of its own (muser.h), so a doorbell it takes then only records the
 * tail and leaves the work here (ctrl_defer); with fd memory only it
 * runs the commands itself, as before, at no cost of a thread switch.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "nvme.h"

/* Commands from one SQ a pass, so queues are served in turn and the
 * context thread never waits long for the lock. */
#define SQ_BUDGET 64u

#define SPIN_NS 20000ull        /* busy-poll this long after the last work */
#define YIELD_NS 200000ull      /* then yield the CPU until this */
#define NAP_MIN_NS 5000L        /* then sleep between passes, doubling */
#define NAP_MAX_NS 200000L      /* up to this: ~5k wakeups a second */
#define IDLE_CHECK 16u          /* spinning: idle passes per clock read */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Every poller's mutex in order, then ctrl->lock: the controller lock. */
static void lock_all(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < c->nr_pollers; i++)
        pthread_mutex_lock(&c->pollers[i].lock);
    pthread_mutex_lock(&c->lock);
}

static void unlock_all(struct nvme_ctrl *c)
{
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = c->nr_pollers; i-- > 0;)
        pthread_mutex_unlock(&c->pollers[i].lock);
}

void ctrl_lock(struct nvme_ctrl *c)
{
    __atomic_add_fetch(&c->pause_req, 1, __ATOMIC_SEQ_CST);
    lock_all(c);
}

/* The pollers have doorbells to watch, or commands the context thread
 * left (read under any poller's mutex: it changes under all of them). */
static bool poller_has_work(const struct nvme_ctrl *c)
{
    return ctrl_running(c) && (c->db_poll || c->work_pending);
}

void ctrl_unlock(struct nvme_ctrl *c)
{
    /* Everything poller_has_work() reads changes under the lock. */
    if (poller_has_work(c)) {
        for (unsigned i = 0; i < c->nr_pollers; i++) {
            if (c->pollers[i].idle)
                pthread_cond_signal(&c->pollers[i].wake);
        }
    }
    unlock_all(c);
    __atomic_sub_fetch(&c->pause_req, 1, __ATOMIC_SEQ_CST);
}

/* This thread is a poller (ctrl_dma leaves the lock only there). */
static __thread bool on_poller;
/* ...running an I/O pass of this poller: only its mutex is held. */
static __thread struct nvme_poller *io_pass;
static __thread unsigned common_depth;

bool ctrl_in_io_pass(void)
{
    return io_pass != NULL;
}

void ctrl_common_lock(struct nvme_ctrl *c)
{
    if (io_pass != NULL && common_depth++ == 0)
        pthread_mutex_lock(&c->lock);
}

void ctrl_common_unlock(struct nvme_ctrl *c)
{
    if (io_pass != NULL && --common_depth == 0)
        pthread_mutex_unlock(&c->lock);
}

struct nvme_pass *ctrl_pass(struct nvme_ctrl *c)
{
    return io_pass != NULL ? &io_pass->pass : &c->pass;
}

struct nvme_io_stats *ctrl_io_stats(struct nvme_ctrl *c)
{
    return io_pass != NULL ? &io_pass->io : &c->smart.io;
}

unsigned ctrl_queue_poller(const struct nvme_ctrl *c, unsigned cqid)
{
    return cqid % c->nr_pollers;
}

bool ctrl_defer(struct nvme_ctrl *c)
{
    if (on_poller || c->fdless_maps == 0 || !c->poller_started)
        return false;
    c->work_pending = true;
    return true;
}

/* The queues of the pass's command lost their memory after epoch (a
 * pass that names none: any queue did). */
static bool pass_queues_gone(const struct nvme_ctrl *c,
                             const struct nvme_pass *pass, uint64_t epoch)
{
    if (c->q_epoch == epoch)
        return false;
    if (pass->sq == NULL && pass->cq == NULL)
        return true;
    if (pass->sq != NULL && c->q_gone[2 * (size_t)(pass->sq - c->sq)] > epoch)
        return true;
    return pass->cq != NULL &&
           c->q_gone[2 * (size_t)(pass->cq - c->cq) + 1] > epoch;
}

int ctrl_dma(struct nvme_ctrl *c, uint64_t iova, void *buf, size_t len,
             bool to_guest)
{
    struct nvme_poller *p = io_pass;
    struct nvme_pass *pass = ctrl_pass(c);
    uint64_t epoch;
    int rc;

    if (!on_poller)
        return to_guest ? mu_dma_write(c->ctx, iova, buf, len)
                        : mu_dma_read(c->ctx, iova, buf, len);
    epoch = c->q_epoch;
    if (p != NULL)
        pthread_mutex_unlock(&p->lock);
    else
        unlock_all(c);
    rc = to_guest ? mu_dma_write(c->ctx, iova, buf, len)
                  : mu_dma_read(c->ctx, iova, buf, len);
    if (p != NULL)
        pthread_mutex_lock(&p->lock);
    else
        lock_all(c);
    if (pass_queues_gone(c, pass, epoch)) {
        /* A delete, reset or unmap took the command's own queues
         * meanwhile: the queues it came from (and goes back to) may be
         * new ones by now.  Another queue's teardown is no concern of
         * it: with several pollers the admin pass deletes and creates
         * queues while the other pollers wait here for their commands,
         * and cancelling those would drop them without a completion. */
        pass->cancelled = true;
        return -ECANCELED;
    }
    if (c->mig_stopped) {
        /* Stopped for migration meanwhile: no more DMA (the library
         * refuses it now).  A copy that got through is done; either way
         * the command goes no further (sq_process). */
        pass->mig_stopped = true;
        if (rc < 0)
            return -ECANCELED;
    }
    return rc;
}

static uint32_t db_load(const struct nvme_ctrl *c, unsigned index)
{
    return __atomic_load_n(&c->db[index], __ATOMIC_ACQUIRE) & 0xffff;
}

/* Which queues a pass serves: all of them (trapped and ioeventfd modes),
 * the admin pair, or those of one poller (an I/O pass). */
#define PASS_ALL (-1)
#define PASS_ADMIN (-2)

static bool serves(const struct nvme_ctrl *c, int who, unsigned cqid)
{
    if (who == PASS_ALL)
        return true;
    if (who == PASS_ADMIN)
        return cqid == 0;
    return cqid != 0 && ctrl_queue_poller(c, cqid) == (unsigned)who;
}

/* Head doorbells: only a changed value is a write. */
static void poll_cqs(struct nvme_ctrl *c, int who)
{
    unsigned top = who == PASS_ADMIN ? 1 : c->q_top;

    for (unsigned q = 0; q < top; q++) {
        struct nvme_cq *cq = &c->cq[q];
        uint32_t h;

        if (!cq->valid || !serves(c, who, q))
            continue;
        h = db_load(c, 2 * q + 1);
        /* A value already refused is not a new write. */
        if (h != cq->head && h != cq->bad_head)
            db_write(c, 2 * q + 1, h);
    }
}

static unsigned poll_sqs(struct nvme_ctrl *c, int who)
{
    struct nvme_pass *pass = ctrl_pass(c);
    unsigned top = who == PASS_ADMIN ? 1 : c->q_top;
    unsigned done = 0;

    for (unsigned q = 0; q < top; q++) {
        struct nvme_sq *sq = &c->sq[q];
        uint32_t t;

        if (!sq->valid || !serves(c, who, sq->cqid))
            continue;
        if (!c->db_poll) {
            /* Trapped: the tail came in a message (db_write). */
            if (sq->head != sq->tail && !sq->stalled)
                done += sq_process(c, sq, SQ_BUDGET);
            if (pass->cancelled || pass->mig_stopped)
                break;
            continue;
        }
        t = db_load(c, 2 * q);
        if (t != sq->tail && t != sq->bad_tail) {
            if (t >= sq->size) {
                db_write(c, 2 * q, t);      /* reports it */
                continue;
            }
            sq->tail = t;
            sq->bad_tail = UINT32_MAX;
        }
        if (sq->head != sq->tail && !sq->stalled)
            done += sq_process(c, sq, SQ_BUDGET);
        if (pass->cancelled || pass->mig_stopped)
            break;      /* the queues changed under us: start over */
    }
    return done;
}

/* One pass under the controller lock over the queues who names: the
 * number of commands run, or -1 when there is nothing to poll. */
static int poll_pass(struct nvme_ctrl *c, int who)
{
    unsigned done;
    bool pending;

    if (!poller_has_work(c))
        return -1;
    c->pass.cancelled = false;
    c->pass.mig_stopped = false;
    /* What the context thread left (ctrl_defer): in trapped mode the
     * SQs it rang, and in any mode the events it raised; and what the
     * I/O passes raised. */
    pending = c->work_pending;
    c->work_pending = false;
    if (__atomic_exchange_n(&c->aen_kick, 0, __ATOMIC_ACQ_REL))
        pending = true;
    if (c->db_poll)
        poll_cqs(c, who);
    done = poll_sqs(c, who);
    if (pending)
        aen_deliver(c);
    for (unsigned q = 0; !c->db_poll && q < c->q_top; q++) {
        /* Trapped: again while work is left (the budget, a stall). */
        if (c->sq[q].valid && c->sq[q].head != c->sq[q].tail &&
            !c->sq[q].stalled)
            c->work_pending = true;
    }
    intr_tick(c);
    return (int)done;
}

/* Poller 0, polled mode, under its own mutex: the admin queue has a new
 * doorbell value or work left, or events wait to go out. */
static bool admin_due(const struct nvme_ctrl *c)
{
    const struct nvme_sq *sq = &c->sq[0];
    const struct nvme_cq *cq = &c->cq[0];
    uint32_t v;

    if (c->work_pending || __atomic_load_n(&c->aen_kick, __ATOMIC_ACQUIRE))
        return true;
    if (sq->valid) {
        v = db_load(c, 0);
        if ((v != sq->tail && v != sq->bad_tail) ||
            (sq->head != sq->tail && !sq->stalled))
            return true;
    }
    if (cq->valid) {
        v = db_load(c, 1);
        if (v != cq->head && v != cq->bad_head)
            return true;
    }
    return false;
}

/*
 * Polled mode: one I/O pass over this poller's queues under its own
 * mutex, then for poller 0 the admin queue under the controller lock when
 * it has something, else the coalescing clock under ctrl->lock.  The
 * number of commands run, or -1 when there is nothing to poll.
 */
static int split_pass(struct nvme_poller *p)
{
    struct nvme_ctrl *c = p->c;
    bool admin = false;
    int done, n;

    pthread_mutex_lock(&p->lock);
    if (!poller_has_work(c)) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    io_pass = p;
    p->pass = (struct nvme_pass){ false, false };
    poll_cqs(c, (int)p->id);
    done = (int)poll_sqs(c, (int)p->id);
    io_pass = NULL;
    if (p->id == 0)
        admin = admin_due(c);
    pthread_mutex_unlock(&p->lock);
    if (p->id != 0)
        return done;
    if (admin) {
        ctrl_lock(c);
        n = poll_pass(c, PASS_ADMIN);
        ctrl_unlock(c);
        if (n > 0)
            done += n;
    } else {
        pthread_mutex_lock(&c->lock);
        intr_tick(c);
        pthread_mutex_unlock(&c->lock);
    }
    return done;
}

/* Trapped and ioeventfd modes: every queue, under the controller lock. */
static int full_pass(struct nvme_poller *p)
{
    struct nvme_ctrl *c = p->c;
    int done;

    lock_all(c);
    done = poll_pass(c, PASS_ALL);
    unlock_all(c);
    return done;
}

/* Disabled, failed, shut down, stopped for migration, or the ioeventfds
 * serve the doorbells: only the controller lock's holders change that,
 * and they wake us when they do (ctrl_unlock). */
static void idle_wait(struct nvme_poller *p)
{
    struct nvme_ctrl *c = p->c;

    pthread_mutex_lock(&p->lock);
    p->idle = true;
    while (!poller_has_work(c) &&
           !__atomic_load_n(&c->poller_stop, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&p->wake, &p->lock);
    p->idle = false;
    pthread_mutex_unlock(&p->lock);
}

static void nap(long ns)
{
    struct timespec ts = { 0, ns };

    nanosleep(&ts, NULL);
}

static void *poller_main(void *arg)
{
    struct nvme_poller *p = arg;
    struct nvme_ctrl *c = p->c;
    bool split = c->opts.db_mode == NVME_DB_POLLED;
    uint64_t idle_since = 0;        /* 0: not idle at the last check */
    unsigned idle_passes = 0;
    bool spinning = true;
    long sleep_ns = NAP_MIN_NS;
    char name[16];

    on_poller = true;
    /* Tests find poller 0 by this name (test_poller_idle). */
    if (p->id == 0)
        snprintf(name, sizeof(name), "nvme-poller");
    else
        snprintf(name, sizeof(name), "nvme-poller-%u", p->id % 100);
    pthread_setname_np(pthread_self(), name);
    /* Let "a few microseconds" mean that, not the default 50 us slack. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    while (!__atomic_load_n(&c->poller_stop, __ATOMIC_ACQUIRE)) {
        uint64_t idle, now;
        int done;

        if (__atomic_load_n(&c->pause_req, __ATOMIC_ACQUIRE)) {
            sched_yield();
            continue;
        }
        done = split ? split_pass(p) : full_pass(p);
        if (done < 0)
            idle_wait(p);
        if (done != 0) {
            sleep_ns = NAP_MIN_NS;
            idle_since = 0;
            idle_passes = 0;
            spinning = true;
            continue;
        }
        /* A clock read costs more than an idle pass over a queue or two:
         * while spinning, look at the clock every IDLE_CHECK passes. */
        if (spinning && ++idle_passes % IDLE_CHECK != 0) {
            cpu_relax();
            continue;
        }
        now = now_ns();
        if (idle_since == 0)
            idle_since = now;
        idle = now - idle_since;
        spinning = idle < SPIN_NS;
        if (spinning) {
            cpu_relax();
        } else if (idle < YIELD_NS) {
            sched_yield();
        } else {
            nap(sleep_ns);
            if (sleep_ns < NAP_MAX_NS)
                sleep_ns = sleep_ns * 2 < NAP_MAX_NS ? sleep_ns * 2 : NAP_MAX_NS;
        }
    }
    return NULL;
}

void pollers_init(struct nvme_ctrl *c, unsigned n)
{
    c->nr_pollers = n;
    for (unsigned i = 0; i < n; i++) {
        struct nvme_poller *p = &c->pollers[i];

        p->c = c;
        p->id = i;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
    }
}

void pollers_fini(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < c->nr_pollers; i++) {
        pthread_cond_destroy(&c->pollers[i].wake);
        pthread_mutex_destroy(&c->pollers[i].lock);
    }
}

static void stop_started(struct nvme_ctrl *c, unsigned started)
{
    __atomic_store_n(&c->poller_stop, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < started; i++) {
        struct nvme_poller *p = &c->pollers[i];

        pthread_mutex_lock(&p->lock);
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(c->pollers[i].thread, NULL);
}

int poller_start(struct nvme_ctrl *c)
{
    __atomic_store_n(&c->poller_stop, 0, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < c->nr_pollers; i++) {
        int rc = pthread_create(&c->pollers[i].thread, NULL, poller_main,
                                &c->pollers[i]);

        if (rc != 0) {
            stop_started(c, i);
            return -rc;
        }
    }
    c->poller_started = true;
    return 0;
}

void poller_stop(struct nvme_ctrl *c)
{
    if (!c->poller_started)
        return;
    stop_started(c, c->nr_pollers);
    c->poller_started = false;
}
