/*
 * client.c - the client side of vfio-user (see include/muser-client.h).
 *
 * The server is not trusted.  Every reply goes through the same funnel:
 * cl_call() sends a request and waits for the reply with our msg_id, serving
 * DMA_READ/DMA_WRITE requests that arrive meanwhile; check_error() turns an
 * error reply into its errno; expect() checks the payload length and fd
 * count against what the command's reply may carry.  Anything else that is
 * wrong with a reply is -EPROTO, and -EPROTO or a transport error leaves the
 * connection dead: past a bad message we can no longer tell where the next
 * one starts or which request it answers.
 *
 * A reply that does not come within the timeout is not fatal: its msg_id is
 * remembered, and when it turns up late it is dropped instead of being taken
 * for the answer to a later request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_priv.h"
#include "zero.h"

/* ---------------- time ---------------- */

uint64_t cl_deadline_of(int timeout_ms)
{
    if (timeout_ms < 0)
        return UINT64_MAX;
    return mu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

int cl_ms_left(uint64_t deadline)
{
    uint64_t now, ms;

    if (deadline == UINT64_MAX)
        return -1;
    now = mu_now_ns();
    if (now >= deadline)
        return 0;
    ms = (deadline - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---------------- connection state ---------------- */

/* The stream can no longer be trusted: later calls get -ENOTCONN.  Header
 * and framing errors from msgio all mean the peer broke the protocol. */
int cl_broken(muc_t *c, int err)
{
    if (err == -EINVAL || err == -EMSGSIZE || err == -E2BIG)
        err = -EPROTO;
    c->dead = true;
    return err;
}

static void stale_add(muc_t *c, uint16_t id, uint16_t cmd)
{
    if (c->nr_stale == MUC_STALE_MAX) {
        memmove(c->stale, c->stale + 1, sizeof(c->stale[0]) * (MUC_STALE_MAX - 1));
        c->nr_stale--;
    }
    c->stale[c->nr_stale].id = id;
    c->stale[c->nr_stale].cmd = cmd;
    c->nr_stale++;
}

/* Drop m if it is the late reply to a request that timed out. */
bool cl_stale_drop(muc_t *c, struct mu_msg *m)
{
    for (unsigned i = 0; i < c->nr_stale; i++) {
        if (c->stale[i].id == m->hdr.msg_id && c->stale[i].cmd == m->hdr.cmd) {
            memmove(c->stale + i, c->stale + i + 1,
                    sizeof(c->stale[0]) * (c->nr_stale - i - 1));
            c->nr_stale--;
            mu_msg_release(m);
            return true;
        }
    }
    return false;
}

/* msgio_recv() for a client on a link: frame what the link brings. */
static int link_recv(muc_t *c, struct mu_msg *m, uint64_t deadline)
{
    int rc;

    while ((rc = msgio_next(&c->io, m)) == 0) {
        rc = c->link->fill(c->link_arg, &c->io, cl_ms_left(deadline));
        if (rc < 0)
            return rc;
    }
    return rc;
}

int cl_recv_msg(muc_t *c, struct mu_msg *m, uint64_t deadline)
{
    int rc = c->link != NULL ? link_recv(c, m, deadline)
                             : msgio_recv(&c->io, m, cl_ms_left(deadline));

    if (rc == 1)
        return 0;
    if (rc == -ETIMEDOUT)
        return rc;
    return cl_broken(c, rc < 0 ? rc : -EIO);
}

int cl_send_iov(muc_t *c, const struct iovec *iov, int iovcnt,
                    const int *fds, unsigned nfds)
{
    int rc = c->link != NULL ?
             c->link->send(c->link_arg, iov, iovcnt, fds, nfds) :
             msgio_send(&c->io, iov, iovcnt, fds, nfds, c->opts.timeout_ms);

    /* A bad fd or argument fails sendmsg before any byte leaves. */
    if (rc == -EBADF || rc == -EINVAL)
        return rc;
    return rc < 0 ? cl_broken(c, rc) : 0;
}

/* ---------------- request / reply ---------------- */

/* An error reply becomes its negated errno; it may carry nothing else. */
static int check_error(muc_t *c, struct mu_msg *m)
{
    uint32_t err = m->hdr.error;

    if (!(m->hdr.flags & VFU_F_ERROR))
        return 0;
    if (m->nfds > 0 || err == 0 || err > 4095) {
        mu_msg_release(m);
        return cl_broken(c, -EPROTO);
    }
    mu_msg_release(m);
    return -(int)err;
}

static int wait_reply(muc_t *c, uint16_t id, uint16_t cmd, struct mu_msg *m)
{
    uint64_t deadline = cl_deadline_of(c->opts.timeout_ms);
    int rc;

    for (;;) {
        /*
         * Checked on every turn: a server that keeps the socket full of
         * requests (each served at once) or of stale replies would
         * otherwise keep us here past any timeout.
         */
        rc = deadline != UINT64_MAX && mu_now_ns() >= deadline
                 ? -ETIMEDOUT : cl_recv_msg(c, m, deadline);
        if (rc == -ETIMEDOUT)
            stale_add(c, id, cmd);
        if (rc < 0)
            return rc;
        if (!vfu_hdr_is_reply(&m->hdr)) {
            rc = cl_serve_cmd(c, m);
            if (rc < 0)
                return rc;
            continue;
        }
        if (m->hdr.msg_id == id && m->hdr.cmd == cmd)
            return check_error(c, m);
        if (cl_stale_drop(c, m))
            continue;
        mu_msg_release(m);
        return cl_broken(c, -EPROTO);
    }
}

/*
 * Send cmd with iov[1..iovcnt) as payload (iov[0] is ours, for the header)
 * and wait for its reply.  0 with *reply (to be released by the caller),
 * the server's negated errno, or a local error.
 */
int cl_call(muc_t *c, uint16_t cmd, struct iovec *iov, int iovcnt,
                const int *fds, unsigned nfds, struct mu_msg *reply)
{
    struct vfu_hdr h;
    size_t size = VFU_HDR_SIZE;
    uint16_t id;
    int rc;

    memset(reply, 0, sizeof(*reply));
    if (c->dead)
        return -ENOTCONN;
    if (nfds > MSGIO_MAX_FDS || (nfds > 0 && fds == NULL))
        return -EINVAL;
    for (int i = 1; i < iovcnt; i++) {
        if (iov[i].iov_len > UINT32_MAX - size)
            return -EMSGSIZE;
        size += iov[i].iov_len;
    }
    id = c->next_id++;
    vfu_hdr_init(&h, id, cmd, (uint32_t)size, VFU_F_TYPE_COMMAND, 0);
    iov[0] = (struct iovec){ &h, sizeof(h) };
    rc = cl_send_iov(c, iov, iovcnt, fds, nfds);
    if (rc < 0)
        return rc;
    return wait_reply(c, id, cmd, reply);
}

/* The reply's body must be [min, max] bytes with at most max_fds fds. */
int cl_expect(muc_t *c, struct mu_msg *m, size_t min, size_t max,
                  unsigned max_fds)
{
    if (m->len >= min && m->len <= max && m->nfds <= max_fds)
        return 0;
    mu_msg_release(m);
    return cl_broken(c, -EPROTO);
}

/* A reply of the right shape with the wrong contents. */
int cl_reject(muc_t *c, struct mu_msg *m)
{
    mu_msg_release(m);
    return cl_broken(c, -EPROTO);
}

/* A request whose reply has no payload and no fds. */
int cl_call_simple(muc_t *c, uint16_t cmd, const void *p, size_t len,
                       const int *fds, unsigned nfds)
{
    struct iovec iov[2] = { { 0 }, { (void *)p, len } };
    struct mu_msg m;
    int rc;

    rc = cl_call(c, cmd, iov, len ? 2 : 1, fds, nfds, &m);
    if (rc == 0 && (rc = cl_expect(c, &m, 0, 0, 0)) == 0)
        mu_msg_release(&m);
    return rc;
}

/*
 * The argsz dance of the info requests: ask with argsz, and when the reply
 * says the whole answer is bigger, ask again with that size.  req (reqlen
 * bytes, the same size as the reply's fixed part) starts with its argsz.
 * On success the reply's argsz fits what we asked and equals its length.
 */
static int info_call(muc_t *c, uint16_t cmd, void *req, size_t reqlen,
                     uint32_t argsz, unsigned max_fds, struct mu_msg *m)
{
    /* QEMU-like: the request carries the whole argsz buffer, zero-filled
     * past the fixed part, as an ioctl's argument would be. */
    bool pad = c->opts.qemu_like && cmd == VFU_CMD_DEVICE_GET_REGION_INFO;
    uint32_t full;
    int rc;

    for (int tries = 0; tries < 3; tries++) {
        size_t padlen = pad && argsz > reqlen ? argsz - reqlen : 0;
        uint8_t *zeros = NULL;
        struct iovec iov[3] = { { 0 }, { req, reqlen }, { NULL, padlen } };

        if (padlen > 0 && (zeros = calloc(1, padlen)) == NULL)
            return -ENOMEM;
        iov[2].iov_base = zeros;
        memcpy(req, &argsz, sizeof(argsz));
        rc = cl_call(c, cmd, iov, padlen > 0 ? 3 : 2, NULL, 0, m);
        free(zeros);
        if (rc < 0 || (rc = cl_expect(c, m, reqlen, argsz, max_fds)) < 0)
            return rc;
        memcpy(&full, m->body, sizeof(full));
        if (full <= argsz)
            return full == m->len ? 0 : cl_reject(c, m);
        /* Only the fixed part came (and any fd with it is not ours yet). */
        mu_msg_release(m);
        if (full > MUC_INFO_MAX)
            return cl_broken(c, -EPROTO);
        argsz = full;
    }
    return cl_broken(c, -EPROTO);
}

/* ---------------- connection ---------------- */

static int opts_resolve(const struct muc_opts *in, struct muc_opts *o)
{
    *o = (struct muc_opts){ .max_msg_fds = MUC_DEFAULT_FDS,
                            .max_data_xfer_size = MUC_DEFAULT_XFER,
                            .timeout_ms = MUC_DEFAULT_TIMEOUT_MS };
    if (in == NULL)
        return 0;
    if (!mu_all_zero(in->reserved, sizeof(in->reserved)))
        return -EINVAL;
    /* 0 means "default", so { .write_multiple = true } does what it says. */
    o->qemu_like = in->qemu_like;
    if (in->qemu_like)
        o->max_msg_fds = MUC_QEMU_MAX_FDS;
    if (in->max_msg_fds != 0)
        o->max_msg_fds = in->max_msg_fds;
    if (in->max_data_xfer_size != 0)
        o->max_data_xfer_size = in->max_data_xfer_size;
    if (in->timeout_ms != 0)
        o->timeout_ms = in->timeout_ms < 0 ? -1 : in->timeout_ms;
    o->write_multiple = in->write_multiple;
    if (o->max_msg_fds > MSGIO_MAX_FDS || o->max_data_xfer_size > MUC_MAX_XFER)
        return -EINVAL;
    return 0;
}

static int check_version_reply(muc_t *c, struct mu_msg *m)
{
    struct vfu_version v;
    struct vfu_caps s;
    const char *json;
    size_t json_len;

    int rc;

    if (vfu_check_version(m->body, m->len, m->nfds, &v, &json, &json_len) < 0 ||
        v.major != VFU_VERSION_MAJOR || v.minor > VFU_VERSION_MINOR)
        return -EPROTO;
    rc = vfu_caps_parse(json, json_len, &s);
    if (rc == -ENOMEM)
        return rc;
    /* The reply's capabilities must be a subset of ours (and we offer no
     * twin socket). */
    if (rc < 0 || (s.write_multiple && !c->opts.write_multiple) ||
        s.twin_socket)
        return -EPROTO;
    if (c->opts.qemu_like && s.max_msg_fds > MUC_QEMU_MAX_FDS)
        return -EPROTO;
    c->caps = (struct muc_server_caps){
        .major = v.major, .minor = v.minor,
        .max_msg_fds = s.max_msg_fds,
        .max_data_xfer_size = s.max_data_xfer_size,
        .max_dma_maps = s.max_dma_maps,
        .pgsizes = s.pgsizes,
        .write_multiple = s.write_multiple,
        .migration = s.mig_pgsize != 0,
    };
    return 0;
}

static int negotiate(muc_t *c)
{
    struct {
        struct vfu_version v;
        char json[512];
    } __attribute__((packed)) req = { .v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR } };
    struct vfu_caps ours;
    struct iovec iov[2];
    struct mu_msg m;
    int rc;

    vfu_caps_default(&ours);
    ours.max_msg_fds = c->opts.max_msg_fds;
    ours.max_data_xfer_size = c->opts.max_data_xfer_size;
    ours.pgsizes = 4096;
    ours.write_multiple = c->opts.write_multiple;
    /* We can drive a migration (client_mig.c): say so, in libvfio-user's
     * form, so a server may offer it back. */
    ours.mig_pgsize = 4096;
    rc = vfu_caps_build(&ours, req.json, sizeof(req.json));
    if (rc < 0)
        return rc;
    iov[1] = (struct iovec){ &req, sizeof(req.v) + (size_t)rc };

    c->negotiating = true;
    rc = cl_call(c, VFU_CMD_VERSION, iov, 2, NULL, 0, &m);
    c->negotiating = false;
    if (rc == -ENOTCONN)
        return -EPROTO;     /* it hung up on a vfio-user handshake */
    if (rc < 0)
        return rc;
    rc = check_version_reply(c, &m);
    mu_msg_release(&m);
    return rc < 0 ? cl_broken(c, rc == -ENOMEM ? rc : -EPROTO) : 0;
}

static int client_new(muc_t **out, int fd, const struct muc_link *link,
                      void *link_arg, const struct muc_opts *opts,
                      bool negotiate_now)
{
    struct vfu_caps d;
    uint32_t max_size;
    muc_t *c;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    rc = opts_resolve(opts, &c->opts);
    /* Room for the largest reply: a full data transfer, or an info reply. */
    max_size = (c->opts.max_data_xfer_size > MUC_INFO_MAX ?
                c->opts.max_data_xfer_size : MUC_INFO_MAX) + 4096;
    if (rc == 0)
        rc = link != NULL ? msgio_init_mem(&c->io, max_size, c->opts.max_msg_fds)
                          : msgio_init(&c->io, fd, max_size, c->opts.max_msg_fds);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        free(c);
        return rc;
    }
    c->link = link;
    c->link_arg = link_arg;
    vfu_caps_default(&d);
    c->caps = (struct muc_server_caps){
        .max_msg_fds = d.max_msg_fds, .max_data_xfer_size = d.max_data_xfer_size,
        .max_dma_maps = d.max_dma_maps, .pgsizes = d.pgsizes,
    };
    c->next_id = 1;
    if (negotiate_now && (rc = negotiate(c)) < 0) {
        muc_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

int muc__from_fd(muc_t **out, int fd, const struct muc_opts *opts,
                 bool negotiate_now)
{
    return client_new(out, fd, NULL, NULL, opts, negotiate_now);
}

int muc__from_link(muc_t **out, const struct muc_link *link, void *arg,
                   const struct muc_opts *opts, bool negotiate_now)
{
    if (link == NULL)
        return -EINVAL;
    return client_new(out, -1, link, arg, opts, negotiate_now);
}

static int sock_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, rc;

    if (path == NULL || strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* No retry on EINTR: the connection would go on in the background. */
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int muc_connect(muc_t **out, const char *path, const struct muc_opts *opts)
{
    int fd = sock_connect(path);

    *out = NULL;
    return fd < 0 ? fd : muc__from_fd(out, fd, opts, true);
}

int muc_connect_raw(muc_t **out, const char *path)
{
    int fd = sock_connect(path);

    *out = NULL;
    return fd < 0 ? fd : muc__from_fd(out, fd, NULL, false);
}

void muc_close(muc_t *c)
{
    if (c == NULL)
        return;
    msgio_fini(&c->io);
    free(c->mem);
    free(c);
}

int muc_fd(const muc_t *c)
{
    return c->io.fd;
}

const struct muc_server_caps *muc_server_caps(const muc_t *c)
{
    return &c->caps;
}

/* ---------------- discovery ---------------- */

int muc_device_info(muc_t *c, struct muc_device_info *info)
{
    struct vfu_device_info d = { .argsz = sizeof(d) };
    struct iovec iov[2] = { { 0 }, { &d, sizeof(d) } };
    struct mu_msg m;
    int rc;

    rc = cl_call(c, VFU_CMD_DEVICE_GET_INFO, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, sizeof(d), sizeof(d), 0)) < 0)
        return rc;
    memcpy(&d, m.body, sizeof(d));
    mu_msg_release(&m);
    if (d.argsz < sizeof(d))
        return cl_broken(c, -EPROTO);
    memset(info, 0, sizeof(*info));
    info->flags = d.flags;
    info->num_regions = d.num_regions;
    info->num_irqs = d.num_irqs;
    return 0;
}

static int parse_sparse(const uint8_t *p, size_t len, struct muc_region_info *ri,
                        size_t *clen)
{
    struct vfu_cap_sparse s;

    if (len < sizeof(s) || ri->nr_sparse > 0)
        return -EPROTO;     /* truncated, or a second sparse cap */
    memcpy(&s, p, sizeof(s));
    if (s.nr_areas > (len - sizeof(s)) / sizeof(struct vfu_sparse_area))
        return -EPROTO;
    if (s.nr_areas > MUC_MAX_SPARSE)
        return -E2BIG;      /* fine by the protocol, too many for us */
    for (unsigned i = 0; i < s.nr_areas; i++) {
        struct vfu_sparse_area a;

        memcpy(&a, p + sizeof(s) + i * sizeof(a), sizeof(a));
        if (a.size == 0 || !vfu_range_ok(a.offset, a.size, ri->size))
            return -EPROTO;
        ri->sparse[i].offset = a.offset;
        ri->sparse[i].size = a.size;
    }
    ri->nr_sparse = s.nr_areas;
    *clen = sizeof(s) + s.nr_areas * sizeof(struct vfu_sparse_area);
    return 0;
}

/*
 * Walk the capability chain of a region info reply p[0, len).  Each cap
 * must lie inside the reply past the fixed part, and each next must point
 * past the end of the current cap, so the walk ends after at most len / 8
 * steps whatever the server wrote.  Unknown caps are skipped.
 */
static int parse_caps(const uint8_t *p, size_t len, size_t off,
                      struct muc_region_info *ri)
{
    size_t min = sizeof(struct vfu_region_info);
    int rc;

    while (off != 0) {
        struct vfu_cap_hdr h;
        size_t clen = sizeof(h);

        if (off < min || off > len || len - off < sizeof(h))
            return -EPROTO;
        memcpy(&h, p + off, sizeof(h));
        if (h.id == VFU_CAP_SPARSE_MMAP && h.version == 1) {
            rc = parse_sparse(p + off, len - off, ri, &clen);
            if (rc < 0)
                return rc;
        } else if (h.id == VFU_CAP_TYPE && h.version == 1) {
            struct vfu_cap_type t;

            if (len - off < sizeof(t) || ri->has_type)
                return -EPROTO;
            memcpy(&t, p + off, sizeof(t));
            ri->has_type = true;
            ri->type = t.type;
            ri->subtype = t.subtype;
            clen = sizeof(t);
        }
        min = off + clen;
        off = h.next;
    }
    return 0;
}

int muc_region_info(muc_t *c, uint32_t index, struct muc_region_info *info)
{
    const uint32_t known = VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE |
                           VFU_REGION_FLAG_MMAP | VFU_REGION_FLAG_CAPS;
    struct vfu_region_info r = { .index = index };
    struct muc_region_info ri;
    struct mu_msg m;
    int rc;

    rc = info_call(c, VFU_CMD_DEVICE_GET_REGION_INFO, &r, sizeof(r),
                   sizeof(r) + MUC_INFO_ROOM, 1, &m);
    if (rc < 0)
        return rc;
    memcpy(&r, m.body, sizeof(r));
    /* An fd only makes sense for a region that can be mmapped. */
    if (r.index != index || (r.flags & ~known) ||
        (m.nfds > 0 && !(r.flags & VFU_REGION_FLAG_MMAP)))
        return cl_reject(c, &m);

    memset(&ri, 0, sizeof(ri));
    ri.index = index;
    ri.flags = r.flags & (MUC_REGION_READ | MUC_REGION_WRITE | MUC_REGION_MMAP);
    ri.size = r.size;
    ri.offset = r.offset;
    rc = 0;
    if ((r.flags & VFU_REGION_FLAG_CAPS) && r.cap_offset != 0)
        rc = parse_caps(m.body, m.len, r.cap_offset, &ri);
    if (rc < 0) {
        mu_msg_release(&m);
        return rc == -EPROTO ? cl_broken(c, rc) : rc;
    }
    ri.fd = mu_msg_take_fd(&m, 0);
    mu_msg_release(&m);
    *info = ri;
    return 0;
}

int muc_irq_info(muc_t *c, uint32_t index, struct muc_irq_info *info)
{
    struct vfu_irq_info q = { .argsz = sizeof(q), .index = index };
    struct iovec iov[2] = { { 0 }, { &q, sizeof(q) } };
    struct mu_msg m;
    int rc;

    rc = cl_call(c, VFU_CMD_DEVICE_GET_IRQ_INFO, iov, 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, sizeof(q), sizeof(q), 0)) < 0)
        return rc;
    memcpy(&q, m.body, sizeof(q));
    if (q.argsz < sizeof(q) || q.index != index)
        return cl_reject(c, &m);
    mu_msg_release(&m);
    memset(info, 0, sizeof(*info));
    info->flags = q.flags;
    info->count = q.count;
    return 0;
}

/* Hand out entries [0, min(count, max)), each with an fd of its own. */
static int io_fds_fill(struct mu_msg *m, uint32_t count, size_t stride,
                       struct muc_ioeventfd *out, unsigned max)
{
    unsigned n = count < max ? count : max;

    for (unsigned i = 0; i < n; i++) {
        struct vfu_sub_region_ioeventfd e;

        memcpy(&e, m->body + sizeof(struct vfu_region_io_fds) + i * stride,
               sizeof(e));
        out[i] = (struct muc_ioeventfd){ .fd = -1 };
        /* Entries may share an fd: give each caller-owned copy a dup. */
        out[i].fd = fcntl(m->fds[e.fd_index], F_DUPFD_CLOEXEC, 0);
        if (out[i].fd < 0) {
            int err = -errno;

            while (i-- > 0)
                close(out[i].fd);
            return err;
        }
        out[i].offset = e.offset;
        out[i].size = e.size;
        out[i].type = e.type;
        out[i].flags = e.flags;
        out[i].datamatch = e.datamatch;
    }
    return (int)n;
}

int muc_region_io_fds(muc_t *c, uint32_t index, struct muc_ioeventfd *out,
                      unsigned max)
{
    const size_t esz = sizeof(struct vfu_sub_region_ioeventfd);
    struct vfu_region_io_fds r = { .index = index };
    uint64_t want = sizeof(r) + (uint64_t)max * esz;
    size_t body, stride = 0;
    struct mu_msg m;
    int rc;

    if (max > 0 && out == NULL)
        return -EINVAL;
    if (c->opts.qemu_like)
        return -ENOTSUP;
    rc = info_call(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &r, sizeof(r),
                   (uint32_t)(want < MUC_INFO_MAX ? want : MUC_INFO_MAX),
                   c->opts.max_msg_fds, &m);
    if (rc < 0)
        return rc;
    memcpy(&r, m.body, sizeof(r));
    body = m.len - sizeof(r);
    if (r.count > 0)
        stride = body / r.count;
    /* count entries of at least 40 bytes, and at least one fd, but never
     * more fds than entries; every fd_index must name a received fd. */
    if (r.index != index || r.flags != 0 || m.nfds > r.count ||
        (r.count == 0 ? body != 0 || m.nfds != 0 :
         stride < esz || stride * r.count != body || m.nfds == 0))
        return cl_reject(c, &m);
    for (uint32_t i = 0; i < r.count; i++) {
        uint32_t fi;

        memcpy(&fi, m.body + sizeof(r) + i * stride +
               offsetof(struct vfu_sub_region_ioeventfd, fd_index), sizeof(fi));
        if (fi >= m.nfds)
            return cl_reject(c, &m);
    }
    rc = io_fds_fill(&m, r.count, stride, out, max);
    mu_msg_release(&m);
    return rc;
}

/* ---------------- region access ---------------- */

static int region_rw_once(muc_t *c, uint32_t index, uint64_t off,
                          uint8_t *buf, uint32_t n, bool write)
{
    struct vfu_region_access a = { off, index, n }, e;
    struct iovec iov[3] = { { 0 }, { &a, sizeof(a) }, { buf, n } };
    size_t want = sizeof(a) + (write ? 0 : n);
    struct mu_msg m;
    int rc;

    rc = cl_call(c, write ? VFU_CMD_REGION_WRITE : VFU_CMD_REGION_READ, iov,
              write ? 3 : 2, NULL, 0, &m);
    if (rc < 0 || (rc = cl_expect(c, &m, want, want, 0)) < 0)
        return rc;
    memcpy(&e, m.body, sizeof(e));
    if (e.offset != off || e.region != index || e.count != n)
        return cl_reject(c, &m);
    if (!write)
        memcpy(buf, m.body + sizeof(e), n);
    mu_msg_release(&m);
    return 0;
}

static int region_rw(muc_t *c, uint32_t index, uint64_t offset, uint8_t *buf,
                     size_t count, bool write)
{
    uint32_t max = c->caps.max_data_xfer_size;
    int rc;

    if (max > c->opts.max_data_xfer_size)
        max = c->opts.max_data_xfer_size;
    if (max == 0)
        max = 1;
    if ((count > 0 && buf == NULL) || !vfu_range_ok(offset, count, UINT64_MAX))
        return -EINVAL;
    for (size_t done = 0; done < count;) {
        uint32_t n = count - done < max ? (uint32_t)(count - done) : max;

        rc = region_rw_once(c, index, offset + done, buf + done, n, write);
        if (rc < 0)
            return rc;
        done += n;
    }
    return 0;
}

int muc_region_read(muc_t *c, uint32_t index, uint64_t offset, void *buf,
                    size_t count)
{
    return region_rw(c, index, offset, buf, count, false);
}

int muc_region_write(muc_t *c, uint32_t index, uint64_t offset,
                     const void *buf, size_t count)
{
    /* The buffer is only read: region_rw writes to it for reads alone. */
    return region_rw(c, index, offset, (uint8_t *)buf, count, true);
}

/* Config space helpers: region 7, 1/2/4 bytes, little endian like PCI. */
#define CONFIG_RW(bits)                                                     \
int muc_config_read##bits(muc_t *c, uint32_t off, uint##bits##_t *val)      \
{                                                                           \
    return muc_region_read(c, VFU_PCI_CONFIG, off, val, sizeof(*val));      \
}                                                                           \
int muc_config_write##bits(muc_t *c, uint32_t off, uint##bits##_t val)      \
{                                                                           \
    return muc_region_write(c, VFU_PCI_CONFIG, off, &val, sizeof(val));     \
}
CONFIG_RW(8)
CONFIG_RW(16)
CONFIG_RW(32)

/* Write all-ones to the BAR dword at off, read the mask back, restore. */
static int bar_probe(muc_t *c, uint32_t off, uint32_t *orig, uint32_t *mask)
{
    int rc, rc2;

    rc = muc_config_read32(c, off, orig);
    if (rc < 0)
        return rc;
    rc = muc_config_write32(c, off, 0xffffffffu);
    if (rc == 0)
        rc = muc_config_read32(c, off, mask);
    rc2 = muc_config_write32(c, off, *orig);
    return rc < 0 ? rc : rc2;
}

int muc_bar_size(muc_t *c, unsigned bar, uint64_t *size, bool *is_io,
                 bool *is64, bool *prefetch)
{
    uint32_t off = 0x10 + 4 * bar, orig, lo, hi = 0, ohi;
    uint64_t mask;
    bool io, b64;
    int rc;

    if (bar > 5)
        return -EINVAL;
    *size = 0;
    *is_io = *is64 = *prefetch = false;
    if (bar > 0) {
        /* The upper half of a 64-bit BAR is not a BAR: absent. */
        rc = muc_config_read32(c, off - 4, &lo);
        if (rc < 0 || (!(lo & 0x1) && ((lo >> 1) & 0x3) == 0x2))
            return rc;
    }
    rc = bar_probe(c, off, &orig, &lo);
    if (rc < 0)
        return rc;
    io = lo & 0x1;
    b64 = !io && ((lo >> 1) & 0x3) == 0x2;
    if (b64 && bar == 5)
        b64 = false;        /* no upper half to size: treat as 32-bit */
    if (b64 && (rc = bar_probe(c, off + 4, &ohi, &hi)) < 0)
        return rc;
    mask = ((uint64_t)hi << 32) | (lo & (io ? ~0x3u : ~0xfu));
    /* The size is the lowest writable address bit (16-bit I/O BARs read
     * back zeros above bit 15, which this also handles). */
    *size = mask & (~mask + 1);
    *is_io = io;
    *is64 = b64;
    *prefetch = !io && (lo & 0x8);
    return 0;
}

int muc_reset(muc_t *c)
{
    return cl_call_simple(c, VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0);
}

/* ---------------- interrupts ---------------- */

int muc_set_irqs(muc_t *c, uint32_t flags, uint32_t index, uint32_t start,
                 uint32_t count, const void *data, const int *fds,
                 unsigned nfds)
{
    size_t dlen = (flags & VFU_IRQ_SET_DATA_BOOL) ? count : 0;
    struct vfu_irq_set s = { .flags = flags, .index = index, .start = start,
                             .count = count };
    struct iovec iov[3] = { { 0 }, { &s, sizeof(s) }, { (void *)data, dlen } };
    struct mu_msg m;
    int rc;

    if ((dlen > 0 && data == NULL) || dlen > MUC_MAX_XFER)
        return -EINVAL;
    s.argsz = (uint32_t)(sizeof(s) + dlen);
    rc = cl_call(c, VFU_CMD_DEVICE_SET_IRQS, iov, dlen ? 3 : 2, fds, nfds, &m);
    if (rc == 0 && (rc = cl_expect(c, &m, 0, 0, 0)) == 0)
        mu_msg_release(&m);
    return rc;
}

int muc_irq_set_eventfds(muc_t *c, uint32_t index, uint32_t start,
                         uint32_t count, const int *fds)
{
    const uint32_t flags = VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER;
    uint32_t per = c->caps.max_msg_fds;
    int rc;

    if (count == 0 && fds == NULL) {
        if (start != 0)
            return -EINVAL;
        return muc_set_irqs(c, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
                            index, 0, 0, NULL, NULL, 0);
    }
    if (fds == NULL || count > UINT32_MAX - start)
        return -EINVAL;
    if (per > MSGIO_MAX_FDS)
        per = MSGIO_MAX_FDS;
    if (per == 0)
        return -E2BIG;
    /* The server takes at most max_msg_fds fds a message: split. */
    for (uint32_t done = 0; done < count; done += per) {
        uint32_t n = count - done < per ? count - done : per;

        rc = muc_set_irqs(c, flags, index, start + done, n, NULL, fds + done, n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int muc_irq_clear_eventfds(muc_t *c, uint32_t index, uint32_t start,
                           uint32_t count)
{
    return muc_set_irqs(c, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER,
                        index, start, count, NULL, NULL, 0);
}

int muc_irq_mask(muc_t *c, uint32_t index, uint32_t start, uint32_t count,
                 bool mask)
{
    uint32_t action = mask ? VFU_IRQ_SET_ACTION_MASK : VFU_IRQ_SET_ACTION_UNMASK;

    return muc_set_irqs(c, VFU_IRQ_SET_DATA_NONE | action, index, start, count,
                        NULL, NULL, 0);
}

int64_t muc_eventfd_wait(int fd, int timeout_ms)
{
    uint64_t deadline = cl_deadline_of(timeout_ms), v;
    struct pollfd p = { .fd = fd, .events = POLLIN };

    for (;;) {
        int n = poll(&p, 1, cl_ms_left(deadline));
        ssize_t r;

        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0)
            return 0;
        if (n < 0)
            continue;
        r = read(fd, &v, sizeof(v));
        if (r == (ssize_t)sizeof(v))
            return v > INT64_MAX ? INT64_MAX : (int64_t)v;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (r >= 0)
            return -EINVAL;     /* not an eventfd */
        /* someone else read it first: wait on */
    }
}

/* ---------------- raw messages ---------------- */

int muc_request(muc_t *c, uint16_t cmd, const void *payload, size_t len,
                const int *fds, unsigned nfds, void *reply, size_t reply_cap,
                size_t *reply_len, int *rfds, unsigned max_rfds,
                unsigned *nr_rfds)
{
    struct iovec iov[2] = { { 0 }, { (void *)payload, len } };
    struct mu_msg m;
    unsigned nr = 0;
    int rc;

    if (reply_len != NULL)
        *reply_len = 0;
    if (nr_rfds != NULL)
        *nr_rfds = 0;
    if ((len > 0 && payload == NULL) || (reply_cap > 0 && reply == NULL) ||
        (max_rfds > 0 && rfds == NULL))
        return -EINVAL;
    rc = cl_call(c, cmd, iov, len ? 2 : 1, fds, nfds, &m);
    if (rc < 0)
        return rc;
    if (reply_len != NULL)
        *reply_len = m.len;
    if (m.len > 0 && reply_cap > 0)
        memcpy(reply, m.body, m.len < reply_cap ? m.len : reply_cap);
    for (unsigned i = 0; i < m.nfds && nr < max_rfds; i++)
        rfds[nr++] = mu_msg_take_fd(&m, i);
    if (nr_rfds != NULL)
        *nr_rfds = nr;
    rc = m.len > reply_cap ? -EMSGSIZE : 0;
    mu_msg_release(&m);
    return rc;
}

int muc_send_bytes(muc_t *c, const void *buf, size_t len, const int *fds,
                   unsigned nfds)
{
    struct iovec iov = { (void *)buf, len };

    if (c->dead)
        return -ENOTCONN;
    if (len == 0 || buf == NULL || nfds > MSGIO_MAX_FDS ||
        (nfds > 0 && fds == NULL))
        return -EINVAL;
    return cl_send_iov(c, &iov, 1, fds, nfds);
}

ssize_t muc_recv_msg(muc_t *c, void *buf, size_t cap, int timeout_ms)
{
    struct mu_msg m;
    size_t n;
    int rc;

    if (c->dead)
        return -ENOTCONN;
    if (cap > 0 && buf == NULL)
        return -EINVAL;
    rc = cl_recv_msg(c, &m, cl_deadline_of(timeout_ms));
    if (rc < 0)
        return rc;
    /* Received fds cannot be handed out here: they are closed. */
    n = cap < VFU_HDR_SIZE ? cap : VFU_HDR_SIZE;
    if (n > 0)
        memcpy(buf, &m.hdr, n);
    if (cap > VFU_HDR_SIZE && m.len > 0)
        memcpy((uint8_t *)buf + VFU_HDR_SIZE, m.body,
               m.len < cap - VFU_HDR_SIZE ? m.len : cap - VFU_HDR_SIZE);
    n = m.hdr.size;
    mu_msg_release(&m);
    return n > cap ? -EMSGSIZE : (ssize_t)n;
}
