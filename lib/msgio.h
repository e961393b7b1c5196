/*
 * msgio.h - whole vfio-user messages over a stream socket, with their fds.
 *
 * Both ends of the protocol need the same framing: read what the kernel has,
 * cut it into messages at the header's size field, hand each message the
 * fds that travelled with it, and write messages out completely even when
 * the socket takes them a piece at a time.  The server transport and the
 * client library share this code so that both are equally strict.
 *
 * The socket is non-blocking; the functions here never block longer than
 * the timeout they are given.
 */
#ifndef MUSER_MSGIO_H
#define MUSER_MSGIO_H

#include <stdint.h>
#include <sys/uio.h>

#include "clock.h"
#include "wire.h"

/* Linux refuses more than SCM_MAX_FD (253) fds in one sendmsg. */
#define MSGIO_MAX_FDS 253u

/* One received message.  body and fds are owned by the message. */
struct mu_msg {
    struct vfu_hdr hdr;
    uint8_t *body;          /* hdr.size - 16 bytes (NULL if 0) */
    size_t len;
    int *fds;               /* nfds entries; a taken fd is set to -1 */
    unsigned nfds;
};

/* Close fds still owned by the message and free it (not the struct). */
void mu_msg_release(struct mu_msg *m);
/* Take fd i (the caller owns it afterwards); -1 if absent or taken. */
int mu_msg_take_fd(struct mu_msg *m, unsigned i);

struct msgio_fdchunk;

struct msgio {
    int fd;
    uint32_t max_size;      /* largest message accepted, header included */
    unsigned max_fds;       /* most fds accepted in one message */
    uint8_t *buf;           /* received bytes not yet cut into messages */
    size_t cap, head, tail; /* data is buf[head, tail) */
    uint64_t pos;           /* stream offset of buf[head] */
    struct msgio_fdchunk *chunks;   /* fds not yet given to a message */
    unsigned nchunks, chunk_cap;
    bool blocking;          /* socket without O_NONBLOCK: recv sleeps in
                               recvmsg under SO_RCVTIMEO */
    int rcvtimeo_ms;        /* SO_RCVTIMEO in force (-2: not set yet) */
    uint64_t started_ns;    /* when the first byte of the current partial
                               message arrived; 0 when none is partial */
    const struct mu_clock *clock;   /* started_ns's; NULL: the system's */
};

/* fd becomes owned by m (closed by msgio_fini).  Its O_NONBLOCK flag is left
 * as it is: see msgio_recv. */
int msgio_init(struct msgio *m, int fd, uint32_t max_size, unsigned max_fds);
void msgio_fini(struct msgio *m);

/*
 * One non-blocking recvmsg into the buffer.  Returns the bytes read (> 0),
 * -EAGAIN when nothing is there, -ENOTCONN on EOF or reset, -EPROTO when the
 * control data was truncated (too many fds: all received ones are closed)
 * or when the message still arriving has brought more than max_fds fds
 * (closed at once, not when the message is cut), -ENOMEM.
 */
int msgio_fill(struct msgio *m);

/*
 * Cut the next whole message from the buffer.  Returns 1 with *out filled,
 * 0 when no whole message is buffered yet, or a negative errno when the
 * header in front is invalid (-EINVAL, -EMSGSIZE) or the message carries
 * more fds than allowed (-E2BIG).  After an error the stream cannot be
 * resynchronised: drop the connection.
 */
int msgio_next(struct msgio *m, struct mu_msg *out);

/* True when part of a message is buffered (for receive timeouts). */
static inline int msgio_partial(const struct msgio *m)
{
    return m->tail > m->head || m->nchunks > 0;
}

/*
 * Wait up to timeout_ms (-1 forever) for a whole message.  Returns 1 with
 * *out, -ETIMEDOUT, or an error as above.  On a blocking socket the wait
 * happens in recvmsg (under SO_RCVTIMEO); otherwise in poll.
 */
int msgio_recv(struct msgio *m, struct mu_msg *out, int timeout_ms);

/*
 * Send iov completely, with fds attached to the first byte.  Waits at most
 * timeout_ms in total for the socket to drain (-ETIMEDOUT after), -EPIPE /
 * -ENOTCONN when the peer is gone.
 */
int msgio_send(struct msgio *m, const struct iovec *iov, int iovcnt,
               const int *fds, unsigned nfds, int timeout_ms);

/*
 * Framing fed from memory instead of a socket (lib/tran_mem.c): the same
 * buffer, fd bookkeeping and msgio_next() as a socket's, with no fd of its
 * own (msgio_fill/recv/send must not be used on it).
 */
int msgio_init_mem(struct msgio *m, uint32_t max_size, unsigned max_fds);
/*
 * The next peer on an in-memory framing (initialized by msgio_init_mem):
 * what the last one left is dropped (its fds closed) and the limits set
 * again, as msgio_init_mem() would, but the buffers are kept for the new
 * stream rather than freed and allocated again.  msgio_fini() frees them.
 */
int msgio_reset_mem(struct msgio *m, uint32_t max_size, unsigned max_fds);
/*
 * Append what one recvmsg would have returned: len (> 0) bytes, with nfds
 * fds that arrived with them.  The fds are taken in every case (closed on
 * failure; fds[] is set to -1).  Returns len, -EPROTO when more fds came
 * than a read has room for (as MSG_CTRUNC), -ENOTCONN for len 0 (EOF),
 * -ENOMEM.
 */
int msgio_push(struct msgio *m, const void *data, size_t len, int *fds,
               unsigned nfds);

#endif /* MUSER_MSGIO_H */
