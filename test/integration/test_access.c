/*
 * test_access.c - who may talk to a device, and the limits it enforces.
 *
 * vfio-user has no authentication of its own: the socket file's mode is
 * the access control, optionally narrowed by an allow-list of peer uids
 * (SO_PEERCRED).  So the file must be created with the mode asked for (0600
 * by default) whatever the umask, realize must never delete something that
 * is not a stale socket, and a peer not on the list must be turned away
 * without being served, with a log line naming it.  When run as root, a
 * child that drops to uid 65534 checks both the list and the file mode
 * against a real other user; otherwise those parts are skipped.
 *
 * Limits: out of range values are refused, limits are frozen at realize
 * (but for the two DMA eviction limits), and what VERSION advertises is
 * what is enforced.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define NOBODY 65534u

/* ---------------- servers ---------------- */

/* Every server's socket is in this one directory, so that two of them can
 * compete for a path. */
static char dir[64];

/* The last 64 log lines of all servers (log_capture, the harness's ring). */
#define LOG_LINES 64

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    /* Byte i of the BAR reads as i & 0xff, however the reads are split. */
    for (size_t i = 0; !is_write && i < count; i++)
        ((uint8_t *)buf)[i] = (uint8_t)(offset + i);
    return (ssize_t)count;
}

static void srv_create(struct inproc *s, const char *name)
{
    assert_int_equal(inproc_create_at(s, dir, name, MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_ctx_set_log(s->ctx, log_capture, MU_LOG_INFO), 0);
    assert_int_equal(mu_region_setup(s->ctx, MU_PCI_BAR0, 0x1000,
                                     MU_REGION_RW | MU_REGION_MEM,
                                     bar0_access), 0);
    assert_int_equal(mu_irq_setup(s->ctx, MU_IRQ_INTX, 1), 0);
}

/* Realize (which must succeed) and run. */
static void srv_run(struct inproc *s)
{
    assert_int_equal(inproc_start(s), 0);
}

static struct inproc srv_a, srv_b;

static int group_setup(void **state)
{
    (void)state;
    log_ring_init(LOG_LINES);
    return tmpdir_make(dir, sizeof(dir));
}

static int group_teardown(void **state)
{
    (void)state;
    tmpdir_remove(dir);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    log_clear();
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    /* Whatever a failed test left: inproc_stop does nothing twice. */
    inproc_stop(&srv_a);
    inproc_stop(&srv_b);
    return 0;
}

/* A client is served: it negotiates and gets answers. */
static void expect_served(const char *path)
{
    struct muc_device_info di;
    uint8_t b = 0;
    muc_t *c = NULL;

    assert_int_equal(client_connect(&c, path), 0);
    assert_int_equal(muc_device_info(c, &di), 0);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 0x42, &b, 1), 0);
    assert_int_equal(b, 0x42);
    muc_close(c);
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    return st.st_mode & 07777;
}

/* ---------------- socket file ---------------- */

/* 0600 unless told otherwise, whatever the umask (the file is bound under
 * a umask that gives the mode, then set exactly). */
static void test_socket_mode_default(void **state)
{
    static const mode_t umasks[] = { 0, 022, 077, 0777 };
    mode_t old;

    (void)state;
    for (size_t i = 0; i < sizeof(umasks) / sizeof(umasks[0]); i++) {
        srv_create(&srv_a, "mode.sock");
        old = umask(umasks[i]);
        srv_run(&srv_a);
        umask(old);
        assert_int_equal(file_mode(srv_a.sock), 0600);
        expect_served(srv_a.sock);
        inproc_stop(&srv_a);
        /* Gone with the context. */
        assert_int_equal(access(srv_a.sock, F_OK), -1);
    }
}

static void test_socket_mode_set(void **state)
{
    static const mode_t umasks[] = { 0, 022, 0777 };
    mode_t old;

    (void)state;
    for (size_t i = 0; i < sizeof(umasks) / sizeof(umasks[0]); i++) {
        srv_create(&srv_a, "mode.sock");
        assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 0660), 0);
        old = umask(umasks[i]);
        srv_run(&srv_a);
        umask(old);
        assert_int_equal(file_mode(srv_a.sock), 0660);
        expect_served(srv_a.sock);
        inproc_stop(&srv_a);
    }

    srv_create(&srv_a, "mode.sock");
    /* Only permission bits: no setuid, setgid or sticky socket. */
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 01777), -EINVAL);
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 04600), -EINVAL);
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 010600), -EINVAL);
    srv_run(&srv_a);
    assert_int_equal(file_mode(srv_a.sock), 0600);
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 0666), -EBUSY);
    assert_int_equal(file_mode(srv_a.sock), 0600);
    inproc_stop(&srv_a);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void expect_file(const char *path, const char *text)
{
    char buf[128] = { 0 };
    struct stat st;
    int fd;

    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(text));
    close(fd);
    assert_string_equal(buf, text);
}

static void sun_set(struct sockaddr_un *sa, const char *path)
{
    assert_true(strlen(path) < sizeof(sa->sun_path));
    memcpy(sa->sun_path, path, strlen(path) + 1);
}

/* A socket file nobody listens on any more. */
static void make_stale_socket(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sun_set(&sa, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
}

/* A socket file somebody else listens on; returns the listening fd. */
static int make_live_socket(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sun_set(&sa, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

/*
 * A typo in the socket path must not delete somebody's file: realize
 * refuses anything that is not a socket (-EEXIST) and leaves it as it was,
 * including a symlink (even to a socket: lstat, never follow).  Destroying
 * the context that failed to realize touches nothing either.
 */
static void test_realize_keeps_other_files(void **state)
{
    char path[160], target[160], sock[160];

    (void)state;
    srv_create(&srv_a, "precious");
    write_file(srv_a.sock, "precious data\n");
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EEXIST);
    expect_log("exists and is not a socket");
    expect_file(srv_a.sock, "precious data\n");
    inproc_stop(&srv_a);
    expect_file(srv_a.sock, "precious data\n");
    unlink(srv_a.sock);

    srv_create(&srv_a, "adir");
    assert_int_equal(mkdir(srv_a.sock, 0700), 0);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EEXIST);
    inproc_stop(&srv_a);
    snprintf(path, sizeof(path), "%s/adir", dir);
    assert_int_equal(rmdir(path), 0);

    /* Symlinks to a file and to a stale socket. */
    snprintf(target, sizeof(target), "%s/target", dir);
    snprintf(sock, sizeof(sock), "%s/stale-target.sock", dir);
    write_file(target, "target\n");
    make_stale_socket(sock);
    srv_create(&srv_a, "link");
    assert_int_equal(symlink(target, srv_a.sock), 0);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EEXIST);
    expect_file(target, "target\n");
    assert_int_equal(unlink(srv_a.sock), 0);
    assert_int_equal(symlink(sock, srv_a.sock), 0);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EEXIST);
    inproc_stop(&srv_a);
    assert_int_equal(access(sock, F_OK), 0);
    unlink(srv_a.sock);
    unlink(target);
    unlink(sock);
}

/*
 * A stale socket (a server that died without cleaning up) is replaced.  A
 * live one is another server's: taking its path would leave it running
 * and unreachable, so realize refuses (-EADDRINUSE) and it stays
 * reachable.  And a context going away removes its socket file only if it
 * is still its own: not one somebody else has put there since.
 */
static void test_realize_socket_files(void **state)
{
    int other;

    (void)state;
    srv_create(&srv_a, "stale.sock");
    make_stale_socket(srv_a.sock);
    srv_run(&srv_a);
    assert_int_equal(file_mode(srv_a.sock), 0600);
    expect_served(srv_a.sock);

    srv_create(&srv_b, "stale.sock");
    assert_int_equal(mu_ctx_realize(srv_b.ctx), -EADDRINUSE);
    inproc_stop(&srv_b);
    expect_served(srv_a.sock);
    inproc_stop(&srv_a);
    assert_int_equal(access(srv_a.sock, F_OK), -1);

    /* Not a muser server at all: the same. */
    srv_create(&srv_a, "live.sock");
    other = make_live_socket(srv_a.sock);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EADDRINUSE);
    inproc_stop(&srv_a);
    assert_int_equal(access(srv_a.sock, F_OK), 0);
    close(other);
    unlink(srv_a.sock);

    /* Our file replaced behind our back by another listener. */
    srv_create(&srv_a, "moved.sock");
    srv_run(&srv_a);
    assert_int_equal(unlink(srv_a.sock), 0);
    other = make_live_socket(srv_a.sock);
    inproc_stop(&srv_a);
    assert_int_equal(access(srv_a.sock, F_OK), 0);
    close(other);
    unlink(srv_a.sock);
}

/* ---------------- allow-list ---------------- */

static void test_allow_list_self(void **state)
{
    (void)state;
    srv_create(&srv_a, "allow.sock");
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, getuid() + 1), 0);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, getuid()), 0);
    srv_run(&srv_a);
    expect_served(srv_a.sock);
    expect_served(srv_a.sock);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, 1234), -EBUSY);
    inproc_stop(&srv_a);
}

/*
 * Not on the list: the connection is closed before a single message is
 * read (the handshake gets no answer), the log names the uid, and the
 * server goes on waiting for an allowed client.
 */
static void test_allow_list_refuses(void **state)
{
    char line[64];
    muc_t *c = NULL;

    (void)state;
    srv_create(&srv_a, "deny.sock");
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, getuid() + 1), 0);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, getuid() + 2), 0);
    srv_run(&srv_a);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(client_connect(&c, srv_a.sock), -EPROTO);
        assert_null(c);
    }
    snprintf(line, sizeof(line), " uid %u: uid not in the allow-list",
             (unsigned)getuid());
    expect_log(line);
    assert_false(log_has("negotiated"));
    assert_false(mu_ctx_client_ready(srv_a.ctx));
    inproc_stop(&srv_a);

    /* 64 entries, no more. */
    srv_create(&srv_a, "full.sock");
    for (unsigned i = 0; i < 64; i++)
        assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, 1000 + i), 0);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, getuid()), -ENOSPC);
    inproc_stop(&srv_a);
}

/*
 * Connect from a child that became 'uid' (and gid); returns what
 * muc_connect said, as a positive errno (0: served).
 */
static int connect_as(const char *path, uid_t uid)
{
    int st = 0;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        muc_t *c = NULL;
        struct muc_device_info di;
        int rc;

        if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
            _exit(200);
        rc = client_connect(&c, path);
        if (rc == 0)
            rc = muc_device_info(c, &di);
        muc_close(c);
        _exit(-rc > 199 ? 199 : -rc);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 200);
    return WEXITSTATUS(st);
}

/* As root: a real other user against the list and the file mode. */
static void test_allow_list_other_user(void **state)
{
    char line[64];

    (void)state;
    if (geteuid() != 0)
        skip();
    /* The other user must reach the socket through the directory. */
    assert_int_equal(chmod(dir, 0755), 0);

    srv_create(&srv_a, "root-only.sock");
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 0666), 0);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, 0), 0);
    srv_run(&srv_a);
    assert_int_equal(connect_as(srv_a.sock, NOBODY), EPROTO);
    snprintf(line, sizeof(line), " uid %u: uid not in the allow-list", NOBODY);
    expect_log(line);
    expect_served(srv_a.sock);      /* root is on the list */
    inproc_stop(&srv_a);

    srv_create(&srv_a, "nobody-too.sock");
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 0666), 0);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, 0), 0);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, NOBODY), 0);
    srv_run(&srv_a);
    assert_int_equal(connect_as(srv_a.sock, NOBODY), 0);
    inproc_stop(&srv_a);

    /* No list: the default 0600 file is what keeps others out. */
    srv_create(&srv_a, "default-mode.sock");
    srv_run(&srv_a);
    assert_int_equal(connect_as(srv_a.sock, NOBODY), EACCES);
    expect_served(srv_a.sock);
    inproc_stop(&srv_a);
    assert_int_equal(chmod(dir, 0700), 0);
}

/* ---------------- limits ---------------- */

static const char *const limit_names[] = {
    "MSG_SIZE", "MSG_FDS", "DATA_XFER", "DMA_REGIONS", "DMA_MAPPED_BYTES",
    "DMA_IDLE_MS", "DMA_PENDING", "SEND_TIMEOUT_MS", "RECV_TIMEOUT_MS",
    "DIRTY_BITMAP_BYTES", "BUSY_POLL_US",
};
#define NR_LIMITS MU_LIMIT_NR
_Static_assert(sizeof(limit_names) / sizeof(limit_names[0]) == NR_LIMITS,
               "a name for every limit");

/*
 * Values no limit can take, for reasons outside the implementation: 0 is
 * out of range for all but the two eviction limits and the busy-poll
 * time (documented); busy polling spins at most MU_BUSY_POLL_MAX_US; a
 * message must hold a header; the kernel passes at most 253 fds a
 * message; sizes and counts travel as 32 bits on the wire; timeouts end
 * up as an int of milliseconds; and no limit is 2^64 - 1 but the
 * mapped-bytes budget (an idle time that large would overflow in ns).
 */
static void test_limits_out_of_range(void **state)
{
    static const struct {
        enum mu_limit l;
        uint64_t v;
    } bad[] = {
        { MU_LIMIT_MSG_SIZE, 0 }, { MU_LIMIT_MSG_SIZE, 15 },
        { MU_LIMIT_MSG_SIZE, 1ull << 32 }, { MU_LIMIT_MSG_SIZE, UINT64_MAX },
        { MU_LIMIT_MSG_FDS, 0 }, { MU_LIMIT_MSG_FDS, 254 },
        { MU_LIMIT_MSG_FDS, UINT64_MAX },
        { MU_LIMIT_DATA_XFER, 0 }, { MU_LIMIT_DATA_XFER, 1ull << 32 },
        { MU_LIMIT_DATA_XFER, UINT64_MAX },
        { MU_LIMIT_DMA_REGIONS, 0 }, { MU_LIMIT_DMA_REGIONS, 1ull << 32 },
        { MU_LIMIT_DMA_REGIONS, UINT64_MAX },
        { MU_LIMIT_DMA_IDLE_MS, UINT64_MAX },
        { MU_LIMIT_DMA_PENDING, 0 }, { MU_LIMIT_DMA_PENDING, UINT64_MAX },
        { MU_LIMIT_SEND_TIMEOUT_MS, 0 }, { MU_LIMIT_SEND_TIMEOUT_MS, 1ull << 31 },
        { MU_LIMIT_SEND_TIMEOUT_MS, UINT64_MAX },
        { MU_LIMIT_RECV_TIMEOUT_MS, 0 }, { MU_LIMIT_RECV_TIMEOUT_MS, 1ull << 31 },
        { MU_LIMIT_RECV_TIMEOUT_MS, UINT64_MAX },
        { MU_LIMIT_DIRTY_BITMAP_BYTES, 0 },
        { MU_LIMIT_DIRTY_BITMAP_BYTES, 4095 },
        { MU_LIMIT_DIRTY_BITMAP_BYTES, UINT64_MAX },
        { MU_LIMIT_BUSY_POLL_US, MU_BUSY_POLL_MAX_US + 1ull },
        { MU_LIMIT_BUSY_POLL_US, UINT64_MAX },
    };
    static const struct {
        enum mu_limit l;
        uint64_t v;
    } good[] = {
        { MU_LIMIT_MSG_SIZE, 4096 + 32 }, { MU_LIMIT_MSG_FDS, 1 },
        { MU_LIMIT_MSG_FDS, 253 }, { MU_LIMIT_DATA_XFER, 4096 },
        { MU_LIMIT_DMA_REGIONS, 1 }, { MU_LIMIT_DMA_MAPPED_BYTES, 0 },
        { MU_LIMIT_DMA_MAPPED_BYTES, UINT64_MAX }, { MU_LIMIT_DMA_IDLE_MS, 0 },
        { MU_LIMIT_DMA_IDLE_MS, 1000 }, { MU_LIMIT_DMA_PENDING, 1 },
        { MU_LIMIT_SEND_TIMEOUT_MS, 1 }, { MU_LIMIT_RECV_TIMEOUT_MS, 60000 },
        { MU_LIMIT_DIRTY_BITMAP_BYTES, 4096 },
        { MU_LIMIT_BUSY_POLL_US, 1 }, { MU_LIMIT_BUSY_POLL_US, MU_BUSY_POLL_MAX_US },
        { MU_LIMIT_BUSY_POLL_US, 0 },
    };
    uint64_t before;

    (void)state;
    srv_create(&srv_a, "limits.sock");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        before = mu_ctx_get_limit(srv_a.ctx, bad[i].l);
        if (mu_ctx_set_limit(srv_a.ctx, bad[i].l, bad[i].v) != -EINVAL)
            fail_msg("MU_LIMIT_%s = %#llx accepted", limit_names[bad[i].l],
                     (unsigned long long)bad[i].v);
        assert_int_equal(mu_ctx_get_limit(srv_a.ctx, bad[i].l), before);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(mu_ctx_set_limit(srv_a.ctx, good[i].l, good[i].v), 0);
        assert_int_equal(mu_ctx_get_limit(srv_a.ctx, good[i].l), good[i].v);
    }
    /* Unknown limits. */
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, (enum mu_limit)NR_LIMITS, 1),
                     -EINVAL);
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, (enum mu_limit)-1, 1), -EINVAL);
    assert_int_equal(mu_ctx_get_limit(srv_a.ctx, (enum mu_limit)NR_LIMITS), 0);

    /* A message size that cannot carry the transfer size: realize says
     * so, and creates nothing. */
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, MU_LIMIT_DATA_XFER, 8192), 0);
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, MU_LIMIT_MSG_SIZE, 8192), 0);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EINVAL);
    assert_int_equal(access(srv_a.sock, F_OK), -1);
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, MU_LIMIT_MSG_SIZE,
                                      8192 + 32), 0);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), 0);
    inproc_stop(&srv_a);
}

/* Limits are frozen at realize, but for the two DMA eviction limits and
 * the busy-poll time (which the serving thread then spins with: the
 * client is still served). */
static void test_limits_after_realize(void **state)
{
    (void)state;
    srv_create(&srv_a, "frozen.sock");
    srv_run(&srv_a);
    for (unsigned l = 0; l < NR_LIMITS; l++) {
        uint64_t v = mu_ctx_get_limit(srv_a.ctx, (enum mu_limit)l);
        uint64_t nv = v == 0 ? 100 : v - 1;
        int want = l == MU_LIMIT_DMA_MAPPED_BYTES || l == MU_LIMIT_DMA_IDLE_MS ||
                   l == MU_LIMIT_BUSY_POLL_US ? 0 : -EBUSY;

        if (mu_ctx_set_limit(srv_a.ctx, (enum mu_limit)l, nv) != want)
            fail_msg("MU_LIMIT_%s after realize", limit_names[l]);
        assert_int_equal(mu_ctx_get_limit(srv_a.ctx, (enum mu_limit)l),
                         want == 0 ? nv : v);
    }
    assert_int_equal(mu_ctx_set_socket_mode(srv_a.ctx, 0600), -EBUSY);
    assert_int_equal(mu_ctx_allow_uid(srv_a.ctx, getuid()), -EBUSY);
    assert_int_equal(mu_ctx_realize(srv_a.ctx), -EBUSY);
    expect_served(srv_a.sock);
    inproc_stop(&srv_a);
}

/*
 * VERSION advertises MU_LIMIT_MSG_FDS, MU_LIMIT_DATA_XFER and
 * MU_LIMIT_DMA_REGIONS, and those are the limits enforced: a larger
 * transfer is refused, the client library splits to fit, one fd more than
 * advertised gets the client dropped.  The defaults are the documented
 * ones.
 */
static void test_limits_advertised(void **state)
{
    const struct muc_server_caps *caps;
    struct vfu_region_access a = { .offset = 0, .region = MU_PCI_BAR0,
                                   .count = 1024 + 1 };
    static uint8_t big[2000];      /* below the MSI-X table at 0x800 */
    struct muc_device_info di;
    int efd[4];
    muc_t *c = NULL;

    (void)state;
    srv_create(&srv_a, "defaults.sock");
    srv_run(&srv_a);
    assert_int_equal(client_connect(&c, srv_a.sock), 0);
    caps = muc_server_caps(c);
    assert_int_equal(caps->max_msg_fds, 8);
    assert_int_equal(caps->max_data_xfer_size, 1u << 20);
    assert_int_equal(caps->max_dma_maps, 65535);
    muc_close(c);
    inproc_stop(&srv_a);

    srv_create(&srv_a, "advertised.sock");
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, MU_LIMIT_MSG_FDS, 3), 0);
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, MU_LIMIT_DATA_XFER, 1024), 0);
    assert_int_equal(mu_ctx_set_limit(srv_a.ctx, MU_LIMIT_DMA_REGIONS, 5), 0);
    assert_int_equal(mu_irq_setup(srv_a.ctx, MU_IRQ_ERR, 1), 0);
    assert_int_equal(mu_pci_add_msix(srv_a.ctx, 8, 0, 0x800, 0, 0xc00) > 0, 1);
    srv_run(&srv_a);
    assert_int_equal(client_connect(&c, srv_a.sock), 0);
    caps = muc_server_caps(c);
    assert_int_equal(caps->max_msg_fds, 3);
    assert_int_equal(caps->max_data_xfer_size, 1024);
    assert_int_equal(caps->max_dma_maps, 5);

    assert_int_equal(muc_request(c, VFU_CMD_REGION_READ, &a, sizeof(a), NULL,
                                 0, NULL, 0, NULL, NULL, 0, NULL), -EINVAL);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 0, big, sizeof(big)), 0);
    for (size_t i = 0; i < sizeof(big); i++)
        assert_int_equal(big[i], (uint8_t)i);
    for (int i = 0; i < 4; i++) {
        efd[i] = eventfd(0, EFD_CLOEXEC);
        assert_true(efd[i] >= 0);
    }
    /* The library splits by what was advertised... */
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, 4, efd), 0);
    /*
     * ...and one fd too many ends the connection.  (Whether the kernel
     * truncates the fds, or they all fit the control buffer's padding and
     * the message is refused with E2BIG first, depends on the count; it
     * is a drop either way, see test_hostile.)
     */
    assert_true(muc_set_irqs(c, VFU_IRQ_SET_DATA_EVENTFD |
                                VFU_IRQ_SET_ACTION_TRIGGER,
                             VFU_IRQ_MSIX, 0, 4, NULL, efd, 4) < 0);
    expect_log("client dropped: ");
    assert_true(muc_device_info(c, &di) < 0);
    for (int i = 0; i < 4; i++)
        close(efd[i]);
    muc_close(c);
    expect_served(srv_a.sock);
    inproc_stop(&srv_a);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_socket_mode_default),
        T(test_socket_mode_set),
        T(test_realize_keeps_other_files),
        T(test_realize_socket_files),
        T(test_allow_list_self),
        T(test_allow_list_refuses),
        T(test_allow_list_other_user),
        T(test_limits_out_of_range),
        T(test_limits_after_realize),
        T(test_limits_advertised),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
