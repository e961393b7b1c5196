/*
 * region.c - device regions: declaration, guest accesses, what a client is
 * told of them (cmd_region.c encodes it), and the ioeventfds a client may
 * arm for them.
 *
 * An access goes to exactly one owner: config space to pci.c, the MSI-X
 * table and PBA to irq.c, an mmappable area to the backing fd (so an access
 * through the socket sees the same bytes as a client's mmap of it), and
 * everything else to the device's callback.  An access that straddles two
 * owners is refused rather than split: no real driver does it, and splitting
 * would make a side-effecting register see half a write.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"
#include "thread_check.h"
#include "irq.h"
#include "range.h"
#include "mig.h"

static bool is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

int mu_region_setup(mu_ctx_t *ctx, unsigned idx, uint64_t size,
                    unsigned flags, mu_access_cb_t cb)
{
    struct mu_region *r;
    unsigned known = MU_REGION_RW | MU_REGION_MEM | MU_REGION_MEM64 |
                     MU_REGION_PREFETCH;

    if (ctx->realized)
        return -EBUSY;
    if (idx >= MU_MAX_REGIONS || idx == MU_PCI_CONFIG || size == 0 ||
        (flags & ~known) || !(flags & MU_REGION_RW))
        return -EINVAL;
    if (idx <= MU_PCI_BAR5) {
        if (!is_pow2(size) || size < ((flags & MU_REGION_MEM) ? 16 : 4))
            return -EINVAL;
        if ((flags & (MU_REGION_MEM64 | MU_REGION_PREFETCH)) &&
            !(flags & MU_REGION_MEM))
            return -EINVAL;
        if (idx > 0 && (ctx->regions[idx - 1].flags & MU_REGION_MEM64))
            return -EEXIST;     /* upper half of a 64-bit BAR */
    } else if (flags & (MU_REGION_MEM | MU_REGION_MEM64 | MU_REGION_PREFETCH)) {
        return -EINVAL;
    }
    r = &ctx->regions[idx];
    r->present = true;
    r->size = size;
    r->flags = flags;
    r->cb = cb;
    if (idx >= ctx->nr_regions)
        ctx->nr_regions = idx + 1;
    return 0;
}

/*
 * The client gets this fd with write access (its mmap needs it), so it
 * could ftruncate a regular file and make the device's next touch of its
 * own region a SIGBUS, for this client and every later one.  Seal the
 * file against shrinking and growing (growing is harmless to us but as
 * much the client's to decide as shrinking), or refuse it if it cannot be
 * sealed and is not already.  Other kinds of fd (a device node) have no
 * size a client could change.
 */
static int seal_size(mu_ctx_t *ctx, unsigned idx, int fd, uint64_t end)
{
    struct stat st;
    int seals;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return 0;
    if (st.st_size < 0 || (uint64_t)st.st_size < end) {
        mu_log(ctx, MU_LOG_ERR, "region %u: its file is shorter than the "
               "region", idx);
        return -EINVAL;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0)
        return 0;
    seals = fcntl(fd, F_GET_SEALS);
    if (seals >= 0 && (seals & F_SEAL_SHRINK))
        return 0;
    mu_log(ctx, MU_LOG_ERR, "region %u: the client could shrink its file "
           "(create it with memfd_create(MFD_ALLOW_SEALING) or seal it "
           "F_SEAL_SHRINK)", idx);
    return -EPERM;
}

int mu_region_set_mmap(mu_ctx_t *ctx, unsigned idx, int fd,
                       uint64_t fd_offset, const struct mu_mmap_area *areas,
                       unsigned nr_areas)
{
    struct mu_region *r;
    struct mu_mmap_area *copy = NULL;
    long pg = sysconf(_SC_PAGESIZE);
    int dfd, rc;

    if (ctx->realized)
        return -EBUSY;
    if (idx >= MU_MAX_REGIONS || !ctx->regions[idx].present || fd < 0 ||
        (fd_offset % (uint64_t)pg) || nr_areas > 64 ||
        (nr_areas > 0 && areas == NULL))
        return -EINVAL;
    r = &ctx->regions[idx];
    if (!mu_range_ok(fd_offset, r->size, INT64_MAX))
        return -EINVAL;
    for (unsigned i = 0; i < nr_areas; i++) {
        if (areas[i].size == 0 || (areas[i].offset % (uint64_t)pg) ||
            (areas[i].size % (uint64_t)pg) ||
            !mu_range_ok(areas[i].offset, areas[i].size, r->size))
            return -EINVAL;
    }
    rc = seal_size(ctx, idx, fd, fd_offset + r->size);
    if (rc < 0)
        return rc;
    if (nr_areas > 0) {
        copy = malloc(nr_areas * sizeof(*copy));
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, areas, nr_areas * sizeof(*copy));
    }
    dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0) {
        free(copy);
        return -errno;
    }
    if (r->fd >= 0)
        close(r->fd);
    free(r->areas);
    r->fd = dfd;
    r->fd_offset = fd_offset;
    r->areas = copy;
    r->nr_areas = nr_areas;
    return 0;
}

int mu_region_add_ioeventfd(mu_ctx_t *ctx, unsigned idx, uint64_t offset,
                            uint32_t size, bool datamatch, uint64_t data,
                            int fd, mu_ioeventfd_cb_t cb,
                            uint64_t opaque_value)
{
    struct mu_region *r;
    struct mu_ioeventfd *n;
    int own;

    if (ctx->realized)
        return -EBUSY;
    if (idx >= MU_MAX_REGIONS || !ctx->regions[idx].present ||
        idx == MU_PCI_CONFIG || (size != 0 && size != 1 && size != 2 &&
                                 size != 4 && size != 8) ||
        !mu_range_ok(offset, size ? size : 1, ctx->regions[idx].size) ||
        (datamatch && size == 0))
        return -EINVAL;
    r = &ctx->regions[idx];
    if (r->nr_ioeventfds >= 0xffff)
        return -ENOSPC;
    if (fd < 0) {
        own = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (own < 0)
            return -errno;
    } else {
        /*
         * The caller keeps its fd; the library works on its own copy.
         * The client gets a copy of the fd and may read it as well, so
         * epoll can report it readable with the counter already drained:
         * a blocking read() in the context thread would then sleep until
         * the client chose to write again.  Like the eventfds we create,
         * the device's must not block.  (The flag is on the open file, so
         * the device's own copies see it too.)
         */
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -errno;
        own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (own < 0)
            return -errno;
    }
    n = realloc(r->ioeventfds, (r->nr_ioeventfds + 1) * sizeof(*n));
    if (n == NULL) {
        close(own);
        return -ENOMEM;
    }
    r->ioeventfds = n;
    n[r->nr_ioeventfds++] = (struct mu_ioeventfd){
        .offset = offset, .size = size, .datamatch = datamatch,
        .data = data, .fd = own, .cb = cb, .opaque_value = opaque_value,
    };
    return 0;
}

void mu_regions_fini(mu_ctx_t *ctx)
{
    for (unsigned i = 0; i < MU_MAX_REGIONS; i++) {
        struct mu_region *r = &ctx->regions[i];

        for (unsigned j = 0; j < r->nr_ioeventfds; j++)
            close(r->ioeventfds[j].fd);
        free(r->ioeventfds);
        free(r->areas);
        if (r->fd >= 0)
            close(r->fd);
        memset(r, 0, sizeof(*r));
        r->fd = -1;
    }
}

/* ---------------- access ---------------- */

/*
 * Whether [off, off+count) lies in a mmappable part: 1 inside, 0 outside,
 * -EINVAL across a boundary.
 */
static int in_mmap_area(const struct mu_region *r, uint64_t off, size_t count)
{
    if (r->fd < 0)
        return 0;
    if (r->nr_areas == 0)
        return 1;
    for (unsigned i = 0; i < r->nr_areas; i++) {
        const struct mu_mmap_area *a = &r->areas[i];

        if (off < a->offset + a->size && a->offset < off + count) {
            if (off < a->offset || off + count > a->offset + a->size)
                return -EINVAL;
            return 1;
        }
    }
    return 0;
}

static ssize_t fd_access(const struct mu_region *r, uint8_t *buf, size_t count,
                         uint64_t offset, bool is_write)
{
    size_t done = 0;

    while (done < count) {
        off_t pos = (off_t)(r->fd_offset + offset + done);
        ssize_t n = is_write ? pwrite(r->fd, buf + done, count - done, pos)
                             : pread(r->fd, buf + done, count - done, pos);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (is_write)
                return -EIO;
            /* Past the end of a short file reads as zeros, like mmap
             * would not: a shared-memory file is sized by its owner. */
            memset(buf + done, 0, count - done);
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)count;
}

/*
 * A write that reached shared memory through the socket lands where the
 * device is only ever told about writes by an ioeventfd kick (a client
 * that arms ioeventfds never sends those writes; one that does not, sends
 * them here).  Kick the matching ioeventfds' callbacks as KVM would have.
 */
static void kick_ioeventfds(mu_ctx_t *ctx, const struct mu_region *r,
                            const uint8_t *buf, size_t count, uint64_t offset)
{
    for (unsigned i = 0; i < r->nr_ioeventfds; i++) {
        const struct mu_ioeventfd *e = &r->ioeventfds[i];
        uint64_t v = 0;

        if (e->offset != offset || (e->size != 0 && e->size != count))
            continue;
        if (e->datamatch) {
            memcpy(&v, buf, count < sizeof(v) ? count : sizeof(v));
            if (v != e->data)
                continue;
        }
        if (e->cb != NULL)
            e->cb(ctx, e->opaque_value);
    }
}

ssize_t mu_region_access(mu_ctx_t *ctx, unsigned idx, uint8_t *buf,
                         size_t count, uint64_t offset, bool is_write)
{
    const struct mu_region *r;
    ssize_t n;
    int in;

    if (idx == MU_PCI_CONFIG)
        return mu_pci_config_access(ctx, buf, count, offset, is_write);
    if (mu_mig_quiet(ctx))  /* stopped for migration: state is frozen */
        return mu_refuse(ctx, -EBUSY, "device stopped for migration");
    if (idx >= ctx->nr_regions || !ctx->regions[idx].present)
        return mu_refuse(ctx, -EINVAL, "region %u does not exist", idx);
    r = &ctx->regions[idx];
    if (count == 0 || !mu_range_ok(offset, count, r->size))
        return mu_refuse(ctx, -EINVAL, "offset %#" PRIx64 "+%zu past region "
                         "%u size %#" PRIx64, offset, count, idx, r->size);
    if (!(r->flags & (is_write ? MU_REGION_WRITE : MU_REGION_READ)))
        return mu_refuse(ctx, -EACCES, "region %u is not %s", idx,
                         is_write ? "writable" : "readable");

    if (idx <= MU_PCI_BAR5) {
        n = mu_irqs_msix_access(ctx, idx, buf, count, offset, is_write);
        if (n != -ENOENT)
            return n;
    }
    in = in_mmap_area(r, offset, count);
    if (in < 0)
        return mu_refuse(ctx, in, "offset %#" PRIx64 "+%zu of region %u "
                         "straddles an mmap area's edge", offset, count, idx);
    if (in) {
        n = fd_access(r, buf, count, offset, is_write);
        if (n > 0 && is_write)
            kick_ioeventfds(ctx, r, buf, count, offset);
        return n;
    }
    if (r->cb == NULL)
        return mu_refuse(ctx, -EINVAL, "region %u has no access callback "
                         "outside its mmap areas", idx);
    n = r->cb(ctx, buf, count, offset, is_write);
    if (n >= 0 && (size_t)n != count) {
        mu_log(ctx, MU_LOG_WARN, "region %u callback did %zd of %zu bytes",
               idx, n, count);
        return mu_refuse(ctx, -EIO, "region %u callback did %zd of %zu bytes",
                         idx, n, count);
    }
    if (n < 0)
        return mu_refuse(ctx, (int)n, "region %u callback refused %s of "
                         "%zu bytes at %#" PRIx64, idx,
                         is_write ? "write" : "read", count, offset);
    return n;
}

/* ---------------- what the client is told ---------------- */

int mu_region_describe(mu_ctx_t *ctx, unsigned idx, struct mu_region_desc *d)
{
    const struct mu_region *r;

    if (idx >= ctx->nr_regions)
        return -EINVAL;
    r = &ctx->regions[idx];
    *d = (struct mu_region_desc){ .fd = -1 };
    if (idx == MU_PCI_CONFIG) {
        d->flags = MU_REGION_READ | MU_REGION_WRITE;
        d->size = mu_pci_config_size(ctx);
    } else if (r->present) {
        d->flags = r->flags & (MU_REGION_READ | MU_REGION_WRITE);
        d->size = r->size;
    }
    if (r->present && r->fd >= 0) {
        d->fd = r->fd;
        d->fd_offset = r->fd_offset;
        d->areas = r->areas;
        d->nr_areas = r->nr_areas;
    }
    return 0;
}

int mu_region_ioeventfds(mu_ctx_t *ctx, unsigned idx,
                         const struct mu_ioeventfd **list, unsigned *n)
{
    if (idx >= ctx->nr_regions || !ctx->regions[idx].present)
        return -EINVAL;
    *list = ctx->regions[idx].ioeventfds;
    *n = ctx->regions[idx].nr_ioeventfds;
    return 0;
}

void mu_region_ioeventfds_given(mu_ctx_t *ctx, unsigned idx, bool given)
{
    if (idx < ctx->nr_regions && ctx->regions[idx].present)
        ctx->regions[idx].io_fds_taken = given;
}

bool mu_region_ioeventfds_taken(mu_ctx_t *ctx, unsigned idx)
{
    MU_ASSERT_CTX_THREAD(ctx);
    if (idx >= ctx->nr_regions || !ctx->regions[idx].present)
        return false;
    return ctx->regions[idx].io_fds_taken;
}

void mu_regions_client_gone(mu_ctx_t *ctx)
{
    for (unsigned i = 0; i < ctx->nr_regions; i++)
        ctx->regions[i].io_fds_taken = false;
}
