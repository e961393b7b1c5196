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
 * The fd pool (fz_pool_init): fds made once and handed out again in later
 * inputs instead of being made and closed in each (a memfd was a
 * memfd_create(), an ftruncate() and a close(), and an inode made and
 * freed; a read-only one an open() of /proc/self/fd/N and two closes
 * more).  The transport the harness sends through keeps dups, so the
 * library gets a fresh fd number for the same file, as from a socket.
 *
 * A pooled fd is the same to the receiver as a fresh one of its kind:
 *  - plain memfds (kinds 0 and 7): not sealable (no MFD_ALLOW_SEALING),
 *    the size asked for, content zero (truncated to 0 first, or its pages
 *    punched out when the size is the same: the library may have written
 *    them through a mapping);
 *  - read-only memfds (kind 2): an O_RDONLY open of a memfd the pool keeps
 *    the writable fd of, to resize it.  Nobody can write the file through
 *    the read-only fd (mmap of it is PROT_READ or private), so its content
 *    stays zero: only its size changes;
 *  - sealed memfds (kind 1): sealed against writes and shrinking, so
 *    neither size nor content can change: reused for the same size only;
 *  - pipe ends whose other end is closed, sockets whose peer is closed,
 *    /dev/null: nothing in them to change (a read says EOF, a write
 *    EPIPE), and the library never changes a client fd's flags or
 *    options (only its own fds get F_SETFL).
 * Eventfds are not pooled: their counter is state, and the library
 * watches them (an epoll registration lives as long as the file).
 *
 * A slot is handed out once per input, busy until fz_pool_recycle(): the
 * library may still hold and map its file when the harness lets go of its
 * fd, until the input's hang-up.  Plain memfds are made at fz_pool_init,
 * the other kinds when first asked for; fz_pool_fds() says how many fds
 * the pool holds, so a harness can tell them from the fds it leaked.
 */
enum pool_kind { PK_RW, PK_RO, PK_SEALED, PK_PIPE_R, PK_PIPE_W, PK_SOCKET,
                 PK_DEVNULL };
#define POOL_SIZE 64
#define POOL_RW_INIT 16
static struct {
    int fd;             /* the fd handed out */
    int rw;             /* PK_RO: the writable fd of the same file */
    enum pool_kind kind;
    off_t size;         /* memfds */
    bool busy;          /* handed out in this input */
} pool[POOL_SIZE];
static unsigned pool_n;
static bool pool_on;
static int pool_nfds;

static void pool_add(int fd, int rw, enum pool_kind kind, off_t size)
{
    pool[pool_n++] = (typeof(pool[0])){ fd, rw, kind, size, false };
    pool_nfds += 1 + (rw >= 0);
}

void fz_pool_init(void)
{
    pool_on = true;
    while (pool_n < POOL_RW_INIT) {
        int fd = memfd_create("fuzz", MFD_CLOEXEC);

        if (fd < 0)
            break;
        pool_add(fd, -1, PK_RW, 0);
    }
}

int fz_pool_fds(void)
{
    return pool_nfds;
}

void fz_pool_recycle(void)
{
    for (unsigned i = 0; i < pool_n; i++)
        pool[i].busy = false;
}

/* A free slot of kind (and size, for the sealed), marked busy; -1. */
static int pool_take(enum pool_kind kind, off_t size)
{
    for (unsigned i = 0; i < pool_n; i++) {
        if (pool[i].busy || pool[i].kind != kind ||
            (kind == PK_SEALED && pool[i].size != size))
            continue;
        pool[i].busy = true;
        return (int)i;
    }
    return -1;
}

/* A new slot for fd (busy), or fd stays unpooled when the pool is full. */
static int pool_keep(int fd, int rw, enum pool_kind kind, off_t size)
{
    if (pool_n == POOL_SIZE)
        return fd;      /* fz_close_fd closes it */
    pool_add(fd, rw, kind, size);
    pool[pool_n - 1].busy = true;
    return fd;
}

/* Resize an emptied-or-zero file; 0 or -1. */
static int pool_resize(int fd, off_t from, off_t to)
{
    if (from == to)
        return 0;
    return ftruncate(fd, to) < 0 ? -1 : 0;
}

static int pool_memfd(size_t size)
{
    int i = pool_take(PK_RW, 0);

    if (i < 0)
        return memfd(size, false);
    if (pool[i].size == (off_t)size && size != 0) {
        /* The same size again (mutated inputs keep their specs): one
         * syscall empties it. */
        if (fallocate(pool[i].fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      0, (off_t)size) < 0)
            return -1;
    } else if ((pool[i].size != 0 && ftruncate(pool[i].fd, 0) < 0) ||
               (size != 0 && ftruncate(pool[i].fd, (off_t)size) < 0)) {
        pool[i].size = -1;      /* unknown: truncated first next time */
        return -1;
    }
    pool[i].size = (off_t)size;
    return pool[i].fd;
}

/* A read-only open of a new memfd of size bytes; *rw its writable fd, or
 * closed when rw is NULL. */
static int memfd_ro(size_t size, int *rw)
{
    char path[40];
    int w = memfd(size, false), fd;

    if (w < 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", w);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (rw != NULL && fd >= 0)
        *rw = w;
    else
        close(w);
    return fd;
}

static int pool_memfd_ro(size_t size)
{
    int i = pool_take(PK_RO, 0), fd, rw;

    if (i >= 0) {
        /* Zero content (see above): only the size may change. */
        if (pool_resize(pool[i].rw, pool[i].size, (off_t)size) < 0) {
            pool[i].size = -1;
            return -1;
        }
        pool[i].size = (off_t)size;
        return pool[i].fd;
    }
    if (pool_n == POOL_SIZE)
        return memfd_ro(size, NULL);
    fd = memfd_ro(size, &rw);
    return fd < 0 ? -1 : pool_keep(fd, rw, PK_RO, (off_t)size);
}

static int memfd_sealed(size_t size)
{
    int fd = memfd(size, true);

    if (fd >= 0)
        fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK);
    return fd;
}

/* Kinds made by one call and never changed: taken from the pool, or made
 * and kept in it. */
static int pool_other(enum pool_kind kind, size_t size)
{
    int i = pool_take(kind, (off_t)size), fd = -1, p[2];

    if (i >= 0)
        return pool[i].fd;
    switch (kind) {
    case PK_SEALED:
        fd = memfd_sealed(size);
        break;
    case PK_PIPE_R:
    case PK_PIPE_W:
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        close(p[kind == PK_PIPE_R]);
        fd = p[kind == PK_PIPE_W];
        break;
    case PK_SOCKET:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
            return -1;
        close(p[1]);
        fd = p[0];
        break;
    default:
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        break;
    }
    return fd < 0 || !pool_on ? fd : pool_keep(fd, -1, kind, (off_t)size);
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
    size_t pages = (size_t)n * 4096;

    switch (spec & 7) {
    case FZ_FD_MEMFD:
        return pool_on ? pool_memfd(pages) : memfd(pages, false);
    case FZ_FD_MEMFD_SEALED:
        return pool_on ? pool_other(PK_SEALED, pages) : memfd_sealed(pages);
    case FZ_FD_MEMFD_RO:
        /* A read-only open of the same file: DMA_MAP for writing must
         * refuse it. */
        return pool_on ? pool_memfd_ro(pages) : memfd_ro(pages, NULL);
    case FZ_FD_EVENTFD:
        return eventfd(0, EFD_CLOEXEC | ((n & 1) ? EFD_NONBLOCK : 0));
    case FZ_FD_PIPE:
        /* n & 1: the write end */
        return pool_other((n & 1) ? PK_PIPE_W : PK_PIPE_R, 0);
    case FZ_FD_SOCKET:
        return pool_other(PK_SOCKET, 0);
    case FZ_FD_DEVNULL:
        return pool_other(PK_DEVNULL, 0);
    default:
        return pool_on ? pool_memfd(pages + 100) : memfd(pages + 100, false);
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
