/*
 * harness.c - see harness.h.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

int slow_factor(void)
{
    const char *v = getenv("MU_VALGRIND");

    return v != NULL && strcmp(v, "1") == 0 ? 20 : 1;
}

int tmpdir_make(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/muser-test-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -errno;
}

void tmpdir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int wait_socket(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timespec ts = { 0, 10 * 1000 * 1000 };

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return 0;
        }
        close(fd);
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

int dev_start(struct dev_proc *d, const char *bin, const char *const *args)
{
    const char *argv[40];
    int n = 0, rc;
    bool vg = slow_factor() > 1;

    memset(d, 0, sizeof(*d));
    rc = tmpdir_make(d->dir, sizeof(d->dir));
    if (rc < 0)
        return rc;
    snprintf(d->sock, sizeof(d->sock), "%s/dev.sock", d->dir);
    if (vg) {
        argv[n++] = "valgrind";
        argv[n++] = "-q";
        argv[n++] = "--error-exitcode=99";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
        argv[n++] = "--show-leak-kinds=definite,indirect";
    }
    argv[n++] = bin;
    for (int i = 0; args != NULL && args[i] != NULL && n < 36; i++)
        argv[n++] = args[i];
    argv[n++] = d->sock;
    argv[n] = NULL;

    d->pid = fork();
    if (d->pid < 0)
        return -errno;
    if (d->pid == 0) {
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    rc = wait_socket(d->sock, 10000 * slow_factor());
    if (rc < 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        tmpdir_remove(d->dir);
        d->pid = 0;
    }
    return rc;
}

bool dev_alive(const struct dev_proc *d)
{
    return d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == 0;
}

int dev_stop(struct dev_proc *d)
{
    int st = 0, rc = -1;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    if (waitpid(d->pid, &st, 0) == d->pid && WIFEXITED(st))
        rc = WEXITSTATUS(st);
    d->pid = 0;
    tmpdir_remove(d->dir);
    return rc;
}

int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1;   /* the directory's own fd */
}
