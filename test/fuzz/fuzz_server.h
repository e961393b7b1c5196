/*
 * fuzz_server.h - between fuzz_server.c (client sessions, the op language,
 * the invariants) and fuzz_server_dev.c (the test device it serves).
 */
#ifndef MUSER_FUZZ_SERVER_H
#define MUSER_FUZZ_SERVER_H

#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "private.h"

/* A broken invariant: abort, so libFuzzer keeps the input. */
#define check(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: invariant violated: %s\n",          \
                    __FILE__, __LINE__, #cond);                         \
            abort();                                                    \
        }                                                               \
    } while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define FS_MAX_LIVE 16
#define FS_TIMEOUT_MS 10        /* the context's send and receive timeouts */

/* ---- fuzz_server_dev.c: the device ---- */

extern mu_ctx_t *g_ctx;
extern char g_path[128];        /* the listening socket */
extern bool fs_verbose;         /* FUZZ_VERBOSE=1: narrate (for seeds) */
extern bool fs_reset_fails;     /* the reset callback fails (per input) */

/* DMA regions the device was given and not yet told to forget. */
struct fs_live {
    uint64_t iova, size;
    bool has_fd, used;
};
extern struct fs_live fs_live[FS_MAX_LIVE];

/* Callback counts; maps == unmaps whenever no client is attached. */
extern struct fs_cnt {
    unsigned long maps, unmaps, overlaps, resets, ioevents, irq_states;
} fs_cnt;

/* Create and realize the context with the test device (once). */
void fs_device_setup(void);
/* The overlap callback, installed per input: alternates the policies. */
enum mu_overlap_policy fs_overlap_cb(mu_ctx_t *ctx,
                                     const struct mu_dma_info *in,
                                     mu_dma_region_t *const *old, size_t n);
/* A live region, searching from slot sel; NULL when none. */
const struct fs_live *fs_pick_region(unsigned sel, bool want_fdless);
/* mu_dma_get()'s promise: sg[0..n) covers [iova, iova + len) in order. */
void fs_check_sg(const mu_sg_t *sg, int n, uint64_t iova, size_t len,
                 unsigned max);
/* Read (or write) through a translation, so a bad mapping faults here. */
void fs_touch(mu_sg_t *sg, int n, bool write);

/* ---- the link between client and context ----
 * fuzz_server_mem.c (the in-memory transport) or fuzz_server_sock.c (a
 * UNIX socket); fuzz_server.c is written against these. */

/* Device threads and real waits (sleeps, timers) are part of the run. */
extern const bool fs_link_threads;
/* Before realize: pick the context's transport. */
void fs_link_setup(mu_ctx_t *ctx);
/* A new client, attached when this returns (through the listening
 * endpoint when via_listen and the link has one to choose). */
void fs_link_connect(bool via_listen);
/* Write: the bytes taken (0 when full), < 0 when the server is gone. */
long fs_link_send(const void *buf, size_t len, const int *fds,
                  unsigned nfds);
/* Read what the server sent: > 0 bytes, 0 nothing (now or ever); the
 * fds that came (*nfds, at most max) are the caller's to close. */
long fs_link_recv(uint8_t *buf, size_t cap, int *fds, unsigned max,
                  unsigned *nfds);
/* Hang up the client end. */
void fs_link_close(void);
/* The server has the client's bytes (or its hang-up) to read, as far as
 * the link knows without a syscall; false when it cannot tell. */
bool fs_link_pending(void);
/* Direct serving (the default on the memory link): the client's fd is not
 * signalled, pump() serves fs_link_pending() itself.  Off: the context's
 * epoll loop sees the client's fd as a socket's.  No-op on the socket. */
void fs_link_direct(bool on);
/* The attached client's framing (what the context read, not served). */
const struct msgio *fs_link_msgio(void);

/* ---- fuzz_server.c: the session ---- */

/* The client's turn while the context thread waits for it (memory link:
 * the transport calls it; see tran_mem.h). */
void fs_client_turn(void);

/*
 * Ops that may wait for a timeout share a time budget per input:
 * fs_slow_begin() says whether any is left, fs_slow_end() charges it.
 */
bool fs_slow_begin(uint64_t *t0);
void fs_slow_end(uint64_t t0);

#endif /* MUSER_FUZZ_SERVER_H */
