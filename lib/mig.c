/*
 * mig.c - live migration, server side: the state machine of mig_fsm.c
 * driven on the device's callbacks (muser.h), and the save and load of its
 * data stream.  The messages (DEVICE_FEATURE MIGRATION and
 * MIG_DEVICE_STATE, MIG_DATA_READ and MIG_DATA_WRITE, protocol §3.13 and
 * §3.14) are cmd_mig.c's.
 *
 * The state is written only on the context thread; device threads read
 * it, and the "quiet" flag that gates their DMA and interrupts, without a
 * lock.  The flag changes on the edge between running and stopped states:
 * cleared before the device's callback into a running state (its threads
 * may start at once), set after its callback into a stopped state (it may
 * still need DMA to finish what is in flight).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mig.h"
#include "mig_fsm.h"
#include "thread_check.h"

struct mu_mig {
    struct mu_mig_callbacks cb;
    uint32_t wire_flags;        /* MIG_F_*: the migration flags offered */
    uint32_t state;             /* enum mig_state; atomic for readers */
};

int mu_mig_setup(mu_ctx_t *ctx, const struct mu_mig_callbacks *cb)
{
    struct mu_mig *m;

    if (ctx->realized)
        return -EBUSY;
    if (cb == NULL || cb->size != sizeof(*cb) ||
        (cb->flags & ~(unsigned)MU_MIG_F_PRE_COPY) != 0 ||
        cb->save == NULL || cb->load == NULL)
        return -EINVAL;
    m = ctx->mig != NULL ? ctx->mig : calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->cb = *cb;
    m->wire_flags = MIG_F_STOP_COPY |
                    (cb->flags & MU_MIG_F_PRE_COPY ? MIG_F_PRE_COPY : 0);
    m->state = MIG_RUNNING;
    ctx->mig = m;
    return 0;
}

void mu_mig_fini(mu_ctx_t *ctx)
{
    free(ctx->mig);
    ctx->mig = NULL;
}

enum mu_mig_state mu_mig_state(const mu_ctx_t *ctx)
{
    if (ctx->mig == NULL)
        return MU_MIG_RUNNING;
    return (enum mu_mig_state)__atomic_load_n(&ctx->mig->state,
                                              __ATOMIC_ACQUIRE);
}

static uint32_t cur_state(const mu_ctx_t *ctx)
{
    return ctx->mig->state;     /* context thread: the only writer */
}

int mu_mig_pending(mu_ctx_t *ctx, uint64_t *initial, uint64_t *dirty)
{
    struct mu_mig *m = ctx->mig;
    int rc;

    MU_ASSERT_CTX_THREAD(ctx);
    if (m == NULL || m->cb.pending == NULL ||
        (cur_state(ctx) != MIG_PRE_COPY && cur_state(ctx) != MIG_PRE_COPY_P2P))
        return -ENOTSUP;
    rc = m->cb.pending(ctx, initial, dirty);
    return rc > 0 || rc < -4095 ? -EIO : rc;
}

uint64_t mu_mig_version_pgsize(const mu_ctx_t *ctx)
{
    /* Only a subset of the client's capabilities may be offered. */
    return ctx->mig != NULL && ctx->peer.mig_pgsize != 0 ? ctx->pgsize : 0;
}

/* ---------------- moving through the states ---------------- */

static void set_state(mu_ctx_t *ctx, uint32_t s)
{
    __atomic_store_n(&ctx->mig->state, s, __ATOMIC_RELEASE);
}

static void set_quiet(mu_ctx_t *ctx, bool quiet)
{
    __atomic_store_n(&ctx->mig_quiet, quiet, __ATOMIC_RELEASE);
}

/* One direct arc: the device's callback, then our bookkeeping. */
static int step(mu_ctx_t *ctx, uint32_t to)
{
    struct mu_mig *m = ctx->mig;
    uint32_t from = cur_state(ctx);
    bool starting = mig_state_running(to) && !mig_state_running(from);
    bool stopping = !mig_state_running(to) && mig_state_running(from);
    int rc = 0;

    if (starting)
        set_quiet(ctx, false);
    if (m->cb.transition != NULL)
        rc = m->cb.transition(ctx, (enum mu_mig_state)from,
                              (enum mu_mig_state)to);
    if (rc > 0 || rc < -4095)
        rc = -EIO;      /* a callback returning nonsense */
    if (rc < 0) {
        if (starting)
            set_quiet(ctx, true);
        mu_log(ctx, MU_LOG_WARN, "migration: device refused %s -> %s: %s",
               mig_state_name(from), mig_state_name(to), strerror(-rc));
        return rc;
    }
    set_state(ctx, to);
    if (stopping)
        set_quiet(ctx, true);
    if (starting)
        mu_irqs_release_held(ctx);
    mu_dbg(ctx, "migration: %s -> %s", mig_state_name(from),
           mig_state_name(to));
    return 0;
}

/* The whole way to goal, or refused before any step when there is none. */
static int go_to(mu_ctx_t *ctx, uint32_t goal)
{
    uint32_t path[MIG_MAX_PATH];
    int n = mig_path(ctx->mig->wire_flags, cur_state(ctx), goal, path);

    if (n < 0) {
        mu_log(ctx, MU_LOG_INFO, "migration: no way from %s to %s",
               mig_state_name(cur_state(ctx)), mig_state_name(goal));
        return n;
    }
    for (int i = 0; i < n; i++) {
        int rc = step(ctx, path[i]);

        if (rc < 0)
            return rc;
    }
    return 0;
}

void mu_mig_client_gone(mu_ctx_t *ctx)
{
    uint32_t s;

    if (ctx->mig == NULL)
        return;
    s = cur_state(ctx);
    if (s == MIG_PRE_COPY || s == MIG_PRE_COPY_P2P) {
        if (go_to(ctx, MIG_RUNNING) < 0)
            goto broken;
    } else if (s == MIG_STOP_COPY) {
        if (go_to(ctx, MIG_STOP) < 0)
            goto broken;
    } else if (s == MIG_RESUMING) {
        /* A refusal leaves RESUMING with the stream dropped: fine too. */
        go_to(ctx, MIG_STOP);
    }
    return;
broken:
    /* A device that can neither finish nor abandon a save. */
    mu_log(ctx, MU_LOG_ERR, "migration: device left in ERROR");
    set_state(ctx, MIG_ERROR);
    set_quiet(ctx, true);
}

void mu_mig_reset(mu_ctx_t *ctx)
{
    if (ctx->mig == NULL)
        return;
    set_state(ctx, MIG_RUNNING);
    set_quiet(ctx, false);
}

/* ---------------- what the commands ask (cmd_mig.c) ---------------- */

bool mu_mig_present(const mu_ctx_t *ctx)
{
    return ctx->mig != NULL;
}

uint64_t mu_mig_flags(const mu_ctx_t *ctx)
{
    return ctx->mig->wire_flags;
}

uint32_t mu_mig_get_state(const mu_ctx_t *ctx)
{
    return cur_state(ctx);
}

int mu_mig_set_state(mu_ctx_t *ctx, uint32_t to)
{
    int rc = go_to(ctx, to);

    if (rc < 0)
        return mu_refuse(ctx, rc, "migration state %u -> %u refused",
                         cur_state(ctx), to);
    return 0;
}

int mu_mig_save(mu_ctx_t *ctx, uint8_t *buf, size_t size, size_t *got)
{
    struct mu_mig *m = ctx->mig;
    size_t done = 0;

    if (!mig_state_saving(cur_state(ctx)))
        return mu_refuse(ctx, -EINVAL, "migration state %u is not a saving "
                         "state", cur_state(ctx));
    while (done < size) {
        ssize_t n = m->cb.save(ctx, buf + done, size - done);

        if (n < 0 || n > (ssize_t)(size - done)) {
            mu_log(ctx, MU_LOG_WARN, "migration: save failed: %s",
                   n < 0 ? strerror((int)-n) : "returned too much");
            return n < 0 && n >= -4095 ? (int)n : -EIO;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

int mu_mig_load(mu_ctx_t *ctx, const uint8_t *buf, size_t size)
{
    int rc;

    if (cur_state(ctx) != MIG_RESUMING)
        return mu_refuse(ctx, -EINVAL, "migration state %u is not RESUMING",
                         cur_state(ctx));
    rc = ctx->mig->cb.load(ctx, buf, size);
    if (rc > 0 || rc < -4095)
        rc = -EIO;
    if (rc < 0) {
        mu_log(ctx, MU_LOG_WARN, "migration: device rejected the stream: %s",
               strerror(-rc));
        return mu_refuse(ctx, rc, "the device rejected %zu bytes of stream",
                         size);
    }
    return 0;
}
