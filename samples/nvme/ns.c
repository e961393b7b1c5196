/*
 * ns.c - namespaces: a range of blocks backed by RAM or by a file.
 *
 * RAM namespaces live in a memfd mapped into this process, so reads and
 * writes are plain memcpy between the guest's mapped pages and the
 * mapping, and deallocation can give memory back with a hole punch.  File
 * namespaces use preadv/pwritev straight into or out of the guest pages.
 * Both kinds zero ranges with FALLOC_FL_PUNCH_HOLE where the file system
 * allows it, so deallocated blocks read back as zeros (DLFEAT = 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvme.h"

int ns_init_ram(struct nvme_ns *ns, uint32_t nsid, uint64_t size,
                unsigned lba_shift)
{
    char name[32];
    void *p;

    memset(ns, 0, sizeof(*ns));
    snprintf(name, sizeof(name), "nvme-ns%u", nsid);
    ns->fd = memfd_create(name, MFD_CLOEXEC);
    if (ns->fd < 0)
        return -errno;
    size &= ~((1ull << lba_shift) - 1);
    if (size == 0 || ftruncate(ns->fd, (off_t)size) < 0) {
        int rc = size == 0 ? -EINVAL : -errno;

        close(ns->fd);
        return rc;
    }
    /* MAP_NORESERVE: the namespace is sparse until written. */
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
             ns->fd, 0);
    if (p == MAP_FAILED) {
        int rc = -errno;

        close(ns->fd);
        return rc;
    }
    ns->mem = p;
    ns->own_fd = true;
    ns->nsid = nsid;
    ns->size = size;
    ns->lba_shift = lba_shift;
    ns->nlb = size >> lba_shift;
    return 0;
}

int ns_init_file(struct nvme_ns *ns, uint32_t nsid, int fd, uint64_t off,
                 uint64_t size, unsigned lba_shift)
{
    memset(ns, 0, sizeof(*ns));
    size &= ~((1ull << lba_shift) - 1);
    if (size == 0)
        return -EINVAL;
    ns->fd = fd;
    ns->is_file = true;
    ns->fd_off = off;
    ns->nsid = nsid;
    ns->size = size;
    ns->lba_shift = lba_shift;
    ns->nlb = size >> lba_shift;
    return 0;
}

void ns_populate(struct nvme_ns *ns)
{
    volatile uint8_t *p = ns->mem;

    if (p == NULL || ns->is_file)
        return;
    /*
     * Allocate the pages in one go, then write each from here: on some
     * hypervisors the first user-mode write of a page costs a fault in
     * the host (some 10 us) even when the kernel has the page mapped
     * already (MADV_POPULATE_WRITE does not help), so only a touch from
     * user space makes later writes full speed.  The byte written is the
     * one there (zero, or what a reader of the namespace saw).
     */
    (void)fallocate(ns->fd, 0, 0, (off_t)ns->size);
    for (uint64_t off = 0; off < ns->size; off += 4096)
        p[off] = p[off];
}

void ns_fini(struct nvme_ns *ns)
{
    if (ns->mem != NULL)
        munmap(ns->mem, ns->size);
    if (ns->own_fd && ns->fd >= 0)
        close(ns->fd);
    ns->mem = NULL;
    ns->fd = -1;
}

/*
 * Identifiers derived from the controller serial and the NSID: unique per
 * instance (the serial is), stable for its life, and identical in Identify
 * Namespace and in the descriptor list.
 */
static uint64_t fnv1a(const void *data, size_t len, uint64_t h)
{
    const uint8_t *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void ns_make_ids(struct nvme_ns *ns, const char *serial)
{
    uint64_t h1 = fnv1a(serial, strlen(serial), 0xcbf29ce484222325ull);
    uint64_t h2, h3, h4;

    h1 = fnv1a(&ns->nsid, sizeof(ns->nsid), h1);
    h2 = fnv1a("nguid", 5, h1);
    h3 = fnv1a("uuid-a", 6, h1);
    h4 = fnv1a("uuid-b", 6, h1);
    memcpy(ns->nguid, &h1, 8);
    memcpy(ns->nguid + 8, &h2, 8);
    memcpy(ns->uuid, &h3, 8);
    memcpy(ns->uuid + 8, &h4, 8);
    ns->uuid[6] = (uint8_t)((ns->uuid[6] & 0x0f) | 0x40);     /* version 4 */
    ns->uuid[8] = (uint8_t)((ns->uuid[8] & 0x3f) | 0x80);     /* variant 1 */
}

static int file_rw(struct nvme_ns *ns, const struct iovec *iov, int iovcnt,
                   uint64_t off, bool write)
{
    struct iovec local[64];
    const struct iovec *v = iov;
    off_t pos = (off_t)(ns->fd_off + off);

    while (iovcnt > 0) {
        ssize_t n = write ? pwritev(ns->fd, v, iovcnt, pos)
                          : preadv(ns->fd, v, iovcnt, pos);
        size_t left;
        int i;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (write)
                return -EIO;
            /* A file shorter than the namespace reads as zeros. */
            for (i = 0; i < iovcnt; i++)
                memset(v[i].iov_base, 0, v[i].iov_len);
            return 0;
        }
        pos += n;
        /* Short transfer: skip what was done and go again. */
        left = (size_t)n;
        for (i = 0; i < iovcnt && left >= v[i].iov_len; i++)
            left -= v[i].iov_len;
        if (i == iovcnt)
            return 0;
        if (iovcnt - i > (int)(sizeof(local) / sizeof(local[0])))
            return -EIO;
        memmove(local, v + i, (size_t)(iovcnt - i) * sizeof(*v));
        local[0].iov_base = (uint8_t *)local[0].iov_base + left;
        local[0].iov_len -= left;
        iovcnt -= i;
        v = local;
    }
    return 0;
}

void ns_mark_dirty(struct nvme_ns *ns, uint64_t off, uint64_t len)
{
    if (ns->dirty == NULL || len == 0)
        return;
    for (uint64_t g = off >> NS_GRAN_SHIFT; g <= (off + len - 1) >> NS_GRAN_SHIFT;
         g++)
        /* Atomic: I/O passes of several pollers mark at once. */
        __atomic_fetch_or(&ns->dirty[g / 64], 1ull << (g % 64),
                          __ATOMIC_RELAXED);
}

int ns_rw(struct nvme_ns *ns, const struct iovec *iov, int iovcnt,
          uint64_t off, bool write)
{
    uint64_t start = off;

    if (ns->is_file)
        return file_rw(ns, iov, iovcnt, off, write);
    for (int i = 0; i < iovcnt; i++) {
        if (write)
            memcpy(ns->mem + off, iov[i].iov_base, iov[i].iov_len);
        else
            memcpy(iov[i].iov_base, ns->mem + off, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    /* After the bytes: a granule being sent meanwhile goes again. */
    if (write)
        ns_mark_dirty(ns, start, off - start);
    return 0;
}

static int zero_by_writing(struct nvme_ns *ns, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[65536];

    while (len > 0) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        struct iovec v = { (void *)zeros, n };
        int rc = file_rw(ns, &v, 1, off, true);

        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

static int zero(struct nvme_ns *ns, uint64_t off, uint64_t len)
{
    if (fallocate(ns->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(ns->fd_off + off), (off_t)len) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return -errno;
    if (!ns->is_file) {
        memset(ns->mem + off, 0, len);
        return 0;
    }
    return zero_by_writing(ns, off, len);
}

int ns_zero(struct nvme_ns *ns, uint64_t off, uint64_t len)
{
    int rc;

    if (len == 0)
        return 0;
    rc = zero(ns, off, len);
    /* Even on a failure: part of the range may be zeros by now. */
    if (!ns->is_file)
        ns_mark_dirty(ns, off, len);
    return rc;
}

int ns_flush(struct nvme_ns *ns)
{
    /* RAM is as durable as it will ever be. */
    if (!ns->is_file)
        return 0;
    return fdatasync(ns->fd) < 0 ? -errno : 0;
}
