/*
 * irq.c - interrupts: INTx, MSI, MSI-X, ERR and REQ.
 *
 * Each irq index has a declared number of vectors.  A vector is raised by
 * writing 1 to the eventfd the client gave for it (its "trigger" fd); the
 * client may also give eventfds it signals to mask or unmask the vector
 * (KVM's INTx resampling does that).  A vector that is raised while masked,
 * or before the client gave a trigger fd, is remembered as pending and fires
 * when that changes.
 *
 * Masking has several sources, ORed together:
 *  - the client's SET_IRQS mask (and INTx's automask after each fire);
 *  - INTx: the INTx-disable bit of the command register;
 *  - MSI: the per-vector mask bits of our MSI capability;
 *  - MSI-X: the function mask, and the per-vector mask bits of our copy of
 *    the MSI-X table once the client has shown it writes the table through.
 * The MSI and MSI-X sources count only while our copy of the capability has
 * its enable bit set, which is how a client that never drives our config
 * space keeps plain SET_IRQS semantics.
 *
 * Clients differ on the MSI-X table.  QEMU forwards every config write,
 * the MSI-X enable and function mask bits included, but emulates the
 * table (and PBA) itself and never writes ours: our copy keeps its reset
 * values, a mask bit of 1 in every vector (PCI spec), which must not hold
 * the vectors QEMU wired with SET_IRQS (it masks those itself, or with
 * SET_IRQS ACTION_MASK).  muser's own client and libvfio-user's write the
 * table through, and then its mask bits are the guest's.  We tell the two
 * apart by what the client does: the table counts as client-emulated until
 * the client writes any byte of it, and as written-through from then on
 * until the next reset or client.  A guest always writes its table before
 * it relies on it (Linux masks every entry at setup, with the function
 * mask set), so a write-through client gets PCI semantics from its first
 * entry on.
 *
 * Locking: one mutex guards every vector's fds, masks and pending flags and
 * the MSI-X table, because mu_irq_trigger() and mu_irq_masked() run on any
 * thread.  An eventfd is written with the lock held, so a concurrent
 * SET_IRQS cannot close (and the kernel reuse) the fd under the writer.  The
 * device's state callback is always called without the lock, so it may
 * trigger interrupts itself.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "private.h"
#include "irq.h"
#include "mig.h"

/* The three fds a vector may have, indexed by SET_IRQS action. */
enum { FD_TRIGGER, FD_MASK, FD_UNMASK, FD_NUM };

#define MSIX_ENTRY_SIZE 16u
#define MSIX_CTRL_OFF 12u
#define MSIX_CTRL_MASKBIT 1u

/* epoll tag of a mask/unmask eventfd: slot << 24 | type << 16 | vector. */
#define TAG(slot, type, vec) ((uint32_t)(slot) << 24 | (uint32_t)(type) << 16 | (vec))
#define TAG_SLOT(tag) ((tag) >> 24)
#define TAG_TYPE(tag) (((tag) >> 16) & 0xff)
#define TAG_VEC(tag) ((tag) & 0xffff)

struct mu_vec {
    int fd[FD_NUM];     /* -1: none */
    bool masked;        /* SET_IRQS mask, or INTx automask */
    bool pending;       /* raised while masked or without a trigger fd */
};

struct mu_irq_index {
    uint32_t count;     /* declared vectors */
    bool fixed;         /* count set by a capability: no other count */
    struct mu_vec *vecs;
    bool cfg_enabled;   /* MSI/MSI-X enable bit in our config space */
    bool reported;      /* last state given to the state callback */
};

struct mu_irqs {
    pthread_mutex_t lock;
    struct mu_irq_index idx[MU_IRQ_NUM];
    uint32_t msi_mask;      /* MSI per-vector mask bits in our config */
    bool msix_fmask;        /* MSI-X function mask in our config */
    uint8_t *msix_table;    /* MSIX_ENTRY_SIZE bytes a vector */
    bool msix_table_used;   /* the client wrote the table: its mask bits
                               count (see the top of the file) */
    mu_irq_state_cb_t state_cb;
};

static const uint32_t max_count[MU_IRQ_NUM] = {
    [MU_IRQ_INTX] = 1, [MU_IRQ_MSI] = 32, [MU_IRQ_MSIX] = 2048,
    [MU_IRQ_ERR] = 1, [MU_IRQ_REQ] = 1,
};

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* ---------------- lifecycle ---------------- */

int mu_irqs_init(mu_ctx_t *ctx)
{
    struct mu_irqs *irqs = calloc(1, sizeof(*irqs));

    if (irqs == NULL)
        return -ENOMEM;
    pthread_mutex_init(&irqs->lock, NULL);
    ctx->irqs = irqs;
    /* QEMU enables error recovery only for a device with one ERR vector
     * ("Could not enable error recovery for the device" otherwise), and
     * it costs nothing until the device raises it: declared by default. */
    return mu_irq_setup(ctx, MU_IRQ_ERR, 1);
}

static void close_fd(mu_ctx_t *ctx, struct mu_vec *v, unsigned slot)
{
    if (v->fd[slot] < 0)
        return;
    if (slot != FD_TRIGGER)
        mu_ctx_unwatch(ctx, v->fd[slot]);
    close(v->fd[slot]);
    v->fd[slot] = -1;
}

/* Forget everything the client set up for a vector. */
static void clear_vec(mu_ctx_t *ctx, struct mu_vec *v)
{
    for (unsigned s = 0; s < FD_NUM; s++)
        close_fd(ctx, v, s);
    v->masked = false;
    v->pending = false;
}

static void msix_table_reset(struct mu_irqs *irqs)
{
    uint32_t n = irqs->idx[MU_IRQ_MSIX].count;

    if (irqs->msix_table == NULL)
        return;
    memset(irqs->msix_table, 0, (size_t)n * MSIX_ENTRY_SIZE);
    for (uint32_t v = 0; v < n; v++)
        put32(irqs->msix_table + v * MSIX_ENTRY_SIZE + MSIX_CTRL_OFF,
              MSIX_CTRL_MASKBIT);
}

void mu_irqs_fini(mu_ctx_t *ctx)
{
    struct mu_irqs *irqs = ctx->irqs;

    if (irqs == NULL)
        return;
    for (unsigned t = 0; t < MU_IRQ_NUM; t++) {
        for (uint32_t v = 0; v < irqs->idx[t].count; v++)
            clear_vec(ctx, &irqs->idx[t].vecs[v]);
        free(irqs->idx[t].vecs);
    }
    free(irqs->msix_table);
    pthread_mutex_destroy(&irqs->lock);
    free(irqs);
    ctx->irqs = NULL;
}

static bool msi_cap_present(const mu_ctx_t *ctx, unsigned type)
{
    return (type == MU_IRQ_MSI && mu_pci_has_msi(ctx)) ||
           (type == MU_IRQ_MSIX && mu_pci_has_msix(ctx));
}

/*
 * mu_pci_add_msi/msix set the capability offset and then call us, so the
 * first call that sees the capability is the capability's own: its count is
 * what the guest sees and wins over an earlier declaration; later calls
 * must agree with it.
 */
int mu_irq_setup(mu_ctx_t *ctx, enum mu_irq_type type, uint32_t count)
{
    struct mu_irqs *irqs = ctx->irqs;
    struct mu_irq_index *ix;
    struct mu_vec *vecs = NULL;
    uint8_t *table = NULL;
    bool cap;

    if (ctx->realized)
        return -EBUSY;
    if ((unsigned)type >= MU_IRQ_NUM || count > max_count[type] ||
        (count == 0 && (type == MU_IRQ_MSI || type == MU_IRQ_MSIX)))
        return -EINVAL;
    ix = &irqs->idx[type];
    cap = msi_cap_present(ctx, type);
    if (ix->fixed && count != ix->count)
        return -EINVAL;
    if (cap && !ix->fixed && ix->count != 0 && ix->count != count)
        mu_log(ctx, MU_LOG_WARN, "irq type %u: capability sets %u vectors, "
               "not the %u declared", type, count, ix->count);
    if (count > 0) {
        vecs = calloc(count, sizeof(*vecs));
        if (type == MU_IRQ_MSIX)
            table = malloc((size_t)count * MSIX_ENTRY_SIZE);
        if (vecs == NULL || (type == MU_IRQ_MSIX && table == NULL)) {
            free(vecs);
            free(table);
            return -ENOMEM;
        }
        for (uint32_t v = 0; v < count; v++)
            vecs[v].fd[FD_TRIGGER] = vecs[v].fd[FD_MASK] =
                vecs[v].fd[FD_UNMASK] = -1;
    }
    /* Before realize no client exists, so the old vectors hold no fds. */
    free(ix->vecs);
    ix->vecs = vecs;
    ix->count = count;
    ix->fixed = ix->fixed || cap;
    if (type == MU_IRQ_MSIX) {
        free(irqs->msix_table);
        irqs->msix_table = table;
        msix_table_reset(irqs);
    }
    return 0;
}

int mu_irq_set_state_cb(mu_ctx_t *ctx, mu_irq_state_cb_t cb)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->irqs->state_cb = cb;
    return 0;
}

uint32_t mu_irqs_count(mu_ctx_t *ctx, unsigned type)
{
    if (ctx->irqs == NULL || type >= MU_IRQ_NUM)
        return 0;
    return ctx->irqs->idx[type].count;
}

/* ---------------- masking and firing (lock held) ---------------- */

static bool msix_entry_masked(const struct mu_irqs *irqs, uint32_t v)
{
    return get32(irqs->msix_table + v * MSIX_ENTRY_SIZE + MSIX_CTRL_OFF) &
           MSIX_CTRL_MASKBIT;
}

/* Whether anything masks vector v now.  See the top of the file. */
static bool vec_masked(const mu_ctx_t *ctx, unsigned type, uint32_t v)
{
    const struct mu_irqs *irqs = ctx->irqs;

    if (irqs->idx[type].vecs[v].masked)
        return true;
    switch (type) {
    case MU_IRQ_INTX:
        return mu_pci_intx_disabled(ctx);
    case MU_IRQ_MSI:
        return irqs->idx[type].cfg_enabled && v < 32 &&
               (irqs->msi_mask >> v) & 1;
    case MU_IRQ_MSIX:
        return irqs->idx[type].cfg_enabled &&
               (irqs->msix_fmask ||
                (irqs->msix_table_used && msix_entry_masked(irqs, v)));
    default:
        return false;
    }
}

/*
 * The client's eventfds are shared files: their O_NONBLOCK flag is the
 * client's too, so we never set it (a client reading its own eventfd
 * with a blocking read() would get EAGAIN).  Instead each access makes
 * sure it cannot sleep:
 *
 *  - a write of 1 sleeps only when the counter is at its maximum
 *    (2^64 - 2); poll() says whether there is room first.  Only the client
 *    itself, adding ~2^64 to its own counter between our poll() and
 *    write(), could still make it wait, until it reads;
 *  - a read sleeps when the counter is 0 (an event for a replaced fd can
 *    still be in the batch epoll returned, and the client may drain its
 *    own fd); preadv2(RWF_NOWAIT) never sleeps, and where the kernel does
 *    not offer it for eventfds, poll() looks first.
 */
static int efd_signal(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    uint64_t one = 1;

    if (poll(&p, 1, 0) < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    /* Not writable: the counter is saturated, so the client has an
     * interrupt to see already. */
    if (!(p.revents & POLLOUT))
        return 0;
    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

static bool efd_consume(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t cnt;
    struct iovec iov = { &cnt, sizeof(cnt) };
    ssize_t n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);

    if (n >= 0 || (errno != EOPNOTSUPP && errno != EINVAL))
        return n == (ssize_t)sizeof(cnt);
    if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
        return false;
    return read(fd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt);
}

/*
 * Signal the client.  INTx is level-like: like the kernel's vfio-pci (and
 * as AUTOMASKED tells the client), it stays masked after firing until the
 * client unmasks it at end of interrupt.
 */
static int fire(unsigned type, struct mu_vec *vec)
{
    int rc;

    if (vec->fd[FD_TRIGGER] < 0) {
        vec->pending = true;
        return MU_IRQ_PENDING;
    }
    rc = efd_signal(vec->fd[FD_TRIGGER]);
    if (rc < 0) {
        vec->pending = true;
        return rc;
    }
    vec->pending = false;
    if (type == MU_IRQ_INTX)
        vec->masked = true;
    return 0;
}

static int trigger_locked(mu_ctx_t *ctx, unsigned type, uint32_t v)
{
    struct mu_vec *vec = &ctx->irqs->idx[type].vecs[v];

    /* Held while stopped for migration, as a masked vector would be. */
    if (vec_masked(ctx, type, v) || mu_mig_quiet(ctx)) {
        vec->pending = true;
        return MU_IRQ_PENDING;
    }
    return fire(type, vec);
}

/* Fire vector v if it is pending and nothing holds it back any more. */
static void flush_vec(mu_ctx_t *ctx, unsigned type, uint32_t v)
{
    struct mu_vec *vec = &ctx->irqs->idx[type].vecs[v];

    if (vec->pending && vec->fd[FD_TRIGGER] >= 0 &&
        !vec_masked(ctx, type, v) && !mu_mig_quiet(ctx))
        fire(type, vec);
}

/* The device runs again after a migration stop (mig.c). */
void mu_irqs_release_held(mu_ctx_t *ctx)
{
    struct mu_irqs *irqs = ctx->irqs;

    if (irqs == NULL)
        return;
    pthread_mutex_lock(&irqs->lock);
    for (unsigned t = 0; t < MU_IRQ_NUM; t++)
        for (uint32_t v = 0; v < irqs->idx[t].count; v++)
            flush_vec(ctx, t, v);
    pthread_mutex_unlock(&irqs->lock);
}

static void flush_range(mu_ctx_t *ctx, unsigned type, uint32_t start,
                        uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        flush_vec(ctx, type, start + i);
}

/* ---------------- state callback (lock not held) ---------------- */

static bool index_active(const struct mu_irq_index *ix)
{
    if (ix->cfg_enabled)
        return true;
    for (uint32_t v = 0; v < ix->count; v++) {
        if (ix->vecs[v].fd[FD_TRIGGER] >= 0)
            return true;
    }
    return false;
}

/*
 * Tell the device about every index whose state changed.  Only the context
 * thread changes what index_active() reads, so no lock is needed here, and
 * none may be held: the callback may call mu_irq_trigger().
 */
static void report_state(mu_ctx_t *ctx)
{
    struct mu_irqs *irqs = ctx->irqs;

    for (unsigned t = 0; t < MU_IRQ_NUM; t++) {
        bool on = index_active(&irqs->idx[t]);

        if (on == irqs->idx[t].reported)
            continue;
        irqs->idx[t].reported = on;
        mu_log(ctx, MU_LOG_INFO, "irq type %u %s", t, on ? "enabled" : "disabled");
        if (irqs->state_cb != NULL)
            irqs->state_cb(ctx, (enum mu_irq_type)t, on);
    }
}

/* ---------------- public, thread-safe ---------------- */

static bool vec_ok(const mu_ctx_t *ctx, unsigned type, uint32_t v)
{
    return ctx->irqs != NULL && type < MU_IRQ_NUM &&
           v < ctx->irqs->idx[type].count;
}

int mu_irq_trigger(mu_ctx_t *ctx, enum mu_irq_type type, uint32_t vector)
{
    int rc;

    if (!vec_ok(ctx, type, vector))
        return -EINVAL;
    pthread_mutex_lock(&ctx->irqs->lock);
    rc = trigger_locked(ctx, type, vector);
    pthread_mutex_unlock(&ctx->irqs->lock);
    return rc;
}

bool mu_irq_masked(mu_ctx_t *ctx, enum mu_irq_type type, uint32_t vector)
{
    bool masked;

    if (!vec_ok(ctx, type, vector))
        return false;
    pthread_mutex_lock(&ctx->irqs->lock);
    masked = vec_masked(ctx, type, vector);
    pthread_mutex_unlock(&ctx->irqs->lock);
    return masked;
}

/* ---------------- the client's irq setup (SET_IRQS) ---------------- */

static bool is_eventfd(int fd)
{
    static const char want[] = "anon_inode:[eventfd]";
    char path[32], link[sizeof(want) + 1];
    ssize_t n;

    if (fd < 0)
        return false;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof(link));
    return n == (ssize_t)sizeof(want) - 1 && memcmp(link, want, (size_t)n) == 0;
}

/*
 * Check the client's fds before taking any: each must be an eventfd (a
 * pipe or socket could block us or carry data elsewhere), and the
 * mask/unmask ones get watched.  Their flags are left as the client set
 * them: efd_signal() and efd_consume() never sleep on a blocking one.
 */
static int prepare_fds(mu_ctx_t *ctx, const int *fds, unsigned nfds,
                       unsigned slot, unsigned type, uint32_t start)
{
    unsigned i;
    int rc = 0;

    for (i = 0; i < nfds; i++) {
        if (!is_eventfd(fds[i])) {
            mu_log(ctx, MU_LOG_WARN, "SET_IRQS: fd %u is not an eventfd", i);
            return mu_refuse(ctx, -EINVAL, "fd %u is not an eventfd", i);
        }
    }
    for (i = 0; i < nfds && slot != FD_TRIGGER && ctx->epfd >= 0; i++) {
        rc = mu_ctx_watch(ctx, fds[i],
                          MU_EV(MU_EV_IRQFD, TAG(slot, type, start + i)));
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        while (i-- > 0)
            mu_ctx_unwatch(ctx, fds[i]);
        return mu_refuse(ctx, rc, "cannot watch mask/unmask eventfds");
    }
    return 0;
}

/* Assign the request's fds to slot 'slot' of the range, or with no fds
 * remove them; old fds are closed.  All or nothing: on success every fd
 * is taken (-1 in the array), on failure none. */
static int set_fds(mu_ctx_t *ctx, int *fds, unsigned nfds, unsigned slot,
                   unsigned type, uint32_t start, uint32_t count)
{
    struct mu_irqs *irqs = ctx->irqs;
    int rc;

    rc = prepare_fds(ctx, fds, nfds, slot, type, start);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&irqs->lock);
    for (uint32_t i = 0; i < count; i++) {
        struct mu_vec *v = &irqs->idx[type].vecs[start + i];

        close_fd(ctx, v, slot);
        if (nfds > 0) {
            v->fd[slot] = fds[i];
            fds[i] = -1;
        }
    }
    /* What was raised before the client was ready is delivered now. */
    if (slot == FD_TRIGGER)
        flush_range(ctx, type, start, count);
    pthread_mutex_unlock(&irqs->lock);
    return 0;
}

/* DATA_NONE (data NULL) or DATA_BOOL: fire, mask or unmask vectors. */
static void apply_action(mu_ctx_t *ctx, unsigned slot, unsigned type,
                         uint32_t start, uint32_t count, const uint8_t *data)
{
    struct mu_irqs *irqs = ctx->irqs;

    pthread_mutex_lock(&irqs->lock);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t v = start + i;

        if (data != NULL && data[i] == 0)
            continue;
        if (slot == FD_TRIGGER) {
            trigger_locked(ctx, type, v);
        } else {
            irqs->idx[type].vecs[v].masked = slot == FD_MASK;
            flush_vec(ctx, type, v);
        }
    }
    pthread_mutex_unlock(&irqs->lock);
}

/* DATA_NONE | ACTION_TRIGGER with count 0: the client turns the index off. */
static void disable_index(mu_ctx_t *ctx, unsigned type)
{
    struct mu_irqs *irqs = ctx->irqs;

    pthread_mutex_lock(&irqs->lock);
    for (uint32_t v = 0; v < irqs->idx[type].count; v++)
        clear_vec(ctx, &irqs->idx[type].vecs[v]);
    pthread_mutex_unlock(&irqs->lock);
}

/* The fd slot of an action: the enums agree (private.h). */
_Static_assert((int)MU_IRQ_ACT_TRIGGER == (int)FD_TRIGGER &&
               (int)MU_IRQ_ACT_MASK == (int)FD_MASK &&
               (int)MU_IRQ_ACT_UNMASK == (int)FD_UNMASK,
               "irq action is the fd slot");

static int set_irqs(mu_ctx_t *ctx, struct mu_irq_set *s)
{
    unsigned slot = (unsigned)s->action;
    uint32_t n;

    if (s->type >= MU_IRQ_NUM || ctx->irqs->idx[s->type].count == 0)
        return mu_refuse(ctx, -EINVAL, "irq index %u does not exist or has "
                         "no vectors", s->type);
    if ((unsigned)s->action > MU_IRQ_ACT_UNMASK ||
        (unsigned)s->data > MU_IRQ_DATA_EVENTFD ||
        (s->data == MU_IRQ_DATA_EVENTFD ? s->nfds != 0 && s->nfds != s->count
                                        : s->nfds != 0) ||
        (s->data == MU_IRQ_DATA_BOOL && s->count > 0 && s->bools == NULL))
        return mu_refuse(ctx, -EINVAL, "irq request of action %u data %u "
                         "with %u fds for %u vectors is inconsistent",
                         (unsigned)s->action, (unsigned)s->data, s->nfds,
                         s->count);
    if (s->count == 0) {
        if (s->data != MU_IRQ_DATA_NONE || slot != FD_TRIGGER || s->start != 0)
            return mu_refuse(ctx, -EINVAL, "count 0 is only a trigger "
                             "without data from 0 (action %u, data %u, "
                             "start %u)", (unsigned)s->action,
                             (unsigned)s->data, s->start);
        disable_index(ctx, s->type);
        return 0;
    }
    n = ctx->irqs->idx[s->type].count;
    if (s->start > n || s->count > n - s->start)
        return mu_refuse(ctx, -EINVAL, "vectors %u+%u past irq index %u's "
                         "%u", s->start, s->count, s->type, n);
    if (s->data == MU_IRQ_DATA_EVENTFD)
        return set_fds(ctx, s->fds, s->nfds, slot, s->type, s->start,
                       s->count);
    apply_action(ctx, slot, s->type, s->start, s->count,
                 s->data == MU_IRQ_DATA_BOOL ? s->bools : NULL);
    return 0;
}

int mu_irq_set(mu_ctx_t *ctx, struct mu_irq_set *s)
{
    int rc = set_irqs(ctx, s);

    if (rc == 0)
        report_state(ctx);
    return rc;
}

/* A mask or unmask eventfd the client registered was signalled. */
void mu_irqs_fd_event(mu_ctx_t *ctx, uint32_t tag)
{
    struct mu_irqs *irqs = ctx->irqs;
    unsigned slot = TAG_SLOT(tag), type = TAG_TYPE(tag);
    uint32_t v = TAG_VEC(tag);
    struct mu_vec *vec;

    if ((slot != FD_MASK && slot != FD_UNMASK) || !vec_ok(ctx, type, v))
        return;
    pthread_mutex_lock(&irqs->lock);
    vec = &irqs->idx[type].vecs[v];
    /* The fd may have been replaced since epoll reported it: then the
     * new one simply has nothing to read yet. */
    if (vec->fd[slot] >= 0 && efd_consume(vec->fd[slot])) {
        vec->masked = slot == FD_MASK;
        flush_vec(ctx, type, v);
    }
    pthread_mutex_unlock(&irqs->lock);
}

/* ---------------- config space side ---------------- */

/*
 * Only an enabled capability fires what it unmasks: a guest disabling
 * MSI/MSI-X must not get a burst of the vectors it left pending.
 */
void mu_irqs_msi_ctrl(mu_ctx_t *ctx, bool enable, uint32_t mask_bits)
{
    struct mu_irqs *irqs = ctx->irqs;
    struct mu_irq_index *ix = &irqs->idx[MU_IRQ_MSI];

    pthread_mutex_lock(&irqs->lock);
    ix->cfg_enabled = enable;
    irqs->msi_mask = mask_bits;
    if (enable)
        flush_range(ctx, MU_IRQ_MSI, 0, ix->count);
    pthread_mutex_unlock(&irqs->lock);
    report_state(ctx);
}

void mu_irqs_msix_ctrl(mu_ctx_t *ctx, bool enable, bool function_mask)
{
    struct mu_irqs *irqs = ctx->irqs;
    struct mu_irq_index *ix = &irqs->idx[MU_IRQ_MSIX];

    pthread_mutex_lock(&irqs->lock);
    ix->cfg_enabled = enable && ix->count > 0;
    irqs->msix_fmask = function_mask;
    if (enable)
        flush_range(ctx, MU_IRQ_MSIX, 0, ix->count);
    pthread_mutex_unlock(&irqs->lock);
    report_state(ctx);
}

/* The INTx-disable bit gates INTx; clearing it delivers a pending one. */
void mu_irqs_intx_unblocked(mu_ctx_t *ctx)
{
    struct mu_irqs *irqs = ctx->irqs;

    if (irqs == NULL || irqs->idx[MU_IRQ_INTX].count == 0)
        return;
    pthread_mutex_lock(&irqs->lock);
    flush_vec(ctx, MU_IRQ_INTX, 0);
    pthread_mutex_unlock(&irqs->lock);
}

/* ---------------- MSI-X table and PBA ---------------- */

struct msix_area {
    unsigned bar;
    uint64_t off, len;
};

/* Where the capability puts the table and the PBA (read-only fields). */
static bool msix_layout(const mu_ctx_t *ctx, struct msix_area *tbl,
                        struct msix_area *pba)
{
    uint32_t n = ctx->irqs->idx[MU_IRQ_MSIX].count;
    struct mu_pci_msix_layout l;

    if (!mu_pci_msix_layout(ctx, &l))
        return false;
    *tbl = (struct msix_area){ l.table_bar, l.table_off,
                               (uint64_t)n * MSIX_ENTRY_SIZE };
    *pba = (struct msix_area){ l.pba_bar, l.pba_off, 8ull * ((n + 63) / 64) };
    return true;
}

/* Overlap test written so that no sum can wrap. */
static bool area_touched(const struct msix_area *a, unsigned bar,
                         uint64_t off, size_t count)
{
    if (bar != a->bar)
        return false;
    return off >= a->off ? off - a->off < a->len : a->off - off < count;
}

/* 4 or 8 bytes, naturally aligned, wholly inside (PCI spec 6.8.2). */
static bool area_access_ok(const struct msix_area *a, uint64_t off,
                           size_t count)
{
    return (count == 4 || count == 8) && off % count == 0 && off >= a->off &&
           off + count <= a->off + a->len;
}

static void table_write(mu_ctx_t *ctx, uint64_t rel, const uint8_t *buf,
                        size_t count)
{
    uint8_t *t = ctx->irqs->msix_table;

    /* From now on the table is the guest's, written through: before the
     * flush below, so the entry just written is judged by its mask bit. */
    ctx->irqs->msix_table_used = true;
    for (size_t i = 0; i < count; i += 4) {
        uint32_t val = get32(buf + i);

        /* Only the mask bit of vector control is writable. */
        if ((rel + i) % MSIX_ENTRY_SIZE == MSIX_CTRL_OFF)
            val &= MSIX_CTRL_MASKBIT;
        put32(t + rel + i, val);
    }
    /* An aligned access stays within one entry. */
    flush_vec(ctx, MU_IRQ_MSIX, (uint32_t)(rel / MSIX_ENTRY_SIZE));
}

/* PBA bits are the pending flags; a dword is half of a qword. */
static void pba_read(const struct mu_irqs *irqs, uint64_t rel, uint8_t *buf,
                     size_t count)
{
    const struct mu_irq_index *ix = &irqs->idx[MU_IRQ_MSIX];

    for (size_t i = 0; i < count; i += 4) {
        uint32_t first = (uint32_t)((rel + i) * 8), val = 0;

        for (uint32_t b = 0; b < 32 && first + b < ix->count; b++)
            val |= (uint32_t)ix->vecs[first + b].pending << b;
        put32(buf + i, val);
    }
}

ssize_t mu_irqs_msix_access(mu_ctx_t *ctx, unsigned bar, uint8_t *buf,
                            size_t count, uint64_t offset, bool is_write)
{
    struct mu_irqs *irqs = ctx->irqs;
    struct msix_area tbl, pba;
    const struct msix_area *a;

    if (irqs == NULL || irqs->msix_table == NULL ||
        !msix_layout(ctx, &tbl, &pba))
        return -ENOENT;
    if (area_touched(&tbl, bar, offset, count))
        a = &tbl;
    else if (area_touched(&pba, bar, offset, count))
        a = &pba;
    else
        return -ENOENT;
    if (!area_access_ok(a, offset, count))
        return -EINVAL;

    pthread_mutex_lock(&irqs->lock);
    if (a == &tbl && is_write)
        table_write(ctx, offset - a->off, buf, count);
    else if (a == &tbl)
        memcpy(buf, irqs->msix_table + (offset - a->off), count);
    else if (!is_write)
        pba_read(irqs, offset - a->off, buf, count);
    /* PBA writes are ignored: it is read-only. */
    pthread_mutex_unlock(&irqs->lock);
    return (ssize_t)count;
}

/* ---------------- reset ---------------- */

/*
 * Client gone or device reset: the client's fds go, and the interrupt
 * state returns to its reset values.  The config copies of the MSI/MSI-X
 * enable bits are pci.c's; a reset puts them back to 0 there too.
 */
void mu_irqs_reset(mu_ctx_t *ctx)
{
    struct mu_irqs *irqs = ctx->irqs;

    if (irqs == NULL)
        return;
    /*
     * A disconnect does not reset config space (device state outlives the
     * client), yet below the enable state is forgotten and the MSI-X table
     * goes back to all-masked: pci.c clears the enable (and MSI-X function
     * mask) bits of its copies as well.  After a reset, mu_pci_reset()
     * rewrites the same bits with the same zeros.
     */
    mu_pci_irq_caps_off(ctx);
    pthread_mutex_lock(&irqs->lock);
    for (unsigned t = 0; t < MU_IRQ_NUM; t++) {
        for (uint32_t v = 0; v < irqs->idx[t].count; v++)
            clear_vec(ctx, &irqs->idx[t].vecs[v]);
        irqs->idx[t].cfg_enabled = false;
    }
    irqs->msi_mask = 0;
    irqs->msix_fmask = false;
    irqs->msix_table_used = false;
    msix_table_reset(irqs);
    pthread_mutex_unlock(&irqs->lock);
    report_state(ctx);
}
