/*
 * fuzz_util.c - helpers shared by the harnesses (see fuzz.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

uint8_t fz_u8(struct fz_in *in)
{
    uint8_t v;

    if (in->n == 0) {
        in->end = true;
        return 0;
    }
    v = in->p[0];
    in->p++;
    in->n--;
    return v;
}

uint16_t fz_u16(struct fz_in *in)
{
    uint16_t lo = fz_u8(in);

    return (uint16_t)(lo | fz_u8(in) << 8);
}

size_t fz_bytes(struct fz_in *in, const uint8_t **p, size_t len)
{
    if (len > in->n) {
        len = in->n;
        in->end = true;
    }
    *p = in->p;
    in->p += len;
    in->n -= len;
    return len;
}

/* The slow way: one entry per open fd (and one for the DIR's own). */
static int count_fds_scan(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;       /* the DIR's own fd */
}

/*
 * Since Linux 6.2 a stat of /proc/self/fd gives the number of open fds as
 * its size: one syscall instead of an open, two getdents and a close (the
 * scan was a tenth of fuzz_server's time).  The directory is kept open and
 * fstat()ed, which skips the path walk of a stat() (it counts itself, the
 * same in every count).  An older kernel says 0 there (a process always
 * has an fd open here: libFuzzer's), and gets the scan.
 */
int fz_count_fds(void)
{
    static int use_stat = -1, dir = -1;
    struct stat sb;

    if (use_stat != 0 && dir < 0)
        dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (use_stat != 0 && dir >= 0 && fstat(dir, &sb) == 0 && sb.st_size > 0) {
        if (use_stat < 0) {
            /* Trust it only if it agrees with the scan once. */
            use_stat = sb.st_size == count_fds_scan();
            if (!use_stat)
                return count_fds_scan();
        }
        return (int)sb.st_size;
    }
    use_stat = 0;
    return count_fds_scan();
}

bool fz_is_eventfd(int fd)
{
    static const char want[] = "anon_inode:[eventfd]";
    static dev_t anon_dev;
    static ino_t anon_ino;
    char path[40], link[sizeof(want) + 1];
    struct stat sb;
    ssize_t n;

    /* Every eventfd is the one anonymous inode: an fstat rules out the
     * memfds, pipes and sockets without reading a /proc link. */
    if (anon_ino == 0) {
        int e = eventfd(0, EFD_CLOEXEC);

        if (e >= 0 && fstat(e, &sb) == 0) {
            anon_dev = sb.st_dev;
            anon_ino = sb.st_ino;
        }
        if (e >= 0)
            close(e);
    }
    if (fstat(fd, &sb) < 0 ||
        (anon_ino != 0 && (sb.st_dev != anon_dev || sb.st_ino != anon_ino)))
        return false;
    /* Other anonymous-inode fds (timerfd, epoll, ...) share the inode. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof(link));
    return n == (ssize_t)sizeof(want) - 1 && memcmp(link, want, (size_t)n) == 0;
}

static int memfd(size_t size, bool sealable)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC |
                                  (sealable ? MFD_ALLOW_SEALING : 0));

    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * The memfd pool (fz_pool_init): plain memfds made once and handed out
 * again in later inputs, emptied and resized, instead of a memfd_create(),
 * an ftruncate() and a close() each (and an inode made and freed).  A
 * pooled memfd is the same to the receiver as a fresh one: no seals can
 * be added (no MFD_ALLOW_SEALING), its size is the one asked for and its
 * content zero (truncated to 0 first, or its pages punched out when the
 * size is the same).  A slot is handed out once per
 * input: the library may still hold and map its file when the harness
 * lets go of its fd, until the input's hang-up.
 */
#define POOL_SIZE 16
static struct {
    int fd;
    off_t size;
    bool busy;          /* handed out in this input */
} pool[POOL_SIZE];
static unsigned pool_n;

void fz_pool_init(void)
{
    while (pool_n < POOL_SIZE) {
        int fd = memfd_create("fuzz", MFD_CLOEXEC);

        if (fd < 0)
            break;
        pool[pool_n++] = (typeof(pool[0])){ fd, 0, false };
    }
}

void fz_pool_recycle(void)
{
    for (unsigned i = 0; i < pool_n; i++)
        pool[i].busy = false;
}

static int pool_memfd(size_t size)
{
    for (unsigned i = 0; i < pool_n; i++) {
        if (pool[i].busy)
            continue;
        if (pool[i].size == (off_t)size && size != 0) {
            /* The same size again (mutated inputs keep their specs):
             * one syscall empties it. */
            if (fallocate(pool[i].fd, FALLOC_FL_PUNCH_HOLE |
                          FALLOC_FL_KEEP_SIZE, 0, (off_t)size) < 0)
                return -1;
        } else if ((pool[i].size != 0 && ftruncate(pool[i].fd, 0) < 0) ||
                   (size != 0 && ftruncate(pool[i].fd, (off_t)size) < 0)) {
            return -1;
        }
        pool[i].size = (off_t)size;
        pool[i].busy = true;
        return pool[i].fd;
    }
    return memfd(size, false);
}

void fz_close_fd(int fd)
{
    for (unsigned i = 0; i < pool_n; i++) {
        if (pool[i].fd == fd)
            return;     /* stays open, busy until fz_pool_recycle() */
    }
    close(fd);
}

int fz_make_fd(uint8_t spec)
{
    unsigned n = spec >> 3;
    int fd = -1, p[2];
    char path[40];

    switch (spec & 7) {
    case FZ_FD_MEMFD:
        return pool_memfd((size_t)n * 4096);
    case FZ_FD_MEMFD_SEALED:
        fd = memfd((size_t)n * 4096, true);
        if (fd >= 0)
            fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK);
        return fd;
    case FZ_FD_MEMFD_RO:
        /* A read-only open of the same file: DMA_MAP for writing must
         * refuse it. */
        p[0] = memfd((size_t)n * 4096, false);
        if (p[0] < 0)
            return -1;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        close(p[0]);
        return fd;
    case FZ_FD_EVENTFD:
        return eventfd(0, EFD_CLOEXEC | ((n & 1) ? EFD_NONBLOCK : 0));
    case FZ_FD_PIPE:
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        close(p[!(n & 1)]);
        return p[n & 1];
    case FZ_FD_SOCKET:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
            return -1;
        close(p[1]);
        return p[0];
    case FZ_FD_DEVNULL:
        return open("/dev/null", O_RDWR | O_CLOEXEC);
    default:
        return pool_memfd((size_t)n * 4096 + 100);
    }
}

long fz_send(int sock, const void *buf, size_t len, const int *fds,
             unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nfds > 8)
        return -EINVAL;
    if (nfds > 0) {
        struct cmsghdr *cm;

        memset(ctl.buf, 0, sizeof(ctl.buf));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    return (long)n;
}
