/*
 * fuzz_client.c - the client library's handling of what a server sends.
 *
 * The input is what a (hostile) server writes, in chunks (fuzz.h, FC_*),
 * each chunk possibly carrying fds.  The client reads them from memory
 * through the library's internal link hook (muc__from_link, struct
 * muc_link in lib/client_priv.h): no socket, no thread, no wait.  The
 * harness plays the server only by writing: chunks are queued before the
 * client's next call (a barrier chunk waits for the call after), so
 * replies, early replies, late replies and DMA_READ/DMA_WRITE requests
 * arrive exactly as the input orders them, one chunk a read.  Then a fixed
 * sequence of client calls runs; with the queue empty a read times out at
 * once while input is left (or with FC_F_KEEP_OPEN), else it is EOF.  What
 * the client sends must be whole, well-formed messages.
 *
 * What must hold: no crash, no leak, and no fd leak - the fds the calls
 * hand to the caller (region fd, ioeventfds, muc_request's fds) are closed
 * here, everything else the client received must be closed by the library.
 * Outputs must be sane where the header promises something (counts within
 * the caller's bounds, fds valid).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_priv.h"
#include "fuzz.h"
#include "muser-client.h"
#include "wire.h"

#define check(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                   \
            abort();                                                    \
        }                                                               \
    } while (0)

static const uint32_t fds_opt[4] = { 8, 1, 2, 253 };

#define MAX_CHUNKS 4096

/* One write of the server's: its bytes and (dups of) its fds. */
struct chunk {
    uint8_t *data;
    size_t len;
    int fds[3];
    unsigned nfds;
};

struct srv {
    struct fz_in in;
    bool keep_open;
    bool eof;               /* hung up after the last chunk */
    struct chunk q[MAX_CHUNKS];
    unsigned head, tail;    /* written, not read by the client yet */
};

static bool fd_valid(int fd)
{
    return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

/* Take a returned fd: it must be open, and it is ours to close. */
static void own_fd(int fd)
{
    if (fd < 0)
        return;
    check(fd_valid(fd));
    close(fd);
}

static void put_chunk(struct srv *s, const uint8_t *p, size_t len,
                      const int *fds, unsigned nfds)
{
    struct chunk *c;

    /* A stream socket sends nothing for an empty write; what does not
     * fit the queue is lost, like a server that gave up writing. */
    if (len == 0 || s->tail == MAX_CHUNKS)
        return;
    c = &s->q[s->tail++];
    c->data = malloc(len);
    check(c->data != NULL);
    memcpy(c->data, p, len);
    c->len = len;
    c->nfds = 0;
    for (unsigned i = 0; i < nfds; i++) {
        int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

        check(fd >= 0);
        c->fds[c->nfds++] = fd;
    }
}

/* The client reads: the next chunk, as one recvmsg would return it. */
static int link_fill(void *arg, struct msgio *io, int timeout_ms)
{
    struct srv *s = arg;
    struct chunk *c;
    int rc;

    (void)timeout_ms;
    if (s->head == s->tail)
        return s->eof ? -ENOTCONN : -ETIMEDOUT;
    c = &s->q[s->head++];
    rc = msgio_push(io, c->data, c->len, c->fds, c->nfds);
    free(c->data);
    c->data = NULL;
    return rc;
}

/* The client writes: always one whole message with a valid header. */
static int link_send(void *arg, const struct iovec *iov, int iovcnt,
                     const int *fds, unsigned nfds)
{
    struct vfu_hdr h;
    size_t total = 0, got = 0;

    (void)arg;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    check(total >= sizeof(h));
    for (int i = 0; i < iovcnt && got < sizeof(h); i++) {
        size_t n = iov[i].iov_len < sizeof(h) - got ? iov[i].iov_len
                                                    : sizeof(h) - got;

        memcpy((uint8_t *)&h + got, iov[i].iov_base, n);
        got += n;
    }
    check(h.size == total && vfu_hdr_check(&h, UINT32_MAX) == 0);
    for (unsigned i = 0; i < nfds; i++) {
        if (fcntl(fds[i], F_GETFD) < 0)
            return -EBADF;      /* as sendmsg */
    }
    return 0;
}

static const struct muc_link mem_link = { link_fill, link_send };

static void drop_chunks(struct srv *s)
{
    for (unsigned i = s->head; i < s->tail; i++) {
        free(s->q[i].data);
        for (unsigned k = 0; k < s->q[i].nfds; k++)
            close(s->q[i].fds[k]);
    }
    s->head = s->tail = 0;
}

/*
 * Queue chunks up to the next barrier (the first chunk's own barrier bit
 * does not stop it).  With no input left, hang up unless told not to.
 */
static void feed(struct srv *s)
{
    bool first = true;

    while (s->in.n > 0) {
        const uint8_t *data;
        uint8_t hdrbuf[VFU_HDR_SIZE];
        uint8_t ctl = s->in.p[0];
        struct vfu_hdr h;
        uint16_t id = 0, cmd = 0, want;
        uint8_t flags = 0, err = 0;
        int fds[3];
        unsigned got = 0;
        size_t len;

        if ((ctl & FC_C_BARRIER) && !first)
            return;
        first = false;
        fz_u8(&s->in);
        if (ctl & FC_C_HDR) {
            id = fz_u16(&s->in);
            cmd = fz_u16(&s->in);
            flags = fz_u8(&s->in);
            err = fz_u8(&s->in);
        }
        for (unsigned i = 0; i < (ctl & FC_C_NFDS_MASK); i++) {
            uint8_t spec = fz_u8(&s->in);
            int fd;

            if (s->in.end)
                break;
            fd = fz_make_fd(spec);
            if (fd >= 0)
                fds[got++] = fd;
        }
        want = fz_u16(&s->in);
        len = fz_bytes(&s->in, &data, want);
        if (ctl & FC_C_HDR) {
            uint8_t *msg = malloc(sizeof(hdrbuf) + len);

            check(msg != NULL);
            vfu_hdr_init(&h, id, cmd, (uint32_t)(VFU_HDR_SIZE + len), flags,
                         err);
            memcpy(msg, &h, sizeof(h));
            if (len > 0)
                memcpy(msg + sizeof(h), data, len);
            put_chunk(s, msg, sizeof(h) + len, fds, got);
            free(msg);
        } else {
            put_chunk(s, data, len, fds, got);
        }
        for (unsigned i = 0; i < got; i++)
            close(fds[i]);
    }
    if (!s->keep_open && !s->eof)
        s->eof = true;
}

/* A valid VERSION reply to request 1, as muser's server would send. */
static void queue_version(struct srv *s)
{
    static const char json[] =
        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":65536,"
        "\"max_dma_maps\":64,\"pgsizes\":4096}}";
    uint8_t msg[VFU_HDR_SIZE + 4 + sizeof(json)];
    struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
    struct vfu_hdr h;

    vfu_hdr_init(&h, 1, VFU_CMD_VERSION, sizeof(msg), VFU_F_TYPE_REPLY, 0);
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), &v, sizeof(v));
    memcpy(msg + sizeof(h) + sizeof(v), json, sizeof(json));
    put_chunk(s, msg, sizeof(msg), NULL, 0);
}

static int memfd_of(size_t size)
{
    int fd = memfd_create("fuzz-client", MFD_CLOEXEC);

    check(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
    return fd;
}

static unsigned timeouts;
static bool verbose;            /* FUZZ_VERBOSE=1: narrate (for seeds) */

/* Errors are fine; anything a call returns must be a count or -errno. */
static void rc_ok(int rc)
{
    check(rc >= -4095);
    if (verbose)
        fprintf(stderr, "  -> %d (%s)\n", rc, rc < 0 ? strerror(-rc) : "ok");
    timeouts += rc == -ETIMEDOUT;
}

static void call_one(muc_t *c, enum fc_call k, uint8_t *mem)
{
    uint8_t buf[FC_REGION_READ_LEN];
    int rc;

    switch (k) {
    case FC_DEVICE_INFO: {
        struct muc_device_info di;

        rc_ok(muc_device_info(c, &di));
        break;
    }
    case FC_REGION_INFO_0:
    case FC_REGION_INFO_4:
    case FC_REGION_INFO_7: {
        static const uint32_t idx[] = { 0, 4, 7 };
        struct muc_region_info ri;

        ri.fd = -1;
        rc = muc_region_info(c, idx[k - FC_REGION_INFO_0], &ri);
        rc_ok(rc);
        if (rc == 0) {
            check(ri.index == idx[k - FC_REGION_INFO_0]);
            check(ri.nr_sparse <= MUC_MAX_SPARSE);
            for (unsigned i = 0; i < ri.nr_sparse; i++)
                check(ri.sparse[i].size != 0 &&
                      ri.sparse[i].offset <= ri.size &&
                      ri.sparse[i].size <= ri.size - ri.sparse[i].offset);
            own_fd(ri.fd);
        }
        break;
    }
    case FC_IRQ_INFO_2: {
        struct muc_irq_info ii;

        rc_ok(muc_irq_info(c, FC_IRQ_INDEX, &ii));
        break;
    }
    case FC_IO_FDS_0: {
        struct muc_ioeventfd io[4];

        rc = muc_region_io_fds(c, 0, io, 4);
        rc_ok(rc);
        check(rc <= 4);
        for (int i = 0; i < rc; i++)
            own_fd(io[i].fd);
        break;
    }
    case FC_REGION_READ:
        rc_ok(muc_region_read(c, FC_REGION_READ_IDX, FC_REGION_READ_OFF, buf,
                              FC_REGION_READ_LEN));
        break;
    case FC_REGION_WRITE:
        memset(buf, 0x77, sizeof(buf));
        rc_ok(muc_region_write(c, FC_REGION_WRITE_IDX, FC_REGION_WRITE_OFF,
                               buf, FC_REGION_WRITE_LEN));
        break;
    case FC_BAR_SIZE_0:
    case FC_BAR_SIZE_1: {
        uint64_t size;
        bool io, b64, pf;

        rc = muc_bar_size(c, k == FC_BAR_SIZE_0 ? 0 : 1, &size, &io, &b64,
                          &pf);
        rc_ok(rc);
        if (rc == 0)
            check(size == 0 || (size & (size - 1)) == 0);
        break;
    }
    case FC_DMA_MAP: {
        int fd = memfd_of(FC_DMA_SIZE);

        rc_ok(muc_dma_map(c, FC_DMA_IOVA, FC_DMA_SIZE, fd, 0,
                          MUC_DMA_READ | MUC_DMA_WRITE));
        close(fd);
        break;
    }
    case FC_DMA_MAP_MEM:
        /* The server may DMA_READ/DMA_WRITE it from here on. */
        rc_ok(muc_dma_map_mem(c, FC_MEM_IOVA, FC_MEM_SIZE, mem,
                              MUC_DMA_READ | MUC_DMA_WRITE));
        break;
    case FC_SERVE:
        rc_ok(muc_serve(c, 0));
        break;
    case FC_IRQ_SET_EVENTFDS: {
        int efd[FC_IRQ_COUNT];

        for (unsigned i = 0; i < FC_IRQ_COUNT; i++)
            efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        check(efd[0] >= 0 && efd[1] >= 0);
        rc_ok(muc_irq_set_eventfds(c, FC_IRQ_INDEX, 0, FC_IRQ_COUNT, efd));
        for (unsigned i = 0; i < FC_IRQ_COUNT; i++)
            close(efd[i]);
        break;
    }
    case FC_IRQ_MASK:
        rc_ok(muc_irq_mask(c, FC_IRQ_INDEX, 0, 1, true));
        break;
    case FC_IRQ_CLEAR:
        rc_ok(muc_irq_clear_eventfds(c, FC_IRQ_INDEX, 1, 1));
        break;
    case FC_DIRTY_START: {
        uint64_t iova = 0, len = FC_DIRTY_LEN;

        rc_ok(muc_dirty_start(c, FC_DIRTY_PGSIZE, &iova, &len, 1));
        break;
    }
    case FC_DIRTY_REPORT: {
        uint64_t bitmap[(FC_DIRTY_LEN / FC_DIRTY_PGSIZE + 63) / 64];

        rc_ok(muc_dirty_report(c, 0, FC_DIRTY_LEN, FC_DIRTY_PGSIZE, bitmap,
                               sizeof(bitmap)));
        break;
    }
    case FC_DIRTY_STOP:
        rc_ok(muc_dirty_stop(c));
        break;
    case FC_DMA_UNMAP:
        rc_ok(muc_dma_unmap(c, FC_DMA_IOVA, FC_DMA_SIZE));
        break;
    case FC_RESET:
        rc_ok(muc_reset(c));
        break;
    case FC_REQUEST: {
        struct vfu_device_info di = { .argsz = sizeof(di) };
        uint8_t reply[64];
        size_t rlen;
        int rfds[4];
        unsigned nr;

        rc = muc_request(c, FC_REQUEST_CMD, &di, sizeof(di), NULL, 0, reply,
                         sizeof(reply), &rlen, rfds, 4, &nr);
        rc_ok(rc);
        check(nr <= 4);
        for (unsigned i = 0; i < nr; i++)
            own_fd(rfds[i]);
        break;
    }
    case FC_RECV_MSG: {
        uint8_t m[256];
        ssize_t n = muc_recv_msg(c, m, sizeof(m), 0);

        check(n >= -4095 && n <= (ssize_t)sizeof(m));
        break;
    }
    case FC_DMA_UNMAP_ALL:
        rc_ok(muc_dma_unmap_all(c));
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct srv s;
    struct muc_opts o = { .timeout_ms = FC_TIMEOUT_MS };
    uint8_t *mem;
    uint8_t flags;
    int fds_before, rc;
    muc_t *c = NULL;
    bool negotiate;

    verbose = getenv("FUZZ_VERBOSE") != NULL;
    s.in = (struct fz_in){ data, size, false };
    s.eof = false;
    s.head = s.tail = 0;
    fds_before = fz_count_fds();
    flags = fz_u8(&s.in);
    negotiate = flags & (FC_F_NEGOTIATE | FC_F_VERSION);
    o.write_multiple = flags & FC_F_WRITE_MULTI;
    o.max_msg_fds = fds_opt[(flags >> FC_F_FDS_SHIFT) & 3];
    s.keep_open = flags & FC_F_KEEP_OPEN;


    mem = calloc(1, FC_MEM_SIZE);
    check(mem != NULL);
    if (flags & FC_F_VERSION)
        queue_version(&s);
    feed(&s);
    timeouts = 0;
    rc = muc__from_link(&c, &mem_link, &s, &o, negotiate);
    rc_ok(rc);
    if (rc == 0) {
        /* A silent server costs nothing here (a read times out at
         * once): every call runs. */
        for (int k = 0; k < FC_NUM_CALLS; k++) {
            if (k > 0)
                feed(&s);
            if (verbose)
                fprintf(stderr, "call %d\n", k);
            call_one(c, (enum fc_call)k, mem);
        }
        muc_close(c);
    }
    drop_chunks(&s);
    free(mem);
    check(fz_count_fds() == fds_before);
    return 0;
}
