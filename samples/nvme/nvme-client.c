/*
 * muser-nvme-client - a small command-line NVMe host for the nvme sample, built
 * on the driver-like client in driver/ (the one the integration test and
 * the benchmark use).
 *
 *   muser-nvme-client SOCKET demo [--blocks N] [--seconds S]
 *
 * demo: bring the controller up the way Linux does, print what Identify
 * says about the controller and namespace 1, write N blocks with a
 * recognisable pattern and read them back, run 4 KiB random reads at
 * queue depth 32 for S seconds (default 1) and print the rate, then shut
 * the controller down cleanly.  Doorbells are used however the device
 * offers them (ioeventfds, a shared page it polls, or trapped writes).
 *
 * Exit status: 0 on success, 1 on any failure, 2 for bad usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

#define MIB (1024u * 1024u)
#define RAND_XFER 4096u
#define RAND_QD 32u
#define IO_QSIZE 64u            /* room for RAND_QD */
#define IO_CQ_SIZE 256u         /* lets the CQ head doorbell be lazy */
#define DEFAULT_BLOCKS 8u
#define MAX_BLOCKS 1024u

static const char *prog = "muser-nvme-client";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s SOCKET demo [--blocks N] [--seconds S]\n"
            "  Drive the nvme sample serving on SOCKET like a host would:\n"
            "  bring-up, Identify, write N blocks (default %u) and verify\n"
            "  them, 4 KiB random reads at QD%u for S seconds (default 1),\n"
            "  clean shutdown.\n",
            prog, DEFAULT_BLOCKS, RAND_QD);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* A negative errno or a positive NVMe status, as words. */
static const char *why(int rc)
{
    static char buf[64];

    if (rc < 0)
        return strerror(-rc);
    snprintf(buf, sizeof(buf), "NVMe status %#x (SCT %u, SC %#x)", rc,
             NVME_ST_SCT(rc), NVME_ST_SC(rc));
    return buf;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* An Identify string field: space padded, not terminated. */
static void id_str(char *out, const uint8_t *p, size_t n)
{
    memcpy(out, p, n);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
        out[--n] = '\0';
}

static const char *db_mode_name(enum nvd_db_mode m)
{
    switch (m) {
    case NVD_DB_TRAPPED: return "trapped (a message per doorbell write)";
    case NVD_DB_POLLED: return "polled (shared page, the device polls it)";
    case NVD_DB_IOEVENTFD: return "shared page + ioeventfd kicks";
    default: return "?";
    }
}

/* ---------------- identify ---------------- */

static void print_oncs(uint16_t oncs)
{
    static const char *const names[] = {
        "Compare", "Write Uncorrectable", "Dataset Management",
        "Write Zeroes", "Save/Select in Features", "Reservations",
        "Timestamp", "Verify",
    };
    bool any = false;

    printf("  ONCS          %04xh:", oncs);
    for (unsigned b = 0; b < sizeof(names) / sizeof(names[0]); b++) {
        if (oncs & (1u << b)) {
            printf("%s %s", any ? "," : "", names[b]);
            any = true;
        }
    }
    printf("%s\n", any ? "" : " none of the optional NVM commands");
}

static void print_vwc(uint8_t vwc)
{
    static const char *const flush[] = {
        "broadcast Flush not indicated", "reserved",
        "broadcast Flush not supported", "broadcast Flush supported",
    };

    printf("  VWC           %02xh: %s", vwc,
           vwc & 1 ? "volatile write cache present" : "no volatile write cache");
    if (vwc & 1)
        printf(", %s", flush[(vwc >> 1) & 3]);
    printf("\n");
}

static void print_ctrl(const struct nvd *d)
{
    const uint8_t *id = d->idctrl;
    char sn[21], mn[41], fr[9];
    unsigned mdts = id[NVME_IDC_MDTS];
    uint32_t ver = le32(id + NVME_IDC_VER);

    id_str(sn, id + NVME_IDC_SN, 20);
    id_str(mn, id + NVME_IDC_MN, 40);
    id_str(fr, id + NVME_IDC_FR, 8);
    printf("Identify Controller\n");
    printf("  vendor        %04xh (subsystem %04xh)\n",
           le16(id + NVME_IDC_VID), le16(id + NVME_IDC_SSVID));
    printf("  serial        %s\n", sn);
    printf("  model         %s\n", mn);
    printf("  firmware      %s\n", fr);
    printf("  version       %u.%u\n", ver >> 16, (ver >> 8) & 0xff);
    if (mdts != 0)
        printf("  MDTS          %u (max transfer %u KiB)\n", mdts,
               (NVD_PAGE << mdts) / 1024);
    else
        printf("  MDTS          0 (no limit)\n");
    printf("  namespaces    %u\n", le32(id + NVME_IDC_NN));
    print_vwc(id[NVME_IDC_VWC]);
    print_oncs(le16(id + NVME_IDC_ONCS));
}

static int print_ns(struct nvd *d, const struct nvd_ns *ns)
{
    uint8_t id[4096];
    uint64_t nsze, ncap, bytes;
    int st = nvd_identify(d, NVME_CNS_NS, ns->nsid, id);

    if (st != 0)
        return fail("Identify Namespace %u: %s", ns->nsid, why(st));
    nsze = le64(id + NVME_IDN_NSZE);
    ncap = le64(id + NVME_IDN_NCAP);
    bytes = nsze << ns->lba_shift;
    printf("Identify Namespace %u\n", ns->nsid);
    printf("  size          %llu blocks (%llu MiB), capacity %llu blocks\n",
           (unsigned long long)nsze, (unsigned long long)(bytes / MIB),
           (unsigned long long)ncap);
    printf("  LBA size      %u bytes (LBA format %u of %u)\n",
           1u << ns->lba_shift, id[NVME_IDN_FLBAS] & 0xf,
           id[NVME_IDN_NLBAF] + 1u);
    return 0;
}

/* ---------------- write and verify ---------------- */

/* Every block says what it is, so a misplaced block is obvious. */
static void fill_block(uint8_t *p, size_t bs, unsigned lba)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "muser nvme demo: LBA %-6u| ", lba);

    for (size_t i = 0; i < bs; i++)
        p[i] = (uint8_t)line[i % (size_t)n];
}

/* Blocks [0, nr) of ns through buf, in transfers of at most max_xfer. */
static int rw_blocks(struct nvd *d, const struct nvd_ns *ns, uint8_t opc,
                     uint64_t buf, unsigned nr, size_t max_xfer)
{
    size_t bs = (size_t)1 << ns->lba_shift;
    unsigned per = (unsigned)(max_xfer / bs);

    for (unsigned lba = 0; lba < nr; lba += per) {
        unsigned n = nr - lba < per ? nr - lba : per;
        int st = nvd_rw(d, 1, opc, ns->nsid, lba, n, buf + lba * bs, n * bs);

        if (st != 0)
            return fail("%s of LBA %u-%u: %s",
                        opc == NVME_IO_WRITE ? "write" : "read", lba,
                        lba + n - 1, why(st));
    }
    return 0;
}

static int write_verify(struct nvd *d, const struct nvd_ns *ns, unsigned nr)
{
    size_t bs = (size_t)1 << ns->lba_shift, len = nr * bs;
    unsigned mdts = d->idctrl[NVME_IDC_MDTS];
    size_t max_xfer = mdts ? (size_t)NVD_PAGE << mdts : 128 * 1024;
    uint64_t wbuf = nvd_alloc(d, len, NVD_PAGE);
    uint64_t rbuf = nvd_alloc(d, len, NVD_PAGE);
    uint8_t *w, *r;
    char first[40];

    if (wbuf == 0 || rbuf == 0)
        return fail("%u blocks do not fit in guest memory", nr);
    if (max_xfer < bs)
        return fail("MDTS smaller than a block");
    if (nr > ns->nsze)
        return fail("namespace %u has only %llu blocks", ns->nsid,
                    (unsigned long long)ns->nsze);
    w = nvd_va(d, wbuf);
    r = nvd_va(d, rbuf);
    for (unsigned i = 0; i < nr; i++)
        fill_block(w + i * bs, bs, i);
    if (rw_blocks(d, ns, NVME_IO_WRITE, wbuf, nr, max_xfer) != 0)
        return 1;
    printf("wrote %u blocks (%zu bytes) at LBA 0-%u\n", nr, len, nr - 1);
    memset(r, 0, len);
    if (rw_blocks(d, ns, NVME_IO_READ, rbuf, nr, max_xfer) != 0)
        return 1;
    for (size_t i = 0; i < len; i++) {
        if (r[i] != w[i])
            return fail("verify: LBA %zu byte %zu: wrote %02x, read %02x",
                        i / bs, i % bs, w[i], r[i]);
    }
    /* The block's first repetition of its pattern line. */
    id_str(first, r, sizeof(first) - 1);
    if (strchr(first, '|') != NULL)
        strchr(first, '|')[1] = '\0';
    printf("read them back: verified %u blocks; LBA 0 holds \"%s\"...\n", nr,
           first);
    return 0;
}

/* ---------------- random reads ---------------- */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* QD32 4 KiB random reads for secs: keep the queue full, reap by phase. */
static int random_reads(struct nvd *d, const struct nvd_ns *ns, double secs)
{
    uint32_t nlb = RAND_XFER >> ns->lba_shift;
    uint64_t slots = ns->nsze / (nlb ? nlb : 1), seed = 0x2545f4914f6cdd1dull;
    uint64_t bufs = nvd_alloc(d, (size_t)RAND_QD * RAND_XFER, NVD_PAGE);
    uint64_t t0, end, t, ios = 0;
    uint16_t buf_of[IO_QSIZE], free_buf[RAND_QD];
    unsigned nr_free = 0, inflight = 0;
    struct nvme_cqe cqe[RAND_QD];

    if (ns->lba_shift > 12 || slots == 0 || bufs == 0)
        return fail("cannot run 4 KiB reads on namespace %u", ns->nsid);
    for (unsigned i = 0; i < RAND_QD; i++)
        free_buf[nr_free++] = (uint16_t)i;
    t0 = t = now_ns();
    end = t0 + (uint64_t)(secs * 1e9);
    do {
        unsigned queued = 0;
        int n;

        while (t < end && nr_free > 0) {
            unsigned b = free_buf[--nr_free];
            uint64_t lba = (xorshift(&seed) % slots) * nlb;
            int cid = nvd_submit_rw(d, 1, NVME_IO_READ, ns->nsid, lba, nlb,
                                    bufs + (uint64_t)b * RAND_XFER, RAND_XFER);

            if (cid < 0 || cid >= (int)IO_QSIZE)
                return fail("submit: %s", why(cid < 0 ? cid : -EPROTO));
            buf_of[cid] = (uint16_t)b;
            queued++;
        }
        if (queued > 0) {
            int rc = nvd_ring(d, 1);

            if (rc < 0)
                return fail("doorbell: %s", why(rc));
            inflight += queued;
        }
        /* Spins on the phase tag a little, then yields: the device may
         * need this CPU (its poller, in polled mode). */
        n = nvd_reap(d, 1, cqe, RAND_QD, d->o.timeout_ms);
        if (n < 0)
            return fail("reap: %s", why(n));
        if (n == 0)
            return fail("no completion in %d ms", d->o.timeout_ms);
        for (int i = 0; i < n; i++) {
            if (NVME_CQE_ST(cqe[i].status) != 0)
                return fail("random read: %s", why(NVME_CQE_ST(cqe[i].status)));
            if (cqe[i].cid < IO_QSIZE)
                free_buf[nr_free++] = buf_of[cqe[i].cid];
        }
        inflight -= (unsigned)n;
        ios += (unsigned)n;
        t = now_ns();
    } while (inflight > 0 || t < end);
    printf("random 4 KiB reads at QD%u for %.1f s: %.0f IOPS, %.1f MB/s\n",
           RAND_QD, (double)(t - t0) / 1e9, (double)ios * 1e9 / (double)(t - t0),
           (double)ios * RAND_XFER * 1e3 / (double)(t - t0));
    return 0;
}

/* ---------------- demo ---------------- */

static int demo(const char *sock, unsigned blocks, double secs)
{
    struct nvd_opts o = {
        .sock = sock,
        .mem_size = 16 * MIB,
        .db = NVD_DB_AUTO,
        .irq = NVD_IRQ_MSIX,
        .nr_io_queues = 1,
        .io_qsize = IO_QSIZE,
        .io_cq_size = IO_CQ_SIZE,
        /* Reap by the phase tag: the I/O queue needs no interrupt, and
         * the CQ head can be reported in batches. */
        .poll_queues = true,
        .cq_db_batch = IO_CQ_SIZE / 2,
    };
    struct nvd *d;
    uint32_t csts;
    int rc, err = 1;

    rc = nvd_open(&d, &o);
    if (rc < 0)
        return fail("cannot connect to %s: %s%s", sock, why(rc),
                    rc == -ENOENT || rc == -ECONNREFUSED
                        ? " (is the nvme device running?)" : "");
    printf("connected to %s; doorbells: %s\n", sock, db_mode_name(d->o.db));
    rc = nvd_bringup(d);
    if (rc < 0) {
        fail("bring-up failed: %s", why(rc));
        nvd_close(d);
        return 1;
    }
    printf("controller enabled: NVMe %u.%u, up to %u entries a queue, "
           "%u I/O queue pair(s)\n", d->vs >> 16, (d->vs >> 8) & 0xff,
           NVME_CAP_MQES(d->cap) + 1, d->nr_ioq);
    print_ctrl(d);
    if (d->nr_ns == 0)
        fail("the controller has no active namespace");
    else if (print_ns(d, &d->ns[0]) == 0 &&
             write_verify(d, &d->ns[0], blocks) == 0 &&
             (secs == 0 || random_reads(d, &d->ns[0], secs) == 0))
        err = 0;
    /* Shut down on failure too: the device should not see a dirty stop. */
    rc = nvd_shutdown(d);
    if (rc != 0) {
        fail("shutdown: %s", why(rc));
        err = 1;
    } else if (err == 0 && nvd_read32(d, NVME_REG_CSTS, &csts) == 0) {
        printf("controller shut down cleanly (CSTS %#x: shutdown complete)\n",
               csts);
    }
    nvd_close(d);
    return err;
}

int main(int argc, char **argv)
{
    unsigned long blocks = DEFAULT_BLOCKS;
    double secs = 1.0;
    char *end;

    if (argc > 0 && argv[0] != NULL) {
        const char *slash = strrchr(argv[0], '/');

        prog = slash != NULL ? slash + 1 : argv[0];
    }
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 3 || strcmp(argv[2], "demo") != 0) {
        usage(stderr);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) {
            errno = 0;
            blocks = strtoul(argv[++i], &end, 0);
            if (errno != 0 || *end != '\0' || blocks == 0 ||
                blocks > MAX_BLOCKS) {
                fprintf(stderr, "%s: --blocks takes 1 to %u\n", prog,
                        MAX_BLOCKS);
                return 2;
            }
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            secs = strtod(argv[++i], &end);
            if (*end != '\0' || !(secs >= 0 && secs <= 60)) {
                fprintf(stderr, "%s: --seconds takes 0 to 60\n", prog);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    return demo(argv[1], (unsigned)blocks, secs);
}
