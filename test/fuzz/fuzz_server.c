/*
 * fuzz_server.c - a whole server context fed what a hostile client sends.
 *
 * One context with a test device (fuzz_server_dev.c) is created on the
 * first input and kept for the life of the process, the way a device
 * serves client after client.  Each input is one or more client sessions
 * over a link (fs_link_*, fuzz_server.h), and an op language (fuzz.h,
 * FS_OP_*) that sends bytes and fds on the client end, runs the context,
 * reads its replies (answering its DMA_READ and DMA_WRITE requests as the
 * flags say), and plays the device: DMA from the context thread (or a
 * device thread), interrupts, doorbells.
 *
 * Two harnesses share this file.  fuzz_server (fuzz_server_mem.c) links
 * the context to the client through the in-memory transport: no socket,
 * no thread, no sleep, and the client answers the server's DMA requests
 * on its turn while the context thread waits (lib/tran_mem.h).
 * fuzz_server_sock (fuzz_server_sock.c) uses real sockets, device threads
 * and real time, for what only those reach (see that file).
 *
 * What must hold, checked with abort() so libFuzzer keeps the input:
 *  - after a client hangs up the context lets it go within a bounded
 *    number of polls, and then every DMA region got its unmap callback
 *    (map callbacks == unmap callbacks, the table is empty, nothing is
 *    mmapped) and every fd the client sent is closed (the process holds as
 *    many fds as before the session);
 *  - the server only sends well-formed messages: valid headers, errnos in
 *    1..4095, and as commands only DMA_READ/DMA_WRITE;
 *  - every command gets exactly one reply, in order (none with no_reply),
 *    as long as the session is made of whole commands;
 *  - a context run until it has nothing to do has no whole command left
 *    unanswered;
 *  - mu_dma_get() returns exactly the range asked for, and the device's
 *    callbacks get only what the API promises (fuzz_server_dev.c).
 *
 * Timeouts are short (FS_TIMEOUT_MS) and the ops that may wait share a
 * budget per input, so no input costs more than a few tens of ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_server.h"
#include "test_hooks.h"

#define SLOW_BUDGET_MS 30       /* time an input may spend waiting */
#define MAX_SESSIONS 8
#define DETACH_POLLS 2000       /* x 1 ms */
#define RX_CAP (2 * FS_MSG_SIZE)

/* Per-input state. */
static struct {
    bool open;                  /* the client end is open */
    bool answer_now;            /* a DMA call of the device's: the client
                                   answers on its turn (memory link) */
    bool in_turn;               /* inside fs_client_turn() */
    struct fz_in *in;           /* the input being run */
    uint16_t next_id;
    unsigned reply_mode;
    uint64_t slow_ns;           /* time spent in ops that may wait */
    int kept[8];                /* eventfds we sent, to signal later */
    unsigned nr_kept;
    unsigned sessions;
    uint8_t rx[RX_CAP];         /* server bytes not yet cut into messages */
    size_t rx_len;
    uint8_t *pend;              /* our replies the socket did not take yet */
    size_t pend_len, pend_cap;
    /* Commands awaiting their reply, oldest first, while the session is
     * made of whole commands only (no raw bytes, no reply-typed
     * messages): then every one gets exactly one reply, in order. */
    struct { uint16_t id, cmd; bool no_reply; } expect[4096];
    unsigned exp_head, exp_tail;
    bool unordered;
} st;

static uint8_t dma_pattern[FS_DATA_XFER];

/*
 * Ops that may wait for a timeout (a DMA_READ nobody answers, a sleep)
 * share a time budget per input, so that no input is slow for long: the
 * fuzzer's speed is its coverage.
 */
bool fs_slow_begin(uint64_t *t0)
{
    if (st.slow_ns >= SLOW_BUDGET_MS * 1000000ull)
        return false;
    *t0 = mu_now_ns();
    return true;
}

void fs_slow_end(uint64_t t0)
{
    st.slow_ns += mu_now_ns() - t0;
}

/* ---------------- talking to the server ---------------- */

static void pend_add(const void *p, size_t len)
{
    if (st.pend_len + len > st.pend_cap) {
        size_t ncap = (st.pend_len + len) * 2;
        uint8_t *n = realloc(st.pend, ncap);

        check(n != NULL);
        st.pend = n;
        st.pend_cap = ncap;
    }
    memcpy(st.pend + st.pend_len, p, len);
    st.pend_len += len;
}

/* Push out our queued replies; false while the socket is full. */
static bool flush_pending(void)
{
    while (st.pend_len > 0) {
        long n = fs_link_send(st.pend, st.pend_len, NULL, 0);

        if (n < 0) {
            st.pend_len = 0;    /* the server hung up */
            return true;
        }
        if (n == 0)
            return false;
        memmove(st.pend, st.pend + n, st.pend_len - (size_t)n);
        st.pend_len -= (size_t)n;
    }
    return true;
}

static void free_pending(void)
{
    free(st.pend);
    st.pend = NULL;
}

/* Answer a server -> client request as the reply mode says. */
static void answer(const struct vfu_hdr *h, const uint8_t *body, size_t len)
{
    struct vfu_dma_access a;
    struct vfu_hdr r;
    size_t data = 0;

    if (st.reply_mode == FS_REPLY_NONE || (h->flags & VFU_F_NO_REPLY))
        return;
    if (st.reply_mode == FS_REPLY_ERROR) {
        vfu_hdr_init(&r, h->msg_id, h->cmd, VFU_HDR_SIZE,
                     VFU_F_TYPE_REPLY | VFU_F_ERROR, EFAULT);
        pend_add(&r, sizeof(r));
        return;
    }
    if (len < sizeof(a))
        return;
    memcpy(&a, body, sizeof(a));
    if (h->cmd == VFU_CMD_DMA_READ && a.count <= sizeof(dma_pattern))
        data = (size_t)a.count;
    if (st.reply_mode == FS_REPLY_BAD)
        data = data ? data - 1 : 1;
    vfu_hdr_init(&r, h->msg_id, h->cmd,
                 (uint32_t)(VFU_HDR_SIZE + sizeof(a) + data),
                 VFU_F_TYPE_REPLY, 0);
    pend_add(&r, sizeof(r));
    pend_add(&a, sizeof(a));
    pend_add(dma_pattern, data);
}

/* Cut what the server sent into messages; check and answer them. */
static void parse_rx(void)
{
    size_t off = 0;

    while (st.rx_len - off >= VFU_HDR_SIZE) {
        struct vfu_hdr h;

        memcpy(&h, st.rx + off, sizeof(h));
        /* The server must only ever send what a strict client accepts. */
        check(vfu_hdr_check(&h, FS_MSG_SIZE + 64) == 0);
        check(h.size <= RX_CAP);
        if (st.rx_len - off < h.size)
            break;
        if (fs_verbose)
            fprintf(stderr, "  <- %s id %u %s size %u error %u\n",
                    vfu_cmd_name(h.cmd), h.msg_id,
                    vfu_hdr_is_reply(&h) ? "reply" : "command", h.size,
                    h.error);
        if (!vfu_hdr_is_reply(&h)) {
            check(h.cmd == VFU_CMD_DMA_READ || h.cmd == VFU_CMD_DMA_WRITE);
            answer(&h, st.rx + off + VFU_HDR_SIZE, h.size - VFU_HDR_SIZE);
        } else {
            if (h.flags & VFU_F_ERROR)
                check(h.error > 0 && h.error < 4096);
            /* One reply per command, in the order they were sent.  A
             * no_reply command gets none, except an error when it broke
             * the handshake: the server says why before it hangs up. */
            while (!st.unordered && st.exp_head != st.exp_tail &&
                   st.expect[st.exp_head].no_reply &&
                   (st.expect[st.exp_head].id != h.msg_id ||
                    st.expect[st.exp_head].cmd != h.cmd))
                st.exp_head++;
            if (!st.unordered) {
                check(st.exp_head != st.exp_tail);
                check(st.expect[st.exp_head].id == h.msg_id &&
                      st.expect[st.exp_head].cmd == h.cmd);
                check(!st.expect[st.exp_head].no_reply ||
                      (h.flags & VFU_F_ERROR));
                st.exp_head++;
            }
        }
        off += h.size;
    }
    memmove(st.rx, st.rx + off, st.rx_len - off);
    st.rx_len -= off;
}

/*
 * Idle polls in a row.  Most of an input's epoll_waits (nine in ten, by
 * strace) came right after one that found nothing, with nothing done in
 * between: a run of FS_OP_POLL and FS_OP_WAIT ops.  Then only time can
 * have made an fd ready (the housekeeping timer; every other fd of the
 * context is written by this thread, in an op or in the library), so an
 * idle poll within QUIET_NS of the last one that polled is answered
 * "idle" without the syscall.  A timer tick is then served at most
 * QUIET_NS late, at the next poll.  fs_quiet_end() says something
 * happened; the memory link only (device threads write fds too).
 */
#define QUIET_NS 500000ull
static struct {
    bool on;                    /* nothing since an idle poll at ns */
    uint64_t ns;
} quiet;
/* Inside an FS_OP_POLL that goes through the context's loop only. */
static bool via_loop;

static void fs_quiet_end(void)
{
    quiet.on = false;
}

/* Read everything the server sent so far; fds received are closed, after
 * kicking eventfds (the device's ioeventfds) when asked to. */
static void signal_kept(void)
{
    uint64_t one = 1;

    for (unsigned i = 0; i < st.nr_kept; i++) {
        fs_quiet_end();         /* a mask/unmask fd the context watches */
        if (write(st.kept[i], &one, sizeof(one)) < 0) {
            /* full counter or not an eventfd: nothing to signal */
        }
    }
}

static void drop_kept(void)
{
    while (st.nr_kept > 0)
        close(st.kept[--st.nr_kept]);
}

static void drain_replies(bool kick)
{
    if (!st.open)
        return;
    for (;;) {
        int fds[64];
        unsigned nfd = 0;
        long n;

        check(st.rx_len < RX_CAP);
        n = fs_link_recv(st.rx + st.rx_len, RX_CAP - st.rx_len, fds,
                         ARRAY_SIZE(fds), &nfd);
        for (unsigned i = 0; i < nfd; i++) {
            uint64_t one = 1;

            if (kick && fz_is_eventfd(fds[i])) {
                fs_quiet_end();     /* an ioeventfd the context watches */
                if (write(fds[i], &one, sizeof(one)) < 0) {
                    /* a full counter: the device has a kick pending */
                }
            }
            close(fds[i]);
        }
        if (n <= 0)
            break;
        st.rx_len += (size_t)n;
        parse_rx();
    }
    flush_pending();
}

/* One round of the context's work, if it has any.  False when idle. */
static bool pump(bool drain, int wait_ms)
{
    int n;

    /* The memory link knows when the client's fd is readable: serve it
     * as the context's loop would on that event, without the epoll_wait
     * that could only say so (a syscall, and most of the context's
     * rounds).  Its other fds (timer, eventfds) are polled as soon as
     * the client has nothing more. */
    if (!via_loop && fs_link_pending() && !g_ctx->stopping) {
        mu_ctx_process(g_ctx);
        n = 1;
    } else if (!via_loop && quiet.on && wait_ms == 0 &&
               mu_now_ns() - quiet.ns < QUIET_NS) {
        n = 0;                  /* nothing can have come: see quiet */
    } else {
        /* The context's own epoll_wait says whether there was work: no
         * poll() of mu_ctx_fd() first (a syscall per round). */
        n = mu_ctx_poll_wait(g_ctx, wait_ms);
        if (n == 0 && wait_ms == 0 && !fs_link_threads) {
            quiet.on = true;
            quiet.ns = mu_now_ns();
        }
    }
    if (n != 0)
        fs_quiet_end();
    check(n >= 0);
    if (drain)
        drain_replies(false);
    return n > 0;
}

/* A whole command the context has read but not answered, with nothing
 * left to wake it: the client would wait for that reply forever. */
static bool stranded(void)
{
    const struct msgio *io = fs_link_msgio();
    struct vfu_hdr h;

    if (!mu_conn_attached(g_ctx) || io == NULL)
        return false;
    if (io->tail - io->head < VFU_HDR_SIZE)
        return false;
    memcpy(&h, io->buf + io->head, sizeof(h));
    return vfu_hdr_check(&h, io->max_size) < 0 || h.size <= io->tail - io->head;
}

/*
 * Commands a DMA call on the context thread parked run when the
 * housekeeping timer fires (ctx.c on_timer runs the backlog on every
 * tick): at once after a kick (dispatch.c, kick_if_parked, a 1 ns expiry
 * that may not have fired when a fast harness polls right after), or at
 * the next periodic tick.  So parked work is forgotten only if the timer
 * is not armed.  Returns the milliseconds until it fires, or -1.
 */
static int timer_next_ms(void)
{
    struct itimerspec its;
    bool periodic;

    if (timerfd_gettime(g_ctx->timer_fd, &its) < 0)
        return -1;
    periodic = its.it_interval.tv_sec != 0 || its.it_interval.tv_nsec != 0;
    /* A value of 0 is "disarmed" only for a one-shot timer: a periodic
     * one reads 0 while its expiry is due and not yet fired (a kick's
     * 1 ns, the hrtimer interrupt late on a loaded machine). */
    if ((!periodic && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) ||
        its.it_value.tv_sec > 0)
        return -1;
    return (int)(its.it_value.tv_nsec / 1000000) + 1;
}

static void run_ctx(bool drain)
{
    for (int i = 0; i < 64; i++) {
        if (!pump(drain, 0)) {
            /* Waits for the timer that runs parked work; the extra 100 ms
             * is only a bound. */
            int next_ms = stranded() ? timer_next_ms() : -1;

            if (next_ms >= 0 && pump(drain, next_ms + 100))
                continue;
            if (stranded()) {
                const struct msgio *io = fs_link_msgio();
                struct itimerspec its;

                timerfd_gettime(g_ctx->timer_fd, &its);
                fprintf(stderr, "stranded: buffered %zu timer "
                        "%ld.%09ld period %ld.%09ld drop %s\n",
                        io->tail - io->head,
                        (long)its.it_value.tv_sec, its.it_value.tv_nsec,
                        (long)its.it_interval.tv_sec, its.it_interval.tv_nsec,
                        g_ctx->drop_reason ? g_ctx->drop_reason : "-");
            }
            check(!stranded());
            return;
        }
    }
}

/* Send all of buf (fds with its first byte), letting the context read
 * when the socket is full.  Gives up when the server hangs up. */
static void tx(const void *buf, size_t len, const int *fds, unsigned nfds)
{
    size_t off = 0;
    int idle = 0;

    while (st.open && off < len && idle < 200) {
        long n = 0;

        if (flush_pending())
            n = fs_link_send((const uint8_t *)buf + off, len - off,
                             off == 0 ? fds : NULL, off == 0 ? nfds : 0);
        if (n < 0)
            break;
        if (n == 0) {
            /* Full: let the context read, unless it is the one waiting
             * for us (it must not run inside itself). */
            if (st.in_turn)
                break;
            idle++;
            pump(true, 1);
            continue;
        }
        off += (size_t)n;
    }
    /* Whatever follows a message cut short is misframed. */
    if (off < len)
        st.unordered = true;
}

static void expect_reply(uint16_t id, uint16_t cmd, bool no_reply)
{
    if (st.exp_tail == ARRAY_SIZE(st.expect))
        st.unordered = true;    /* too long to track: stop checking */
    else
        st.expect[st.exp_tail++] = (typeof(st.expect[0])){ id, cmd, no_reply };
}

static void send_version(bool write_multi)
{
    char json[256];
    uint8_t msg[VFU_HDR_SIZE + 4 + sizeof(json)];
    struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
    struct vfu_hdr h;
    int n;

    n = snprintf(json, sizeof(json),
                 "{\"capabilities\":{\"max_msg_fds\":8,"
                 "\"max_data_xfer_size\":%u,\"pgsizes\":4096%s}}",
                 FS_DATA_XFER, write_multi ? ",\"write_multiple\":true" : "");
    expect_reply(st.next_id, VFU_CMD_VERSION, false);
    vfu_hdr_init(&h, st.next_id++, VFU_CMD_VERSION,
                 (uint32_t)(VFU_HDR_SIZE + sizeof(v) + (size_t)n + 1),
                 VFU_F_TYPE_COMMAND, 0);
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), &v, sizeof(v));
    memcpy(msg + sizeof(h) + sizeof(v), json, (size_t)n + 1);
    tx(msg, h.size, NULL, 0);
}

static void connect_client(uint8_t flags, bool via_listen)
{
    fs_link_connect(via_listen);
    check(mu_conn_attached(g_ctx));
    st.open = true;
    st.next_id = 1;
    st.rx_len = 0;
    st.exp_head = st.exp_tail = 0;
    st.unordered = false;
    st.pend_len = 0;
    st.sessions++;
    if (flags & FS_F_VERSION)
        send_version(flags & FS_F_WRITE_MULTI);
}

/* Hang up and check that the context forgot everything of the client. */
/* The context's wake fd when the input began (see hang_up). */
static int fs_wake_before = -1;

static void hang_up(int fds_before)
{
    struct mu_dma_stats s;
    int i, fds_now;

    if (st.open) {
        fs_link_close();
        st.open = false;
    }
    drop_kept();
    for (i = 0; i < DETACH_POLLS && mu_conn_attached(g_ctx); i++)
        pump(false, 1);
    check(!mu_conn_attached(g_ctx));
    check(!mu_ctx_client_ready(g_ctx));
    check(g_ctx->calls == NULL && g_ctx->reqs == NULL &&
          g_ctx->reqs_done == NULL && g_ctx->nr_reqs == 0);

    /* Every region that was mapped was unmapped, exactly once. */
    check(fs_cnt.maps == fs_cnt.unmaps);
    mu_dma_get_stats(g_ctx, &s);
    check(s.regions == 0 && s.mapped_bytes == 0 && s.maps == s.unmaps);
    for (unsigned k = 0; k < FS_MAX_LIVE; k++)
        check(!fs_live[k].used);
    /* Every fd the client gave (DMA, irqs) is closed.  The context's
     * wake eventfd is made at its first wake and kept for its life: one
     * made during this input is the context's, not a leak. */
    if (fs_wake_before < 0 && g_ctx->wake_fd >= 0)
        fds_before++;
    /* The pool's fds are the harness's (made when a kind is first asked
     * for, kept for the process's life). */
    fds_now = fz_count_fds() - fz_pool_fds();
    if (fds_now != fds_before)
        fprintf(stderr, "fds: %d now, %d before\n", fds_now, fds_before);
    check(fds_now == fds_before);
    /* So the pool's fds are the harness's alone again. */
    fz_pool_recycle();
}

/* ---------------- the device's DMA ---------------- */

struct dma_job {
    uint64_t iova;
    size_t len;
    uint8_t mode;
    volatile int done;
    uint8_t buf[256 * 256];
};

static void dma_do(struct dma_job *j)
{
    unsigned act = j->mode & FS_DMA_ACT_MASK;
    mu_sg_t sg[4];
    int rc;

    switch (act) {
    case 0:
    case 1:
        rc = mu_dma_get(g_ctx, j->iova, j->len,
                        act == 0 ? MU_DMA_WRITE : MU_DMA_READ, sg, 4);
        check(rc != 0 && rc >= -4095);
        if (rc > 0) {
            fs_check_sg(sg, rc, j->iova, j->len, 4);
            fs_touch(sg, rc, act == 0);
            /* Held across the context's work: an unmap must wait.
             * (Only a device thread has the context work meanwhile.) */
            if ((j->mode & FS_DMA_HOLD) && fs_link_threads)
                usleep(2000);
            mu_dma_put(g_ctx, sg, (unsigned)rc);
        }
        break;
    case 2:
        rc = mu_dma_read(g_ctx, j->iova, j->buf, j->len);
        check(rc <= 0 && rc >= -4095);
        break;
    default:
        rc = mu_dma_write(g_ctx, j->iova, j->buf, j->len);
        check(rc <= 0 && rc >= -4095);
        break;
    }
    if (j->mode & FS_DMA_DIRTY)
        check(mu_dma_mark_dirty(g_ctx, j->iova, j->len) == 0);
}

static void *dma_thread(void *arg)
{
    struct dma_job *j = arg;

    dma_do(j);
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The context thread's request (mu_dma_*_async): one at a time, with a
 * buffer of its own that stays the library's until the callback. */
static struct {
    bool busy;
    uint8_t buf[256 * 256];
} areq;

static void areq_done(mu_ctx_t *ctx, void *arg, int status)
{
    check(ctx == g_ctx && arg == &areq && areq.busy);
    check(status <= 0 && status >= -4095);
    areq.busy = false;
}

static void op_dma(struct fz_in *in)
{
    uint8_t sel = fz_u8(in), off = fz_u8(in), len = fz_u8(in);
    uint8_t mode = fz_u8(in);
    const struct fs_live *l = fs_pick_region(sel, false);
    /* One job at a time (a device thread is joined before the op ends);
     * static, as allocating and clearing 64 KiB per op showed in the
     * memory harness's profile. */
    static struct dma_job job;
    struct dma_job *j = &job;
    uint64_t t0;
    pthread_t t;

    /* A DMA_READ/DMA_WRITE the client does not answer waits for the
     * receive timeout. */
    if (in->end || !fs_slow_begin(&t0))
        return;
    j->done = 0;
    j->iova = (l != NULL ? l->iova : (uint64_t)sel << 12) + ((uint64_t)off << 6);
    j->len = ((size_t)len + 1) * ((mode & FS_DMA_LARGE) ? 256 : 16);
    j->mode = mode;
    check(j->len <= sizeof(j->buf));
    memset(j->buf, 0x3c, j->len);
    if (!(mode & FS_DMA_THREAD) || !fs_link_threads) {
        unsigned act = mode & FS_DMA_ACT_MASK;
        int rc;

        /* On the context thread: translations and blocking copies (which
         * refuse memory that needs the client: -EDEADLK), or a request.
         * The client answers a request on its turn (memory link) when
         * it would be a device thread's call, answered in time there,
         * and leaves the rest to time out and be answered late, as the
         * socket harness does; it sends what the input has next
         * meanwhile. */
        if (act < 2 || areq.busy || (mode & FS_DMA_HOLD)) {
            dma_do(j);
        } else {
            memcpy(areq.buf, j->buf, j->len);
            rc = act == 2 ? mu_dma_read_async(g_ctx, j->iova, areq.buf, j->len,
                                              areq_done, &areq)
                          : mu_dma_write_async(g_ctx, j->iova, areq.buf, j->len,
                                               areq_done, &areq);
            check(rc <= 0 && rc >= -4095);
            if (rc == 0) {
                areq.busy = true;
                st.answer_now = mode & FS_DMA_THREAD;
                fs_client_turn();
                st.answer_now = false;
                run_ctx(true);
            }
        }
    } else {
        check(pthread_create(&t, NULL, dma_thread, j) == 0);
        /* Keep the context serving: the thread's DMA_READ/DMA_WRITE
         * replies come through it. */
        for (int i = 0; i < 1000 && !__atomic_load_n(&j->done, __ATOMIC_ACQUIRE); i++)
            pump(true, 1);
        pthread_join(t, NULL);
    }
    fs_slow_end(t0);
}

/* ---------------- the op language ---------------- */

static uint8_t msg_buf[VFU_HDR_SIZE + 0xffff];
static bool msg_busy;

static void op_send(struct fz_in *in, uint8_t p, bool build_hdr)
{
    const uint8_t *data;
    uint8_t cmd = 0, flagsel = 0;
    uint8_t *msg;
    bool in_use;
    int fds[3];
    bool efd[3];                /* made as an eventfd (fz_make_fd's kind) */
    unsigned nfds = p & 3, got = 0;
    size_t len;
    uint16_t want;

    if (build_hdr) {
        cmd = fz_u8(in);
        flagsel = fz_u8(in);
    }
    want = fz_u16(in);
    for (unsigned i = 0; i < nfds; i++) {
        uint8_t spec = fz_u8(in);
        int fd;

        if (in->end)
            break;
        fd = fz_make_fd(spec);
        if (fd >= 0) {
            efd[got] = (spec & 7) == FZ_FD_EVENTFD;
            fds[got++] = fd;
        }
    }
    len = fz_bytes(in, &data, want);
    /* One buffer of the largest size for every op (a malloc and free of
     * up to 64 KiB each was ~2% of the time under ASan), a new one only
     * when an op_send runs inside another (in the client's turn). */
    msg = msg_busy ? malloc(VFU_HDR_SIZE + len) : msg_buf;
    check(msg != NULL);
    in_use = msg == msg_buf;
    msg_busy = true;
    if (build_hdr) {
        struct vfu_hdr h;
        uint32_t flags;

        flags = flagsel == 0 ? VFU_F_TYPE_COMMAND :
                flagsel == 1 ? VFU_F_NO_REPLY :
                flagsel == 2 ? VFU_F_TYPE_REPLY : flagsel;
        /* A reply-typed message may answer one of the server's calls
         * (no reply then), and raw flags may break the header. */
        if (flagsel <= 1)
            expect_reply(st.next_id, cmd, flagsel == 1);
        else
            st.unordered = true;
        vfu_hdr_init(&h, st.next_id++, cmd, (uint32_t)(VFU_HDR_SIZE + len),
                     flags, 0);
        memcpy(msg, &h, sizeof(h));
        if (len > 0)
            memcpy(msg + sizeof(h), data, len);
        tx(msg, VFU_HDR_SIZE + len, fds, got);
    } else if (len > 0) {
        st.unordered = true;    /* raw bytes: any framing at all */
        memcpy(msg, data, len);
        tx(msg, len, fds, got);
    }
    if (in_use)
        msg_busy = false;
    else
        free(msg);
    for (unsigned i = 0; i < got; i++) {
        /* A client keeps its mask/unmask eventfds, to signal them. */
        if (st.nr_kept < ARRAY_SIZE(st.kept) && efd[i])
            st.kept[st.nr_kept++] = fds[i];
        else
            fz_close_fd(fds[i]);
    }
}

static void op_irq(struct fz_in *in, uint8_t p)
{
    enum mu_irq_type type = (enum mu_irq_type)(p % MU_IRQ_NUM);
    uint8_t vec = fz_u8(in);
    int rc;

    if (in->end)
        return;
    rc = mu_irq_trigger(g_ctx, type, vec);
    check(rc == 0 || rc == MU_IRQ_PENDING || rc == -EINVAL ||
          (rc < 0 && rc >= -4095));
    (void)mu_irq_masked(g_ctx, type, vec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size, false };
    uint8_t flags;
    int fds_before;

    if (g_ctx == NULL) {
        fs_verbose = getenv("FUZZ_VERBOSE") != NULL;
        fs_device_setup();
        fz_pool_init();         /* before the fds are counted */
        atexit(free_pending);
        memset(dma_pattern, 0xd5, sizeof(dma_pattern));
    }
    /* Counted anew for each input: between two, the sanitizers may open
     * fds of their own and keep them (the symbolizer's pipes, at
     * libFuzzer's first NEW_FUNC line). */
    fds_before = fz_count_fds() - fz_pool_fds();
    check(fds_before > 0);
    fs_wake_before = g_ctx->wake_fd;

    flags = fz_u8(&in);
    st.reply_mode = (flags & FS_F_REPLY_MASK) >> FS_F_REPLY_SHIFT;
    fs_reset_fails = flags & FS_F_RESET_FAILS;
    st.slow_ns = 0;
    st.sessions = 0;
    fs_cnt.overlaps = 0;
    /* Per input on a realized context, between clients: the public setters
     * refuse after realize (-EBUSY), so the field and a test hook. */
    g_ctx->reset_unmaps_dma = flags & FS_F_RESET_UNMAPS;
    mu_dma__set_overlap(g_ctx, (flags & FS_F_REPLACE) ? MU_OVERLAP_REPLACE
                                                      : MU_OVERLAP_REJECT,
                        (flags & FS_F_OVERLAP_CB) ? fs_overlap_cb : NULL);

    st.in = &in;
    fs_quiet_end();
    connect_client(flags, false);
    while (!in.end) {
        uint8_t op = fz_u8(&in), p = op >> 3;
        bool still;

        if (in.end)
            break;
        if (fs_verbose)
            fprintf(stderr, "op %u p %u\n", op & 7, p);
        /* Ops that leave the context's fds as they were (see quiet):
         * polls; reads of what the server sent (a DRAIN that writes to an
         * fd the context watches ends quiet itself); and interrupts, which
         * write only the client's trigger eventfds, never watched by the
         * context (mask/unmask fds are other files: each op_send makes
         * its own fds, and the harness sends none twice). */
        still = ((op & 7) == FS_OP_POLL && !(p & 2)) ||
                (op & 7) == FS_OP_WAIT || (op & 7) == FS_OP_DRAIN ||
                (op & 7) == FS_OP_IRQ;
        if (!still)
            fs_quiet_end();
        switch (op & 7) {
        case FS_OP_SEND:
            op_send(&in, p, false);
            break;
        case FS_OP_MSG:
            op_send(&in, p, true);
            break;
        case FS_OP_POLL:
            if (p & 2) {
                /* The client's fd signalled (if it has sent anything)
                 * and served through epoll, as a socket's would be. */
                via_loop = true;
                fs_link_direct(false);
                run_ctx(p & 1);
                fs_link_direct(true);
                via_loop = false;
            } else {
                run_ctx(p & 1);
            }
            break;
        case FS_OP_DRAIN:
            if (p & 2)
                signal_kept();
            drain_replies(p & 1);
            break;
        case FS_OP_DMA:
            op_dma(&in);
            break;
        case FS_OP_IRQ:
            op_irq(&in, p);
            break;
        case FS_OP_RECONNECT:
            if (st.sessions < MAX_SESSIONS) {
                hang_up(fds_before);
                connect_client(flags, p & 1);
            }
            break;
        case FS_OP_WAIT: {
            uint64_t t0;

            /* Mostly short; the last quarter of p outlasts the receive
             * timeout, so a partial message gets the client dropped. */
            if (!fs_link_threads) {
                run_ctx(true);  /* no real time on the memory link */
            } else if (fs_slow_begin(&t0)) {
                usleep(p >= 24 ? (FS_TIMEOUT_MS + 2) * 1000
                               : ((unsigned)p % 8 + 1) * 1000);
                run_ctx(true);
                fs_slow_end(t0);
            }
            break;
        }
        }
        if (!still)
            fs_quiet_end();
    }
    hang_up(fds_before);
    st.in = NULL;
    return 0;
}

/*
 * The client's turn after the context thread sent a DMA request of its
 * own (op_dma).  When the op says the client answers in time, it first
 * sends the messages the input has next (they reach the server while
 * the request waits), then reads the request and answers it as the reply
 * mode says.
 */
void fs_client_turn(void)
{
    if (!st.answer_now || st.in_turn || st.in == NULL || !st.open)
        return;
    st.in_turn = true;
    while (st.in->n > 0) {
        uint8_t op = st.in->p[0], kind = op & 7;

        if (kind != FS_OP_SEND && kind != FS_OP_MSG)
            break;
        fz_u8(st.in);
        op_send(st.in, op >> 3, kind == FS_OP_MSG);
    }
    drain_replies(false);
    st.in_turn = false;
}
