/*
 * client_test.h - client calls for muser's own tests, fuzzers and tools:
 * raw messages, unnegotiated connections, any SET_IRQS.  They used to be
 * in the installed muser-client.h; they are internal now: hidden in the
 * objects, so libmuser.so does not export them (the version script's
 * muc_* glob only exports what is visible), and reached by linking the
 * library's objects (muser_internal_dep), as the tests and fuzzers do.
 */
#ifndef MUSER_CLIENT_TEST_H
#define MUSER_CLIENT_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "muser-client.h"

#pragma GCC visibility push(hidden)

/* Connect without negotiating (for tests that speak raw bytes). */
int muc_connect_raw(muc_t **out, const char *path);

/* Any SET_IRQS: flags as on the wire, data (count bytes) for DATA_BOOL,
 * nfds fds for DATA_EVENTFD.  For tests of unusual combinations. */
int muc_set_irqs(muc_t *c, uint32_t flags, uint32_t index, uint32_t start,
                 uint32_t count, const void *data, const int *fds,
                 unsigned nfds);

/*
 * Send a request and wait for its reply.  payload/len is the request body;
 * fds are sent with it.  On success the reply body is copied into
 * reply/reply_cap and its length stored in *reply_len; up to max_rfds fds
 * received are stored in rfds and their count in *nr_rfds (the caller owns
 * them).  Returns 0, the server's negated errno for an error reply, or a
 * local negative errno.
 */
int muc_request(muc_t *c, uint16_t cmd, const void *payload, size_t len,
                const int *fds, unsigned nfds, void *reply, size_t reply_cap,
                size_t *reply_len, int *rfds, unsigned max_rfds,
                unsigned *nr_rfds);

/* Send arbitrary bytes (with fds) as they are; for hostile-client tests. */
int muc_send_bytes(muc_t *c, const void *buf, size_t len, const int *fds,
                   unsigned nfds);
/* Receive one whole message (header + body) into buf.  Returns its total
 * size, or a negative errno (-ENOTCONN on EOF, -ETIMEDOUT). */
ssize_t muc_recv_msg(muc_t *c, void *buf, size_t cap, int timeout_ms);


#pragma GCC visibility pop

#endif
