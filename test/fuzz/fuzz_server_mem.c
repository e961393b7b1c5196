/*
 * fuzz_server_mem.c - fuzz_server's link: the in-memory transport
 * (lib/tran_mem.h).  No socket, no thread, no sleep: the client's bytes
 * and fds go straight into the context's framing, its replies come back
 * from a queue, and the client answers DMA requests on its turn.
 */
#include <errno.h>

#include "fuzz_server.h"
#include "tran_mem.h"

const bool fs_link_threads = false;

void fs_link_setup(mu_ctx_t *ctx)
{
    check(mu_ctx_use_mem(ctx) == 0);
}

void fs_link_connect(bool via_listen)
{
    /* pump() serves what the client sent (fs_link_pending) before it
     * polls: the client's fd need not be signalled. */
    fs_link_direct(true);
    if (!via_listen) {
        /* Attached at once, by the context's path for a connected
         * client: no bell to ring, poll and read back. */
        check(mu_mem_attach(g_ctx) == 0);
        return;
    }
    /* The accept path (a reconnect op picks it): the bell is rung, one
     * poll accepts. */
    check(mu_mem_connect(g_ctx) == 0);
    check(mu_ctx_poll(g_ctx) == 0);
}

long fs_link_send(const void *buf, size_t len, const int *fds, unsigned nfds)
{
    int rc = mu_mem_send(g_ctx, buf, len, fds, nfds);

    if (rc == -ENOBUFS)
        return 0;
    return rc < 0 ? rc : (long)len;
}

long fs_link_recv(uint8_t *buf, size_t cap, int *fds, unsigned max,
                  unsigned *nfds)
{
    ssize_t n = mu_mem_recv(g_ctx, buf, cap, fds, max, nfds);

    return n > 0 ? (long)n : 0;
}

void fs_link_close(void)
{
    mu_mem_hang_up(g_ctx);
}

void fs_link_direct(bool on)
{
    mu_mem_set_direct(g_ctx, on);
}

bool fs_link_pending(void)
{
    return mu_mem_pending(g_ctx);
}

const struct msgio *fs_link_msgio(void)
{
    return mu_mem_msgio(g_ctx);
}
