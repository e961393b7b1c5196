/*
 * harness.c - see harness.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "private.h"
#include "../slow.h"

int slow_factor(void)
{
    return mu_test_slow_factor();
}

bool under_valgrind(void)
{
    return mu_test_under_valgrind();
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
    bool vg = mu_test_valgrind_env();

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

int client_connect(muc_t **c, const char *path)
{
    struct muc_opts o = { .timeout_ms = 5000 * slow_factor() };

    return muc_connect(c, path, &o);
}

int memfd_sized(const char *name, size_t size, unsigned int flags)
{
    int fd = memfd_create(name, MFD_CLOEXEC | flags);

    if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void sleep_us(unsigned int us)
{
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

    nanosleep(&ts, NULL);
}

bool wait_until(bool (*cond)(void *arg), void *arg, int tries,
                unsigned int nap)
{
    for (int i = 0; i < tries * slow_factor(); i++) {
        if (cond(arg))
            return true;
        sleep_us(nap);
    }
    return cond(arg);
}

int wait_open_fds(int want, int tries, unsigned int nap)
{
    for (int i = 0; i < tries * slow_factor() && count_open_fds() != want; i++)
        sleep_us(nap);
    return count_open_fds();
}

/* ---------------- in-process servers ---------------- */

int inproc_create_at(struct inproc *s, const char *dir, const char *name,
                     enum mu_dev_type type, void *opaque)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->sock, sizeof(s->sock), "%s/%s", dir, name);
    return mu_ctx_create(&s->ctx, s->sock, type, opaque);
}

int inproc_create(struct inproc *s, const char *name, enum mu_dev_type type,
                  void *opaque)
{
    char dir[sizeof(s->dir)];
    int rc = tmpdir_make(dir, sizeof(dir));

    if (rc < 0)
        return rc;
    rc = inproc_create_at(s, dir, name, type, opaque);
    memcpy(s->dir, dir, sizeof(dir));
    if (rc < 0)
        inproc_stop(s);
    return rc;
}

static void *inproc_run(void *arg)
{
    int rc = mu_ctx_run(arg);

    if (rc != 0)
        fprintf(stderr, "mu_ctx_run: %s\n", strerror(-rc));
    return NULL;
}

int inproc_start(struct inproc *s)
{
    int rc = mu_ctx_realize(s->ctx);

    if (rc < 0) {
        fprintf(stderr, "realize: %s\n", strerror(-rc));
        return rc;
    }
    rc = pthread_create(&s->thread, NULL, inproc_run, s->ctx);
    if (rc != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        return -rc;
    }
    s->running = true;
    return 0;
}

void inproc_stop(struct inproc *s)
{
    if (s->running) {
        mu_ctx_stop(s->ctx);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    if (s->ctx != NULL) {
        mu_ctx_destroy(s->ctx);
        s->ctx = NULL;
    }
    if (s->dir[0] != '\0') {
        tmpdir_remove(s->dir);
        s->dir[0] = '\0';
    }
}

bool inproc_client_attached(struct inproc *s)
{
    bool on;

    /* attached is written under send_lock (attach and detach); a detach
     * counts until it has closed everything of the client's. */
    pthread_mutex_lock(&s->ctx->send_lock);
    on = mu_conn_attached(s->ctx) || inproc_detaching(s);
    pthread_mutex_unlock(&s->ctx->send_lock);
    return on;
}

bool inproc_detaching(struct inproc *s)
{
    return __atomic_load_n(&s->ctx->detaching, __ATOMIC_SEQ_CST);
}

static bool detached(void *arg)
{
    return !inproc_client_attached(arg);
}

bool inproc_wait_detached(struct inproc *s, int tries, unsigned int nap)
{
    wait_until(detached, s, tries, nap);
    return !inproc_client_attached(s);
}

static bool not_ready(void *arg)
{
    struct inproc *s = arg;

    return !mu_ctx_client_ready(s->ctx) && !inproc_detaching(s);
}

bool inproc_wait_not_ready(struct inproc *s, int tries, unsigned int nap)
{
    wait_until(not_ready, s, tries, nap);
    return not_ready(s);
}

struct settle_ref {
    struct inproc *s;
    int fds;
    const unsigned *maps, *unmaps;
};

static unsigned ld(const unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static bool quiet(void *arg)
{
    const struct settle_ref *r = arg;

    return !inproc_client_attached(r->s) && ld(r->maps) == ld(r->unmaps);
}

static bool settled(void *arg)
{
    const struct settle_ref *r = arg;

    return quiet(arg) && count_open_fds() == r->fds;
}

bool inproc_wait_quiet(struct inproc *s, const unsigned *maps,
                       const unsigned *unmaps, int tries, unsigned int nap)
{
    struct settle_ref r = { s, 0, maps, unmaps };

    return wait_until(quiet, &r, tries, nap);
}

void inproc_settle(struct inproc *s, int fds, const unsigned *maps,
                   const unsigned *unmaps, int tries, unsigned int nap)
{
    struct settle_ref r = { s, fds, maps, unmaps };

    wait_until(settled, &r, tries, nap);
    assert_false(inproc_client_attached(s));
    assert_int_equal(count_open_fds(), fds);
    assert_int_equal(ld(maps), ld(unmaps));
}

/* ---------------- log capture ---------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ring[LOG_RING_MAX][192];
static unsigned log_lines = LOG_RING_MAX;
static unsigned log_next;

void log_ring_init(unsigned int lines)
{
    pthread_mutex_lock(&log_lock);
    log_lines = lines > 0 && lines < LOG_RING_MAX ? lines : LOG_RING_MAX;
    pthread_mutex_unlock(&log_lock);
    log_clear();
}

void log_capture_line(const char *msg)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_ring[log_next % log_lines], sizeof(log_ring[0]), "%s", msg);
    log_next++;
    pthread_mutex_unlock(&log_lock);
}

void log_capture(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    log_capture_line(msg);
}

bool log_has(const char *needle)
{
    bool found = false;

    pthread_mutex_lock(&log_lock);
    for (unsigned i = 0; i < log_lines && !found; i++)
        found = strstr(log_ring[i], needle) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

void log_clear(void)
{
    pthread_mutex_lock(&log_lock);
    memset(log_ring, 0, sizeof(log_ring));
    log_next = 0;
    pthread_mutex_unlock(&log_lock);
}

void expect_log(const char *needle)
{
    for (int i = 0; i < 5000 * slow_factor() && !log_has(needle); i++)
        usleep(2000);
    if (!log_has(needle))
        fail_msg("no log line with \"%s\"", needle);
}
