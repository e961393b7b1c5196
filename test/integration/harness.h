/*
 * harness.h - helpers shared by the integration tests: start a device
 * program on a private socket (under valgrind when MU_VALGRIND=1, so its
 * leaks fail the test), stop it and collect its exit status, count open fds;
 * run an in-process device (a thread in mu_ctx_run), capture what it logs,
 * and wait, bounded, for what its thread does on its own time.
 *
 * The functions that assert (inproc_settle, expect_log) use cmocka: call
 * them from a test only.
 */
#ifndef MUSER_TEST_HARNESS_H
#define MUSER_TEST_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "muser.h"
#include "muser-client.h"
#include "client_test.h"

struct dev_proc {
    pid_t pid;
    char dir[64];
    char sock[108];
};

/*
 * Start 'bin' with args (NULL-terminated, the socket path is appended) and
 * wait until its socket accepts connections.  Returns 0 or -errno.
 */
int dev_start(struct dev_proc *d, const char *bin, const char *const *args);
/* SIGTERM, wait, remove the directory.  Returns the exit status (0 is
 * success; 99 means valgrind found errors or leaks), or -1 if it died. */
int dev_stop(struct dev_proc *d);
bool dev_alive(const struct dev_proc *d);

/* Connect-wait for a socket path.  0 or -ETIMEDOUT. */
int wait_socket(const char *path, int timeout_ms);

/* Number of fds open in this process. */
int count_open_fds(void);

/*
 * A server's own fds that come and go with its client (lib/ctx.c): the
 * housekeeping timerfd, kept while nobody is attached, goes when a client
 * attaches (SERVER_FDS_ATTACH) and comes back only while a timeout is
 * watched (a message half received, a DMA request, a DMA idle limit); the
 * SIGBUS eventfd comes with the client's first DMA region with an fd and
 * goes with the client (SERVER_FDS_DMA).
 */
#define SERVER_FDS_ATTACH (-1)
#define SERVER_FDS_DMA 1

/* Temporary directory for in-process servers; removed by tmpdir_remove. */
int tmpdir_make(char *dir, size_t len);
void tmpdir_remove(const char *dir);

/* What to scale waits (and shorten loops) by: > 1 under valgrind, in
 * sanitizer builds and with MU_TEST_SLOW=N (see test/slow.h). */
int slow_factor(void);
/* This program runs under valgrind (it enforces limits of its own). */
bool under_valgrind(void);

/* muc_connect with the tests' usual timeout, 5 s (times slow_factor()). */
int client_connect(muc_t **c, const char *path);

/* A memfd (MFD_CLOEXEC | flags) of 'size' bytes; -1 on failure. */
int memfd_sized(const char *name, size_t size, unsigned int flags);

/*
 * Bounded waits.  wait_until polls cond(arg) up to tries * slow_factor()
 * times, nap_us apart: true as soon as it holds, else its value at the
 * end.  wait_open_fds waits the same way for 'want' open fds and returns
 * the count after the wait.
 */
bool wait_until(bool (*cond)(void *arg), void *arg, int tries,
                unsigned int nap_us);
int wait_open_fds(int want, int tries, unsigned int nap_us);

/* ---------------- in-process servers ---------------- */

/*
 * A device served by a thread of the test: inproc_create makes the context
 * on a socket, the caller configures s->ctx, inproc_start realizes it and
 * starts the thread (mu_ctx_run, errors printed), inproc_stop undoes all of
 * it.  s->sock stays valid after the stop.
 */
struct inproc {
    char dir[64];       /* the private directory, "" when the caller's */
    char sock[108];
    mu_ctx_t *ctx;
    pthread_t thread;
    bool running;
};

/* On a socket 'name' in a fresh private directory.  0 or -errno. */
int inproc_create(struct inproc *s, const char *name, enum mu_dev_type type,
                  void *opaque);
/* On a socket 'name' in the caller's directory 'dir' (not removed). */
int inproc_create_at(struct inproc *s, const char *dir, const char *name,
                     enum mu_dev_type type, void *opaque);
/* mu_ctx_realize and the thread; 0 or -errno, the error printed. */
int inproc_start(struct inproc *s);
/* Stop and join the thread (if started), destroy the context (if any),
 * remove the private directory (if any).  Safe to call again. */
void inproc_stop(struct inproc *s);

/* A client's connection is attached (the server's conn_fd; read under
 * the lock that guards it), or its detach has not yet closed all the
 * client had: after "not attached" a count of fds is final. */
bool inproc_client_attached(struct inproc *s);
/* mu_ctx_detach is running on the server's thread. */
bool inproc_detaching(struct inproc *s);
/* Wait until no connection is attached; whether none is, after the wait. */
bool inproc_wait_detached(struct inproc *s, int tries, unsigned int nap_us);
/* Wait until mu_ctx_client_ready() is false and no detach is running;
 * whether that holds, after. */
bool inproc_wait_not_ready(struct inproc *s, int tries, unsigned int nap_us);

/*
 * The client is gone (or about to be): the server lets go of it on its own
 * thread, so wait (bounded as wait_until) until it is detached, 'fds' fds
 * are open in the process and *maps == *unmaps (the test's DMA callback
 * counters), then assert each: it must keep nothing of the client.
 */
void inproc_settle(struct inproc *s, int fds, const unsigned *maps,
                   const unsigned *unmaps, int tries, unsigned int nap_us);

/*
 * Wait (bounded as wait_until) until the client is detached and *maps ==
 * *unmaps: "detached" comes before the detach's unmap callbacks, so a test
 * that resets its counters must wait for both.  Whether both hold, after.
 */
bool inproc_wait_quiet(struct inproc *s, const unsigned *maps,
                       const unsigned *unmaps, int tries, unsigned int nap_us);

/* ---------------- log capture ---------------- */

/*
 * A ring of the last lines a server logged.  log_capture is a log callback
 * that stores them; a test's own callback may call log_capture_line.
 * log_ring_init clears the ring and sets how many lines it keeps (at most
 * LOG_RING_MAX, which is also the default).
 */
#define LOG_RING_MAX 512
void log_ring_init(unsigned int lines);
void log_capture(mu_ctx_t *ctx, enum mu_log_level level, const char *msg);
void log_capture_line(const char *msg);
bool log_has(const char *needle);
void log_clear(void);
/* Log lines are written just after what the client sees: wait (bounded,
 * 5000 * slow_factor() naps of 2 ms) for one holding 'needle', or fail. */
void expect_log(const char *needle);

#endif
