/*
 * client_priv.h - what the two halves of the client library share:
 * client.c (connection, requests, discovery, region access, interrupts) and
 * client_dma.c (memory handed to the server, serving its DMA_READ/DMA_WRITE
 * requests, dirty page logging).  Internal: nothing here is exported.
 */
#ifndef MUSER_CLIENT_PRIV_H
#define MUSER_CLIENT_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "muser-client.h"
#include "client_test.h"
#include "msgio.h"
#include "wire.h"

#define MUC_DEFAULT_FDS 8u
#define MUC_QEMU_MAX_FDS 16u        /* QEMU's VFIO_USER_MAX_MAX_FDS */
#define MUC_DEFAULT_XFER (1u << 20)
#define MUC_DEFAULT_TIMEOUT_MS 5000
#define MUC_MAX_XFER (1u << 30)     /* keeps every message size in a u32 */
#define MUC_INFO_ROOM 1024u         /* room for region caps on the first ask */
#define MUC_INFO_MAX 65536u         /* largest info reply we ask for */
#define MUC_STALE_MAX 16u
#define MUC_SERVE_BATCH 1024
#define MUC_MAX_LOG_RANGES 65536u

/* Memory handed over without an fd; DMA_READ/DMA_WRITE are served from it. */
struct muc_mem {
    uint64_t iova, size;
    uint8_t *host;
    unsigned prot;
};

/*
 * Internal transport hook: a client whose bytes go through a link instead
 * of its socket (lib/tran_mem.c: tests and the fast fuzzer).  io is then
 * framing only (msgio_init_mem).
 */
struct muc_link {
    /* More bytes from the server into io (msgio_push): > 0, -ETIMEDOUT
     * when none come within timeout_ms (-1: forever), -ENOTCONN at EOF,
     * or another -errno. */
    int (*fill)(void *arg, struct msgio *io, int timeout_ms);
    /* One whole message to the server; the fds stay the caller's.
     * 0 or -errno (-EBADF for a bad fd, as sendmsg). */
    int (*send)(void *arg, const struct iovec *iov, int iovcnt,
                const int *fds, unsigned nfds);
};

struct muc {
    struct msgio io;
    const struct muc_link *link;    /* NULL: the socket io.fd */
    void *link_arg;
    struct muc_opts opts;
    struct muc_server_caps caps;
    uint16_t next_id;
    bool dead;              /* -EPROTO or transport error seen */
    bool negotiating;       /* no server command is valid before VERSION */
    struct muc_mem *mem;
    unsigned nr_mem, mem_cap;
    struct {
        uint16_t id, cmd;
    } stale[MUC_STALE_MAX]; /* requests that timed out, oldest first */
    unsigned nr_stale;
    uint64_t dma_served, dma_refused;
};

/* Internal: wrap a connected socket (unit tests use it on a socketpair).
 * fd is consumed, also on failure.  Not part of the API: hidden, so the
 * muc_* glob of the version script does not export it from libmuser.so. */
__attribute__((visibility("hidden")))
int muc__from_fd(muc_t **out, int fd, const struct muc_opts *opts,
                 bool negotiate);

/* Internal: the same over a link (fuzzers, tests); link and arg must
 * outlive the client. */
__attribute__((visibility("hidden")))
int muc__from_link(muc_t **out, const struct muc_link *link, void *arg,
                   const struct muc_opts *opts, bool negotiate);

/* Absolute deadline for a timeout (-1: none) and the ms left until it. */
uint64_t cl_deadline_of(int timeout_ms);
int cl_ms_left(uint64_t deadline);
/* Mark the connection dead; framing errors become -EPROTO. */
int cl_broken(muc_t *c, int err);
int cl_recv_msg(muc_t *c, struct mu_msg *m, uint64_t deadline);
int cl_send_iov(muc_t *c, const struct iovec *iov, int iovcnt,
                const int *fds, unsigned nfds);
/* Drop m if it is the late reply to a request that timed out. */
bool cl_stale_drop(muc_t *c, struct mu_msg *m);
/* Send cmd (iov[0] is filled with the header) and wait for its reply. */
int cl_call(muc_t *c, uint16_t cmd, struct iovec *iov, int iovcnt,
            const int *fds, unsigned nfds, struct mu_msg *reply);
/* A request whose reply has no payload and no fds. */
int cl_call_simple(muc_t *c, uint16_t cmd, const void *p, size_t len,
                   const int *fds, unsigned nfds);
/* The reply body must be [min, max] bytes with at most max_fds fds. */
int cl_expect(muc_t *c, struct mu_msg *m, size_t min, size_t max,
              unsigned max_fds);
/* A reply of the right shape with the wrong contents. */
int cl_reject(muc_t *c, struct mu_msg *m);
/* Answer one command from the server (client_dma.c); consumes m. */
int cl_serve_cmd(muc_t *c, struct mu_msg *m);

#endif
