/*
 * muser-guest - the checks the interop guest runs against its devices.
 *
 * Built statically on the host and copied into the guest's initramfs, so
 * the guest needs nothing but busybox besides.  Every subcommand prints
 * what it measured as "MUSER-NUM key=value" lines and exits 0 only when
 * what it read is what it expected; the guest's /init turns the exit
 * status into a check line for the harness.
 *
 *   write DEV OFF LEN SEED          pattern over [OFF, OFF+LEN), O_DIRECT
 *   verify DEV OFF LEN SEED COUNT   COUNT random 4 KiB blocks read back
 *   seqread DEV [OFF LEN SEED]      read the whole device (and check the
 *                                   pattern in [OFF, OFF+LEN))
 *   parallel DEV THREADS LEN SEED   thread i on CPU i writes and reads back
 *                                   its own LEN bytes at i*LEN
 *   bootsector DEV MARKER           a boot sector printing MARKER on COM1
 *   gpio-lines CHIP                 print how many lines CHIP has
 *   gpio-out CHIP VALUE             set lines 0-15, read them back
 *   gpio-events CHIP LINE N SECS    N edge events on input LINE, each announced
 *                                   by "MUSER-GPIO-WAIT i" before waiting
 *
 * The pattern is a function of (seed, byte offset), so any block can be
 * checked alone and stale data from another run or offset never matches.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/gpio.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define BLK 4096u

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void fill(uint64_t *buf, size_t len, uint64_t off, uint64_t seed)
{
    for (size_t i = 0; i < len / 8; i++)
        buf[i] = mix(seed ^ ((off / 8) + i));
}

/* 0 if buf holds the pattern for off; else print the first difference. */
static int check(const uint64_t *buf, size_t len, uint64_t off, uint64_t seed)
{
    for (size_t i = 0; i < len / 8; i++) {
        uint64_t want = mix(seed ^ ((off / 8) + i));

        if (buf[i] != want) {
            printf("mismatch at byte %" PRIu64 ": got %016" PRIx64
                   " want %016" PRIx64 "\n", off + i * 8, buf[i], want);
            return -1;
        }
    }
    return 0;
}

static void *xalloc(size_t len)
{
    void *p = NULL;

    if (posix_memalign(&p, BLK, len) != 0) {
        perror("posix_memalign");
        exit(2);
    }
    return p;
}

static int open_dev(const char *path, int flags)
{
    int fd = open(path, flags | O_DIRECT);

    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

static int pio(int fd, void *buf, size_t len, uint64_t off, int write)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done,
                                   (off_t)(off + done))
                          : pread(fd, (char *)buf + done, len - done,
                                  (off_t)(off + done));
        if (n <= 0) {
            printf("%s at %" PRIu64 ": %s\n", write ? "write" : "read",
                   off + done, n == 0 ? "end of device" : strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

static uint64_t num(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 0);

    switch (*end) {
    case 'G': v <<= 10; /* fall through */
    case 'M': v <<= 10; /* fall through */
    case 'K': v <<= 10; break;
    default: break;
    }
    return v;
}

static int write_range(int fd, uint64_t off, uint64_t len, uint64_t seed)
{
    uint64_t *buf = xalloc(CHUNK);

    for (uint64_t pos = 0; pos < len; pos += CHUNK) {
        size_t n = len - pos < CHUNK ? (size_t)(len - pos) : CHUNK;

        fill(buf, n, off + pos, seed);
        if (pio(fd, buf, n, off + pos, 1) < 0) {
            free(buf);
            return -1;
        }
    }
    free(buf);
    return fdatasync(fd);
}

/* "n1" for /dev/nvme0n1: figures name the namespace they were measured on. */
static const char *ns_tag(const char *dev)
{
    const char *n = strrchr(dev, 'n');

    return n != NULL && n != dev ? n : dev;
}

static int cmd_write(char **av)
{
    int fd = open_dev(av[0], O_RDWR);
    uint64_t off = num(av[1]), len = num(av[2]), seed = num(av[3]);
    double t = now();

    if (write_range(fd, off, len, seed) < 0)
        return 1;
    t = now() - t;
    printf("MUSER-NUM write_mib_s_%s=%.1f\n", ns_tag(av[0]),
           (double)len / (1 << 20) / t);
    close(fd);
    return 0;
}

static int cmd_verify(char **av)
{
    int fd = open_dev(av[0], O_RDONLY);
    uint64_t off = num(av[1]), len = num(av[2]), seed = num(av[3]);
    uint64_t count = num(av[4]), blocks = len / BLK;
    uint64_t *buf = xalloc(BLK);
    uint64_t r = mix(seed ^ (uint64_t)time(NULL));
    double t = now();

    for (uint64_t i = 0; i < count; i++) {
        uint64_t at = off + (mix(r + i) % blocks) * BLK;

        if (pio(fd, buf, BLK, at, 0) < 0 || check(buf, BLK, at, seed) < 0)
            return 1;
    }
    t = now() - t;
    printf("MUSER-NUM read_4k_per_s_%s=%.0f\n", ns_tag(av[0]),
           (double)count / t);
    close(fd);
    return 0;
}

static int cmd_seqread(int ac, char **av)
{
    int fd = open_dev(av[0], O_RDONLY);
    uint64_t size = 0, off = 0, len = 0, seed = 0;
    uint64_t *buf = xalloc(CHUNK);
    double t;

    if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
        perror("BLKGETSIZE64");
        return 2;
    }
    if (ac >= 4) {
        off = num(av[1]);
        len = num(av[2]);
        seed = num(av[3]);
    }
    t = now();
    for (uint64_t pos = 0; pos < size; pos += CHUNK) {
        size_t n = size - pos < CHUNK ? (size_t)(size - pos) : CHUNK;

        if (pio(fd, buf, n, pos, 0) < 0)
            return 1;
        /* The pattern range is chunk-aligned in every use here. */
        if (len && pos >= off && pos + n <= off + len &&
            check(buf, n, pos, seed) < 0)
            return 1;
    }
    t = now() - t;
    printf("MUSER-NUM seqread_bytes_%s=%" PRIu64 "\n", ns_tag(av[0]), size);
    printf("MUSER-NUM seqread_mib_s_%s=%.1f\n", ns_tag(av[0]),
           (double)size / (1 << 20) / t);
    close(fd);
    return 0;
}

struct job {
    const char *dev;
    unsigned cpu;
    uint64_t len, seed;
    int rc;
};

static void *job_run(void *arg)
{
    struct job *j = arg;
    uint64_t off = j->cpu * j->len;
    uint64_t *buf = xalloc(CHUNK);
    cpu_set_t set;
    int fd;

    /* Pinned, so each CPU's own submission queue carries its I/O. */
    CPU_ZERO(&set);
    CPU_SET(j->cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0) {
        printf("cpu %u: sched_setaffinity: %s\n", j->cpu, strerror(errno));
        j->rc = 1;
        return NULL;
    }
    fd = open_dev(j->dev, O_RDWR);
    j->rc = 1;
    if (write_range(fd, off, j->len, j->seed) < 0)
        goto out;
    for (uint64_t pos = 0; pos < j->len; pos += CHUNK) {
        size_t n = j->len - pos < CHUNK ? (size_t)(j->len - pos) : CHUNK;

        if (pio(fd, buf, n, off + pos, 0) < 0 ||
            check(buf, n, off + pos, j->seed) < 0)
            goto out;
    }
    j->rc = 0;
out:
    close(fd);
    free(buf);
    return NULL;
}

static int cmd_parallel(char **av)
{
    unsigned n = (unsigned)num(av[1]);
    struct job jobs[64];
    pthread_t th[64];
    double t;
    int rc = 0;

    if (n == 0 || n > 64)
        return 2;
    t = now();
    for (unsigned i = 0; i < n; i++) {
        jobs[i] = (struct job){ .dev = av[0], .cpu = i, .len = num(av[2]),
                                .seed = num(av[3]) };
        pthread_create(&th[i], NULL, job_run, &jobs[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].rc != 0) {
            printf("cpu %u: failed\n", i);
            rc = 1;
        }
    }
    t = now() - t;
    printf("MUSER-NUM parallel_mib_s=%.1f\n",
           2.0 * (double)n * (double)num(av[2]) / (1 << 20) / t);
    return rc;
}

/*
 * Real mode, loaded at 0:7c00: DS=0, print the string after the code on
 * COM1's data port, halt.  QEMU's UART takes bytes without setup.
 */
static int cmd_bootsector(char **av)
{
    static const uint8_t code[] = {
        0xfa,                   /* cli */
        0x31, 0xc0,             /* xor ax, ax */
        0x8e, 0xd8,             /* mov ds, ax */
        0xba, 0xf8, 0x03,       /* mov dx, 0x3f8 */
        0xbe, 0x17, 0x7c,       /* mov si, 0x7c17 (msg) */
        0xfc,                   /* cld */
        0xac,                   /* 1: lodsb */
        0x84, 0xc0,             /* test al, al */
        0x74, 0x03,             /* jz 2f */
        0xee,                   /* out dx, al */
        0xeb, 0xf8,             /* jmp 1b */
        0xf4,                   /* 2: hlt */
        0xeb, 0xfd,             /* jmp 2b */
    };
    int fd = open_dev(av[0], O_RDWR);
    uint8_t *sec = xalloc(BLK);
    size_t mlen = strlen(av[1]);

    if (sizeof(code) != 0x17 || mlen > 400)
        return 2;
    memset(sec, 0, BLK);
    memcpy(sec, code, sizeof(code));
    memcpy(sec + sizeof(code), av[1], mlen);
    memcpy(sec + sizeof(code) + mlen, "\r\n", 3);
    sec[510] = 0x55;
    sec[511] = 0xaa;
    if (pio(fd, sec, BLK, 0, 1) < 0 || fdatasync(fd) < 0)
        return 1;
    close(fd);
    return 0;
}

static int line_request(const char *chip, const unsigned *lines, unsigned n,
                        uint64_t flags, uint64_t values)
{
    struct gpio_v2_line_request req;
    int fd = open(chip, O_RDWR);

    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", chip, strerror(errno));
        return -1;
    }
    memset(&req, 0, sizeof(req));
    for (unsigned i = 0; i < n; i++)
        req.offsets[i] = lines[i];
    req.num_lines = n;
    req.config.flags = flags;
    if (flags & GPIO_V2_LINE_FLAG_OUTPUT) {
        req.config.num_attrs = 1;
        req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
        req.config.attrs[0].attr.values = values;
        req.config.attrs[0].mask = (1ull << n) - 1;
    }
    strcpy(req.consumer, "muser-guest");
    if (ioctl(fd, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
        fprintf(stderr, "GPIO_V2_GET_LINE: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return req.fd;
}

static int cmd_gpio_lines(char **av)
{
    struct gpiochip_info info;
    int fd = open(av[0], O_RDWR);

    if (fd < 0 || ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, &info) < 0) {
        fprintf(stderr, "%s: %s\n", av[0], strerror(errno));
        return 1;
    }
    printf("%u\n", info.lines);
    close(fd);
    return 0;
}

static int cmd_gpio_out(char **av)
{
    unsigned lines[16];
    uint64_t want = num(av[1]) & 0xffff;
    struct gpio_v2_line_values v = { .mask = 0xffff };
    int fd;

    for (unsigned i = 0; i < 16; i++)
        lines[i] = i;
    fd = line_request(av[0], lines, 16, GPIO_V2_LINE_FLAG_OUTPUT, want);
    if (fd < 0)
        return 1;
    if (ioctl(fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &v) < 0) {
        perror("GPIO_V2_LINE_GET_VALUES");
        return 1;
    }
    printf("MUSER-NUM gpio_out_readback=%#06llx\n", (unsigned long long)v.bits);
    close(fd);
    return v.bits == want ? 0 : 1;
}

/*
 * All 16 inputs are requested, though only LINE is counted: Linux 6.12's
 * idio-16 interrupt chip runs the handler of every input on the one
 * summary status bit, and an input nobody has asked an interrupt of has
 * no mapping yet, which the kernel dereferences as interrupt 0 (a NULL
 * handler oops in handle_nested_irq).  Each interrupt then gives one
 * event per input; the ones for other lines are skipped.
 */
static int cmd_gpio_events(char **av)
{
    unsigned line = (unsigned)num(av[1]), n = (unsigned)num(av[2]);
    int secs = (int)num(av[3]);
    unsigned lines[16];
    int fd;

    for (unsigned i = 0; i < 16; i++)
        lines[i] = 16 + i;
    fd = line_request(av[0], lines, 16,
                      GPIO_V2_LINE_FLAG_INPUT | GPIO_V2_LINE_FLAG_EDGE_RISING |
                      GPIO_V2_LINE_FLAG_EDGE_FALLING, 0);
    if (fd < 0)
        return 1;
    for (unsigned i = 0; i < n; i++) {
        struct gpio_v2_line_event ev;

        /* The harness changes the inputs once per announcement. */
        printf("MUSER-GPIO-WAIT %u\n", i);
        fflush(stdout);
        do {
            struct pollfd p = { .fd = fd, .events = POLLIN };

            if (poll(&p, 1, secs * 1000) != 1) {
                printf("no edge event %u within %d s\n", i, secs);
                return 1;
            }
            if (read(fd, &ev, sizeof(ev)) != sizeof(ev)) {
                perror("read event");
                return 1;
            }
        } while (ev.offset != line);
        printf("MUSER-GPIO-EVENT %u %s\n", i,
               ev.id == GPIO_V2_LINE_EVENT_RISING_EDGE ? "rising" : "falling");
    }
    close(fd);
    return 0;
}

int main(int ac, char **av)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (ac >= 6 && strcmp(av[1], "write") == 0)
        return cmd_write(av + 2);
    if (ac >= 7 && strcmp(av[1], "verify") == 0)
        return cmd_verify(av + 2);
    if (ac >= 3 && strcmp(av[1], "seqread") == 0)
        return cmd_seqread(ac - 2, av + 2);
    if (ac >= 6 && strcmp(av[1], "parallel") == 0)
        return cmd_parallel(av + 2);
    if (ac >= 4 && strcmp(av[1], "bootsector") == 0)
        return cmd_bootsector(av + 2);
    if (ac >= 3 && strcmp(av[1], "gpio-lines") == 0)
        return cmd_gpio_lines(av + 2);
    if (ac >= 4 && strcmp(av[1], "gpio-out") == 0)
        return cmd_gpio_out(av + 2);
    if (ac >= 6 && strcmp(av[1], "gpio-events") == 0)
        return cmd_gpio_events(av + 2);
    fprintf(stderr, "usage: see the comment at the top of muser-guest.c\n");
    return 2;
}
