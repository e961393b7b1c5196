/*
 * client_dma.c - memory the client hands to the server.
 *
 * Memory with an fd is just announced (DMA_MAP with the fd); memory without
 * one stays here, and the server reaches it with DMA_READ and DMA_WRITE
 * requests, which arrive whenever the server likes: while we wait for the
 * reply to one of our own requests (cl_call serves them) or between calls
 * (muc_serve).  Each request is checked against the table of registered
 * memory: the whole range inside one registration with the right access.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_priv.h"

/* ---------------- fd-less DMA memory ---------------- */

static int mem_add(muc_t *c, uint64_t iova, uint64_t size, void *host,
                   unsigned prot)
{
    if (c->nr_mem == c->mem_cap) {
        unsigned ncap = c->mem_cap ? c->mem_cap * 2 : 8;
        struct muc_mem *n = realloc(c->mem, ncap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        c->mem = n;
        c->mem_cap = ncap;
    }
    c->mem[c->nr_mem++] = (struct muc_mem){ iova, size, host, prot };
    return 0;
}

static void mem_del(muc_t *c, unsigned i)
{
    c->mem[i] = c->mem[--c->nr_mem];
}

/* Forget registrations lying wholly inside [iova, iova+size). */
static void mem_drop_range(muc_t *c, uint64_t iova, uint64_t size)
{
    for (unsigned i = 0; i < c->nr_mem;) {
        const struct muc_mem *r = &c->mem[i];

        if (r->iova >= iova && vfu_range_ok(r->iova - iova, r->size, size))
            mem_del(c, i);
        else
            i++;
    }
}

/* 0 with *host, or a positive errno for the error reply. */
static int mem_find(const muc_t *c, uint64_t addr, uint64_t count,
                    unsigned need, uint8_t **host)
{
    int err = EFAULT;

    for (unsigned i = 0; i < c->nr_mem; i++) {
        const struct muc_mem *r = &c->mem[i];

        if (addr < r->iova || !vfu_range_ok(addr - r->iova, count, r->size))
            continue;
        if (!(r->prot & need)) {
            err = EACCES;   /* keep looking: an overlapping map may allow it */
            continue;
        }
        *host = r->host + (addr - r->iova);
        return 0;
    }
    return err;
}

/* Answer one command from the server; consumes m. */
int cl_serve_cmd(muc_t *c, struct mu_msg *m)
{
    bool is_write = m->hdr.cmd == VFU_CMD_DMA_WRITE;
    struct vfu_dma_access a = { 0 };
    const uint8_t *data = NULL;
    uint8_t *host = NULL;
    struct vfu_hdr h;
    struct iovec iov[3];
    size_t size = VFU_HDR_SIZE;
    int err, n = 1, rc = 0;

    if (c->negotiating) {
        mu_msg_release(m);
        return cl_broken(c, -EPROTO);
    }
    if (m->hdr.cmd != VFU_CMD_DMA_READ && !is_write)
        err = ENOSYS;
    else if (vfu_check_dma_access_req(m->body, m->len, m->nfds, is_write,
                                      c->opts.max_data_xfer_size, &a,
                                      &data) < 0)
        err = EINVAL;
    else
        err = mem_find(c, a.addr, a.count,
                       is_write ? MUC_DMA_WRITE : MUC_DMA_READ, &host);

    if (err == 0) {
        if (is_write)
            memcpy(host, data, (size_t)a.count);
        iov[n++] = (struct iovec){ &a, sizeof(a) };
        if (!is_write)
            iov[n++] = (struct iovec){ host, (size_t)a.count };
        size += sizeof(a) + (is_write ? 0 : (size_t)a.count);
        c->dma_served++;
    } else {
        c->dma_refused++;
    }
    vfu_hdr_init(&h, m->hdr.msg_id, m->hdr.cmd, (uint32_t)size,
                 VFU_F_TYPE_REPLY | (err ? VFU_F_ERROR : 0), (uint32_t)err);
    iov[0] = (struct iovec){ &h, sizeof(h) };
    if (!(m->hdr.flags & VFU_F_NO_REPLY))
        rc = cl_send_iov(c, iov, n, NULL, 0);
    mu_msg_release(m);
    return rc;
}

/* ---------------- DMA ---------------- */

static int dma_map(muc_t *c, uint64_t iova, uint64_t size, int fd,
                   uint64_t offset, unsigned prot)
{
    struct vfu_dma_map d = {
        .argsz = sizeof(d),
        .flags = ((prot & MUC_DMA_READ) ? VFU_DMA_FLAG_READ : 0) |
                 ((prot & MUC_DMA_WRITE) ? VFU_DMA_FLAG_WRITE : 0),
        .offset = offset, .addr = iova, .size = size,
    };

    if (prot & ~(MUC_DMA_READ | MUC_DMA_WRITE))
        return -EINVAL;
    return cl_call_simple(c, VFU_CMD_DMA_MAP, &d, sizeof(d), fd >= 0 ? &fd : NULL,
                       fd >= 0);
}

int muc_dma_map(muc_t *c, uint64_t iova, uint64_t size, int fd,
                uint64_t offset, unsigned prot)
{
    if (fd < 0)
        return -EBADF;
    return dma_map(c, iova, size, fd, offset, prot);
}

int muc_dma_map_mem(muc_t *c, uint64_t iova, uint64_t size, void *mem,
                    unsigned prot)
{
    int rc;

    if (mem == NULL || size == 0 || !vfu_range_ok(iova, size - 1, UINT64_MAX) ||
        (prot & ~(MUC_DMA_READ | MUC_DMA_WRITE)))
        return -EINVAL;
    if (c->dead)
        return -ENOTCONN;
    /* Registered first: the server may reach it before it replies. */
    rc = mem_add(c, iova, size, mem, prot);
    if (rc < 0)
        return rc;
    rc = dma_map(c, iova, size, -1, 0, prot);
    if (rc < 0) {
        for (unsigned i = c->nr_mem; i-- > 0;) {
            if (c->mem[i].iova == iova && c->mem[i].size == size &&
                c->mem[i].host == mem) {
                mem_del(c, i);
                break;
            }
        }
    }
    return rc;
}

static int dma_unmap(muc_t *c, uint32_t flags, uint64_t iova, uint64_t size)
{
    struct vfu_dma_unmap u = { sizeof(u), flags, iova, size }, e;
    struct iovec iov[2] = { { 0 }, { &u, sizeof(u) } };
    struct mu_msg m;
    int rc;

    rc = cl_call(c, VFU_CMD_DMA_UNMAP, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, 0, sizeof(u), 0)) < 0)
        return rc;
    /* libvfio-user echoes the entry; the spec sends nothing.  Both do. */
    if (m.len != 0) {
        if (m.len != sizeof(e))
            return cl_reject(c, &m);
        memcpy(&e, m.body, sizeof(e));
        if (e.addr != iova || e.size != size)
            return cl_reject(c, &m);
    }
    mu_msg_release(&m);
    return 0;
}

int muc_dma_unmap(muc_t *c, uint64_t iova, uint64_t size)
{
    int rc = dma_unmap(c, 0, iova, size);

    /* After the reply: until then the server may still finish DMA. */
    if (rc == 0)
        mem_drop_range(c, iova, size);
    return rc;
}

int muc_dma_unmap_all(muc_t *c)
{
    int rc = dma_unmap(c, VFU_DMA_UNMAP_FLAG_ALL, 0, 0);

    if (rc == 0)
        c->nr_mem = 0;
    return rc;
}

int muc_serve(muc_t *c, int timeout_ms)
{
    uint64_t deadline = cl_deadline_of(timeout_ms);
    struct mu_msg m;
    int n = 0, rc = 0;

    if (c->dead)
        return -ENOTCONN;
    while (n < MUC_SERVE_BATCH) {
        /* Wait for the first; then take only what is already here. */
        rc = cl_recv_msg(c, &m, n == 0 ? deadline : 0);
        if (rc < 0)
            break;
        if (vfu_hdr_is_reply(&m.hdr)) {
            if (cl_stale_drop(c, &m))
                continue;
            mu_msg_release(&m);
            rc = cl_broken(c, -EPROTO);    /* a reply to nothing */
            break;
        }
        rc = cl_serve_cmd(c, &m);
        if (rc < 0)
            break;
        n++;
    }
    /* What was served counts; a failure shows as -ENOTCONN next time. */
    if (rc == -ETIMEDOUT || n > 0)
        return n;
    return rc;
}

uint64_t muc_dma_requests_served(const muc_t *c)
{
    return c->dma_served;
}

/* ---------------- dirty page logging ---------------- */

/* SET: the reply is empty or echoes (a prefix of) the request. */
static int feature_set(muc_t *c, const void *req, size_t len)
{
    struct iovec iov[2] = { { 0 }, { (void *)req, len } };
    struct vfu_device_feature f, e;
    struct mu_msg m;
    int rc;

    rc = cl_call(c, VFU_CMD_DEVICE_FEATURE, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, 0, len, 0)) < 0)
        return rc;
    memcpy(&f, req, sizeof(f));
    if (m.len > 0) {
        if (m.len < sizeof(e))
            return cl_reject(c, &m);
        memcpy(&e, m.body, sizeof(e));
        if (e.flags != f.flags)
            return cl_reject(c, &m);
    }
    mu_msg_release(&m);
    return 0;
}

int muc_dirty_start(muc_t *c, uint64_t page_size, const uint64_t *iova,
                    const uint64_t *len, unsigned nr_ranges)
{
    struct vfu_device_feature f;
    struct vfu_dma_logging_control ctl = { page_size, nr_ranges, 0 };
    size_t size;
    uint8_t *buf;
    int rc;

    if (nr_ranges > MUC_MAX_LOG_RANGES)
        return -E2BIG;
    if (nr_ranges > 0 && (iova == NULL || len == NULL))
        return -EINVAL;
    size = sizeof(f) + sizeof(ctl) +
           nr_ranges * sizeof(struct vfu_dma_logging_range);
    buf = malloc(size);
    if (buf == NULL)
        return -ENOMEM;
    f.argsz = (uint32_t)size;
    f.flags = VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START;
    memcpy(buf, &f, sizeof(f));
    memcpy(buf + sizeof(f), &ctl, sizeof(ctl));
    for (unsigned i = 0; i < nr_ranges; i++) {
        struct vfu_dma_logging_range r = { iova[i], len[i] };

        memcpy(buf + sizeof(f) + sizeof(ctl) + i * sizeof(r), &r, sizeof(r));
    }
    rc = feature_set(c, buf, size);
    free(buf);
    return rc;
}

int muc_dirty_stop(muc_t *c)
{
    struct vfu_device_feature f = {
        sizeof(f), VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP
    };

    return feature_set(c, &f, sizeof(f));
}

int muc_dirty_report(muc_t *c, uint64_t iova, uint64_t length,
                     uint64_t page_size, uint64_t *bitmap, size_t bitmap_bytes)
{
    struct {
        struct vfu_device_feature f;
        struct vfu_dma_logging_report r;
    } __attribute__((packed)) req, e;
    struct iovec iov[2] = { { 0 }, { &req, sizeof(req) } };
    uint64_t pages, words;
    uint32_t saved_max = c->io.max_size;
    size_t need, total;
    struct mu_msg m;
    int rc;

    if (page_size == 0 || length == 0 || bitmap == NULL)
        return -EINVAL;
    pages = (length - 1) / page_size + 1;
    words = pages / 64 + (pages % 64 != 0);
    if (words > (UINT32_MAX - 4096u) / 8)
        return -E2BIG;
    need = (size_t)words * 8;
    if (bitmap_bytes < need)
        return -ENOSPC;
    total = sizeof(req) + need;
    req.f = (struct vfu_device_feature){
        (uint32_t)total, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT };
    req.r = (struct vfu_dma_logging_report){ iova, length, page_size };

    /* The caller sized the bitmap, so a reply this big is expected. */
    if (total + VFU_HDR_SIZE > c->io.max_size)
        c->io.max_size = (uint32_t)(total + VFU_HDR_SIZE);
    rc = cl_call(c, VFU_CMD_DEVICE_FEATURE, iov, 2, NULL, 0, &m);
    c->io.max_size = saved_max;
    if (rc < 0 || (rc = cl_expect(c, &m, total, total, 0)) < 0)
        return rc;
    memcpy(&e, m.body, sizeof(e));
    if (e.f.flags != req.f.flags || e.r.iova != iova || e.r.length != length ||
        e.r.page_size != page_size)
        return cl_reject(c, &m);
    memcpy(bitmap, m.body + sizeof(e), need);
    mu_msg_release(&m);
    return 0;
}
