/*
 * tran_mem.h - an in-memory transport: a context served with no socket.
 *
 * Internal, not installed.  The fast fuzzers and the unit tests play the
 * client from the context's own thread: they push the bytes and fds a
 * client would send, run the context (mu_ctx_poll), and take what it sent
 * back, with no socket, no thread and no sleep.  The byte stream is cut
 * into reads the way a UNIX stream socket cuts it (fds come with the first
 * byte of the write that carried them, a read ends after an fd-carrying
 * write) and framed by the same msgio code, so the dispatch layer sees
 * exactly what the socket transport would give it.
 *
 * One client at a time, as with the socket.  Every call is thread-safe;
 * the fds passed in stay the caller's (the transport keeps dups), the fds
 * handed out are the caller's to close.
 */
#ifndef MUSER_TRAN_MEM_H
#define MUSER_TRAN_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "muser.h"
#include "msgio.h"

/* Serve ctx through memory instead of its socket path (which is then
 * never created).  Before mu_ctx_realize; 0 or -EBUSY. */
int mu_ctx_use_mem(mu_ctx_t *ctx);

/*
 * A client arrives: the next mu_ctx_poll() accepts it (through the
 * context's usual accept path).  Whatever the previous client left unread
 * is discarded.  0, -EINVAL when ctx is not a realized in-memory context,
 * -EBUSY while a client is waiting or attached.
 */
int mu_mem_connect(mu_ctx_t *ctx);

/*
 * A client arrives and is attached at once, through the context's path
 * for a connected client (mu_ctx_attach_fd) instead of its accept path:
 * no bell, no poll (an eventfd write, an epoll_wait and a read fewer for
 * a harness that connects a client per input).  On the context thread
 * only.  0; -EINVAL as mu_mem_connect; -EBUSY while a client is waiting
 * or attached (of the transport or of the context); or the context's
 * attach error (the client then finds the server gone).
 */
int mu_mem_attach(mu_ctx_t *ctx);

/*
 * The client writes: len bytes (fds attached to the first) or an iovec.
 * 0, -ENOTCONN when it hung up or the server dropped it, -ENOBUFS when
 * more than MU_MEM_QUEUE_MAX bytes would be waiting, -EINVAL, or the dup
 * error for an fd.  A zero-length write carries nothing, as on a stream
 * socket.
 */
#define MU_MEM_QUEUE_MAX (16u << 20)
int mu_mem_send(mu_ctx_t *ctx, const void *buf, size_t len, const int *fds,
                unsigned nfds);
int mu_mem_sendv(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                 const int *fds, unsigned nfds);

/*
 * The client reads what the server sent, one read's worth at most (it
 * ends after a message that carried fds): the byte count, 0 when nothing
 * is there now, -ENOTCONN when the server dropped the client and all was
 * read.  Up to max_fds fds go to fds[] (*nfds of them; more are closed).
 */
ssize_t mu_mem_recv(mu_ctx_t *ctx, void *buf, size_t cap, int *fds,
                    unsigned max_fds, unsigned *nfds);

/* The client hangs up (the server reads EOF after what was sent). */
void mu_mem_hang_up(mu_ctx_t *ctx);

/* A client is attached (accepted and not dropped yet). */
bool mu_mem_attached(mu_ctx_t *ctx);

/*
 * The attached client has sent bytes the server has not read, or hung up:
 * what makes its fd readable, known without a syscall.  A harness that
 * runs the context itself may then call mu_ctx_process() at once instead
 * of an epoll_wait() that could only report this (the other fds, timers
 * included, are seen at the next poll).  False when none is attached.
 */
bool mu_mem_pending(mu_ctx_t *ctx);

/*
 * Direct mode, for a caller that does the above before every poll: the
 * client's fd is then never made readable (it was an eventfd write when
 * the client sent and a read when the server had read it all, two
 * syscalls per exchange), so a context run by mu_ctx_run() or polled by
 * anyone else would not see the client's bytes.  Off by default.
 */
void mu_mem_set_direct(mu_ctx_t *ctx, bool on);

/* The framing state of the attached client (read-only; harnesses check
 * that nothing whole is left unserved).  NULL when none is attached. */
const struct msgio *mu_mem_msgio(mu_ctx_t *ctx);

/*
 * A client library connection to an in-memory context, for tests:
 * muc__from_link(&c, &mu_mem_muc_link, ctx, ...) after mu_mem_connect().
 * Its reads run the context (mu_ctx_poll) while nothing is there for it,
 * so client and server share the caller's thread.  Not for contexts run
 * by another thread.
 */
struct muc_link;
extern const struct muc_link mu_mem_muc_link;

#endif /* MUSER_TRAN_MEM_H */
