/*
 * client_mig.c - driving a live migration from the client: the device
 * state (DEVICE_FEATURE MIGRATION / MIG_DEVICE_STATE), the data stream
 * (MIG_DATA_READ / MIG_DATA_WRITE), and muc_migrate(), which moves a
 * device between two servers.  Dirty page logging is client_dma.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_priv.h"
#include "mig_wire.h"
#include "zero.h"

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A DEVICE_FEATURE GET of 'len' bytes of data into out. */
static int feature_get(muc_t *c, uint32_t feature, void *out, size_t len)
{
    struct vfu_device_feature f = {
        .argsz = (uint32_t)(sizeof(f) + len),
        .flags = VFU_FEATURE_GET | feature,
    }, e;
    struct iovec iov[2] = { { 0 }, { &f, sizeof(f) } };
    struct mu_msg m;
    int rc;

    rc = cl_call(c, VFU_CMD_DEVICE_FEATURE, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, sizeof(f) + len, sizeof(f) + len,
                                  0)) < 0)
        return rc;
    memcpy(&e, m.body, sizeof(e));
    if (e.flags != f.flags || e.argsz != f.argsz)
        return cl_reject(c, &m);
    memcpy(out, m.body + sizeof(e), len);
    mu_msg_release(&m);
    return 0;
}

int muc_mig_features(muc_t *c, uint64_t *flags)
{
    return feature_get(c, VFU_FEATURE_MIGRATION, flags, sizeof(*flags));
}

int muc_mig_get_state(muc_t *c, uint32_t *state)
{
    struct vfu_mig_device_state st;
    int rc = feature_get(c, VFU_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st));

    if (rc == 0)
        *state = st.device_state;
    return rc;
}

int muc_mig_set_state(muc_t *c, uint32_t state)
{
    struct {
        struct vfu_device_feature f;
        struct vfu_mig_device_state st;
    } __attribute__((packed)) req = {
        { sizeof(req), VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE },
        { state, UINT32_MAX },
    }, e;
    struct iovec iov[2] = { { 0 }, { &req, sizeof(req) } };
    struct mu_msg m;
    int rc;

    rc = cl_call(c, VFU_CMD_DEVICE_FEATURE, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, sizeof(req), sizeof(req), 0)) < 0)
        return rc;
    memcpy(&e, m.body, sizeof(e));
    if (e.f.flags != req.f.flags || e.st.device_state != state)
        return cl_reject(c, &m);
    mu_msg_release(&m);
    return 0;
}

size_t muc_mig_read_max(const muc_t *c)
{
    uint32_t a = c->opts.max_data_xfer_size, b = c->caps.max_data_xfer_size;

    return a < b ? a : b;
}

ssize_t muc_mig_read(muc_t *c, void *buf, size_t len)
{
    struct vfu_mig_data rq, e;
    struct iovec iov[2] = { { 0 }, { &rq, sizeof(rq) } };
    struct mu_msg m;
    int rc;

    if (len == 0 || len > muc_mig_read_max(c))
        return -EINVAL;
    rq.argsz = (uint32_t)(sizeof(rq) + len);
    rq.size = (uint32_t)len;
    rc = cl_call(c, VFU_CMD_MIG_DATA_READ, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, sizeof(e), sizeof(e) + len, 0)) < 0)
        return rc;
    memcpy(&e, m.body, sizeof(e));
    if (e.size != m.len - sizeof(e) || e.argsz != m.len)
        return cl_reject(c, &m);
    memcpy(buf, m.body + sizeof(e), e.size);
    mu_msg_release(&m);
    return (ssize_t)e.size;
}

int muc_mig_write(muc_t *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t max = c->caps.max_data_xfer_size;

    if (max == 0)
        return -EINVAL;
    while (len > 0) {
        size_t n = len < max ? len : max;
        struct vfu_mig_data rq = { (uint32_t)(sizeof(rq) + n), (uint32_t)n };
        struct iovec iov[3] = { { 0 }, { &rq, sizeof(rq) },
                                { (void *)p, n } };
        struct mu_msg m;
        int rc;

        rc = cl_call(c, VFU_CMD_MIG_DATA_WRITE, iov, 3, NULL, 0, &m);
        if (rc < 0 || (rc = cl_expect(c, &m, 0, 0, 0)) < 0)
            return rc;
        mu_msg_release(&m);
        p += n;
        len -= n;
    }
    return 0;
}

/* ---------------- moving a device ---------------- */

/*
 * The stop-and-copy stream, pipelined: this thread reads chunks from src
 * into a ring of buffers while a second thread writes them to dst, so
 * the source's save and the destination's load (two processes, often two
 * CPUs) overlap instead of taking turns; the downtime is then the slower
 * of the two rather than their sum.  Each connection is used by one
 * thread only.
 */
#define PIPE_BUFS 4u

struct pipe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint8_t *buf[PIPE_BUFS];
    size_t len[PIPE_BUFS];
    unsigned head, tail;        /* filled: [tail, head), counted mod 2^32 */
    bool eof;                   /* the reader is done (or failed) */
    int wrc;                    /* the writer's error */
    muc_t *dst;
};

static void *pipe_writer(void *arg)
{
    struct pipe *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        unsigned i;
        int rc;

        while (p->head == p->tail && !p->eof)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->head == p->tail)
            break;
        i = p->tail % PIPE_BUFS;
        pthread_mutex_unlock(&p->lock);
        rc = muc_mig_write(p->dst, p->buf[i], p->len[i]);
        pthread_mutex_lock(&p->lock);
        p->tail++;
        if (rc < 0)
            p->wrc = rc;
        pthread_cond_broadcast(&p->cond);
        if (rc < 0)
            break;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Buffers allocated and touched before the source stops: a first touch
 * costs a page fault, and these would be paid in the downtime. */
static int pipe_init(struct pipe *p, muc_t *dst, size_t chunk)
{
    memset(p, 0, sizeof(*p));
    p->dst = dst;
    for (unsigned i = 0; i < PIPE_BUFS; i++) {
        p->buf[i] = malloc(chunk);
        if (p->buf[i] == NULL) {
            while (i-- > 0)
                free(p->buf[i]);
            return -ENOMEM;
        }
        memset(p->buf[i], 0, chunk);
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    return 0;
}

static void pipe_fini(struct pipe *p)
{
    for (unsigned i = 0; i < PIPE_BUFS; i++)
        free(p->buf[i]);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

/* pump() through the pipe: the stream until src is drained. */
static int pipe_pump(struct pipe *p, muc_t *src, size_t chunk,
                     uint64_t *bytes)
{
    pthread_t th;
    int rc = 0, err;

    err = pthread_create(&th, NULL, pipe_writer, p);
    if (err != 0)
        return -err;
    pthread_mutex_lock(&p->lock);
    while (rc == 0) {
        unsigned i;
        ssize_t n;

        while (p->head - p->tail == PIPE_BUFS && p->wrc == 0)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->wrc != 0)
            break;
        i = p->head % PIPE_BUFS;
        pthread_mutex_unlock(&p->lock);
        n = muc_mig_read(src, p->buf[i], chunk);
        pthread_mutex_lock(&p->lock);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        *bytes += (uint64_t)n;
        if (n > 0) {
            p->len[i] = (size_t)n;
            p->head++;
            pthread_cond_broadcast(&p->cond);
        }
        if ((size_t)n < chunk)
            break;
    }
    p->eof = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(th, NULL);
    return rc != 0 ? rc : p->wrc;
}

/* Copy what src has to give now into dst; *bytes grows by it. */
static int pump(muc_t *src, muc_t *dst, uint8_t *buf, size_t chunk,
                uint64_t *bytes)
{
    for (;;) {
        ssize_t n = muc_mig_read(src, buf, chunk);
        int rc;

        if (n < 0)
            return (int)n;
        if (n > 0 && (rc = muc_mig_write(dst, buf, (size_t)n)) < 0)
            return rc;
        *bytes += (uint64_t)n;
        if ((size_t)n < chunk)
            return 0;
    }
}

int muc_migrate(muc_t *src, muc_t *dst, const struct muc_migrate_opts *opts,
                struct muc_migrate_stats *stats)
{
    struct muc_migrate_stats st = { 0 };
    uint64_t fs, fd, t0;
    size_t chunk;
    struct pipe pipe;
    bool precopy;
    uint8_t *buf;
    int rc;

    if (opts != NULL && !mu_all_zero(opts->reserved, sizeof(opts->reserved)))
        return -EINVAL;
    chunk = muc_mig_read_max(src);
    if ((rc = muc_mig_features(src, &fs)) < 0 ||
        (rc = muc_mig_features(dst, &fd)) < 0)
        return rc;
    if (!(fs & MUC_MIG_F_STOP_COPY) || !(fd & MUC_MIG_F_STOP_COPY))
        return -ENOTSUP;
    precopy = opts != NULL && opts->precopy_rounds > 0 &&
              (fs & MUC_MIG_F_PRE_COPY) && (fd & MUC_MIG_F_PRE_COPY);
    buf = malloc(chunk);
    if (buf == NULL)
        return -ENOMEM;
    if ((rc = pipe_init(&pipe, dst, chunk)) < 0) {
        free(buf);
        return rc;
    }

    /* The destination is ready to take the stream before the source
     * stops, so the downtime is the copy alone. */
    rc = muc_mig_set_state(dst, MUC_MIG_RESUMING);
    if (rc < 0)
        goto out;
    t0 = now_ns();
    if (precopy) {
        rc = muc_mig_set_state(src, MUC_MIG_PRE_COPY);
        for (unsigned i = 0; rc == 0 && i < opts->precopy_rounds; i++) {
            uint64_t before = st.precopy_bytes;

            rc = pump(src, dst, buf, chunk, &st.precopy_bytes);
            /* Less than one read's worth: about nothing is left to
             * send while running, another round would not shorten the
             * stop. */
            if (st.precopy_bytes - before < chunk)
                break;
        }
        if (rc < 0)
            goto abort;
    }
    t0 = now_ns();
    rc = muc_mig_set_state(src, MUC_MIG_STOP_COPY);
    if (rc == 0)
        rc = pipe_pump(&pipe, src, chunk, &st.stopcopy_bytes);
    if (rc == 0)
        rc = muc_mig_set_state(dst, MUC_MIG_RUNNING);
    if (rc < 0)
        goto abort;
    st.downtime_ns = now_ns() - t0;
    rc = muc_mig_set_state(src, MUC_MIG_STOP);
    goto out;
abort:
    /* Back to where the source was; dst keeps whatever it reached. */
    muc_mig_set_state(src, MUC_MIG_RUNNING);
out:
    pipe_fini(&pipe);
    free(buf);
    if (stats != NULL)
        *stats = st;
    return rc;
}
