/*
 * harness.h - helpers shared by the integration tests: start a device
 * program on a private socket (under valgrind when MU_VALGRIND=1, so its
 * leaks fail the test), stop it and collect its exit status, count open fds.
 */
#ifndef MUSER_TEST_HARNESS_H
#define MUSER_TEST_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

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

/* Temporary directory for in-process servers; removed by tmpdir_remove. */
int tmpdir_make(char *dir, size_t len);
void tmpdir_remove(const char *dir);

/* Milliseconds to scale waits by when running under valgrind. */
int slow_factor(void);

#endif
