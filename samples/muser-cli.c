/*
 * muser-cli - poke at a vfio-user device from the command line.
 *
 *   muser-cli SOCKET info
 *   muser-cli SOCKET read REGION OFFSET [COUNT]
 *   muser-cli SOCKET write REGION OFFSET VALUE [WIDTH]
 *   muser-cli SOCKET write REGION OFFSET hex:BYTES
 *
 * "info" lists regions and interrupts and decodes the PCI config header
 * roughly as `lspci -vv` does.  Everything comes from the server, which
 * need not be well behaved: pointers in config space are bounds-checked
 * and the capability walk is bounded.
 *
 * Exit status: 0 success, 1 error, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "muser-client.h"

#define EXIT_USAGE 2
#define CFG_REGION 7u
#define CFG_STD 256u            /* the part of config space we decode */
#define MAX_RW (16u << 20)

static const char *prog = "muser-cli";

static void usage(void)
{
    fprintf(stderr,
            "usage: %s SOCKET info\n"
            "       %s SOCKET read REGION OFFSET [COUNT]\n"
            "       %s SOCKET write REGION OFFSET VALUE [WIDTH]\n"
            "       %s SOCKET write REGION OFFSET hex:BYTES\n"
            "REGION: a number, bar0..bar5, rom, config (cfg) or vga.\n"
            "WIDTH: 1, 2, 4 or 8 bytes (default 4).  COUNT defaults to 4.\n",
            prog, prog, prog, prog);
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

/* ---------------- names ---------------- */

static const char *region_name(uint32_t idx, char *buf, size_t len)
{
    static const char *const names[] = {
        "BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA",
    };

    if (idx < sizeof(names) / sizeof(names[0]))
        return names[idx];
    snprintf(buf, len, "REGION%" PRIu32, idx);
    return buf;
}

static bool parse_u64(const char *s, uint64_t *v)
{
    char *end;

    if (*s == '\0' || *s == '-')
        return false;
    errno = 0;
    *v = strtoull(s, &end, 0);
    return errno == 0 && *end == '\0';
}

static bool parse_region(const char *s, uint32_t *idx)
{
    uint64_t v;

    if (strncasecmp(s, "bar", 3) == 0 && s[3] >= '0' && s[3] <= '5' &&
        s[4] == '\0') {
        *idx = (uint32_t)(s[3] - '0');
        return true;
    }
    if (strcasecmp(s, "rom") == 0)
        *idx = 6;
    else if (strcasecmp(s, "config") == 0 || strcasecmp(s, "cfg") == 0)
        *idx = CFG_REGION;
    else if (strcasecmp(s, "vga") == 0)
        *idx = 8;
    else if (parse_u64(s, &v) && v <= UINT32_MAX)
        *idx = (uint32_t)v;
    else
        return false;
    return true;
}

static const char *class_name(uint32_t cls)
{
    static const struct {
        uint32_t code;      /* base<<16 | sub<<8 | prog-if */
        bool exact;         /* else prog-if ignored */
        const char *name;
    } table[] = {
        { 0x010802, true, "Non-Volatile memory controller: NVM Express" },
        { 0x0c0330, true, "USB controller: XHCI" },
        { 0x000000, false, "Non-VGA unclassified device" },
        { 0x010000, false, "SCSI storage controller" },
        { 0x010100, false, "IDE interface" },
        { 0x010600, false, "SATA controller" },
        { 0x010800, false, "Non-Volatile memory controller" },
        { 0x018000, false, "Mass storage controller" },
        { 0x020000, false, "Ethernet controller" },
        { 0x028000, false, "Network controller" },
        { 0x030000, false, "VGA compatible controller" },
        { 0x038000, false, "Display controller" },
        { 0x040100, false, "Multimedia audio controller" },
        { 0x040300, false, "Audio device" },
        { 0x050000, false, "RAM memory" },
        { 0x060000, false, "Host bridge" },
        { 0x060100, false, "ISA bridge" },
        { 0x060400, false, "PCI bridge" },
        { 0x068000, false, "Bridge" },
        { 0x070000, false, "Serial controller" },
        { 0x078000, false, "Communication controller" },
        { 0x088000, false, "System peripheral" },
        { 0x0c0300, false, "USB controller" },
        { 0x0c0500, false, "SMBus" },
        { 0x118000, false, "Signal processing controller" },
        { 0x120000, false, "Processing accelerators" },
        { 0xff0000, false, "Unassigned class" },
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        uint32_t mask = table[i].exact ? 0xffffff : 0xffff00;

        if ((cls & mask) == table[i].code)
            return table[i].name;
    }
    return "Unknown class";
}

/* lspci's sizes: the largest unit that divides evenly. */
static const char *size_str(uint64_t size, char *buf, size_t len)
{
    static const char units[] = " KMGTPE";
    unsigned u = 0;

    while (size >= 1024 && size % 1024 == 0 && u < sizeof(units) - 2) {
        size /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64, size);
    else
        snprintf(buf, len, "%" PRIu64 "%c", size, units[u]);
    return buf;
}

struct bit {
    uint16_t mask;
    const char *name;
};

static void print_bits(const char *label, uint16_t v, const struct bit *b,
                       size_t n)
{
    printf("\t%s:", label);
    for (size_t i = 0; i < n; i++)
        printf(" %s%c", b[i].name, (v & b[i].mask) ? '+' : '-');
}

/* ---------------- connection ---------------- */

static int connect_or_explain(muc_t **c, const char *path)
{
    struct stat st;
    int rc = muc_connect(c, path, NULL);

    if (rc == 0)
        return 0;
    if (rc == -ENOENT)
        return fail("no socket at %s \u2014 is the device running?", path);
    if (rc == -ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return fail("%s is not a vfio-user server: not a socket", path);
    if (rc == -ECONNREFUSED)
        return fail("nobody is listening on %s \u2014 is the device running?",
                    path);
    if (rc == -EPROTO)
        return fail("%s is not a vfio-user server: its answer to the "
                    "VERSION handshake is not vfio-user", path);
    if (rc == -ETIMEDOUT)
        return fail("%s is not a vfio-user server: no answer to the VERSION "
                    "handshake", path);
    return fail("cannot connect to %s: %s", path, strerror(-rc));
}

/* ---------------- info ---------------- */

static void print_region(muc_t *c, uint32_t i)
{
    struct muc_region_info ri;
    char nb[24];
    int rc = muc_region_info(c, i, &ri);

    if (rc < 0) {
        printf("  %-2" PRIu32 " %-8s error: %s\n", i, region_name(i, nb, sizeof(nb)),
               strerror(-rc));
        return;
    }
    printf("  %-2" PRIu32 " %-8s size 0x%-10" PRIx64 " %c%c%s", i,
           region_name(i, nb, sizeof(nb)), ri.size,
           (ri.flags & MUC_REGION_READ) ? 'R' : '-',
           (ri.flags & MUC_REGION_WRITE) ? 'W' : '-',
           (ri.flags & MUC_REGION_MMAP) ? " MMAP" : "");
    if (ri.size == 0)
        printf(" (absent)");
    if (ri.flags & MUC_REGION_MMAP)
        printf(" fd offset 0x%" PRIx64 "%s", ri.offset, ri.fd >= 0 ? "" : " (no fd)");
    if (ri.has_type)
        printf(" type %" PRIu32 "/%" PRIu32, ri.type, ri.subtype);
    printf("\n");
    for (unsigned k = 0; k < ri.nr_sparse; k++)
        printf("       sparse mmap [0x%" PRIx64 "-0x%" PRIx64 "]\n",
               ri.sparse[k].offset, ri.sparse[k].offset + ri.sparse[k].size - 1);
    if (ri.fd >= 0)
        close(ri.fd);
}

static void print_irqs(muc_t *c, uint32_t n)
{
    static const char *const names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

    printf("Interrupts:\n");
    for (uint32_t i = 0; i < n; i++) {
        struct muc_irq_info q;
        int rc = muc_irq_info(c, i, &q);

        printf("  %-2" PRIu32 " %-6s", i, i < 5 ? names[i] : "?");
        if (rc < 0) {
            printf(" error: %s\n", strerror(-rc));
            continue;
        }
        printf(" count %-4" PRIu32 "%s%s%s%s\n", q.count,
               (q.flags & 1) ? " eventfd" : "", (q.flags & 2) ? " maskable" : "",
               (q.flags & 4) ? " automasked" : "", (q.flags & 8) ? " noresize" : "");
    }
}

static uint16_t cfg16(const uint8_t *cfg, unsigned off)
{
    return (uint16_t)(cfg[off] | cfg[off + 1] << 8);
}

static uint32_t cfg32(const uint8_t *cfg, unsigned off)
{
    return (uint32_t)cfg16(cfg, off) | (uint32_t)cfg16(cfg, off + 2) << 16;
}

static void print_command_status(const uint8_t *cfg)
{
    static const struct bit cmd[] = {
        { 0x1, "I/O" }, { 0x2, "Mem" }, { 0x4, "BusMaster" },
        { 0x8, "SpecCycle" }, { 0x10, "MemWINV" }, { 0x20, "VGASnoop" },
        { 0x40, "ParErr" }, { 0x100, "SERR" }, { 0x200, "FastB2B" },
        { 0x400, "DisINTx" },
    };
    static const struct bit st[] = {
        { 0x10, "Cap" }, { 0x20, "66MHz" }, { 0x40, "UDF" },
        { 0x80, "FastB2B" }, { 0x100, "ParErr" },
    };
    static const struct bit st2[] = {
        { 0x800, ">TAbort" }, { 0x1000, "<TAbort" }, { 0x2000, "<MAbort" },
        { 0x4000, ">SERR" }, { 0x8000, "<PERR" }, { 0x8, "INTx" },
    };
    static const char *const devsel[] = { "fast", "medium", "slow", "??" };
    uint16_t status = cfg16(cfg, 6);

    print_bits("Control", cfg16(cfg, 4), cmd, sizeof(cmd) / sizeof(cmd[0]));
    printf("\n");
    print_bits("Status", status, st, sizeof(st) / sizeof(st[0]));
    printf(" DEVSEL=%s", devsel[(status >> 9) & 3]);
    for (size_t i = 0; i < sizeof(st2) / sizeof(st2[0]); i++)
        printf(" %s%c", st2[i].name, (status & st2[i].mask) ? '+' : '-');
    printf("\n");
}

static void print_bars(muc_t *c, const uint8_t *cfg)
{
    char sb[24];

    for (unsigned b = 0; b < 6; b++) {
        uint32_t lo = cfg32(cfg, 0x10 + 4 * b);
        bool io, b64, pf;
        uint64_t size, addr;
        int rc = muc_bar_size(c, b, &size, &io, &b64, &pf);

        if (rc < 0) {
            printf("\tRegion %u: cannot size: %s\n", b, strerror(-rc));
            continue;
        }
        if (size == 0)
            continue;
        if (io) {
            printf("\tRegion %u: I/O ports at ", b);
            if (lo & ~0x3u)
                printf("%" PRIx32, lo & ~0x3u);
            else
                printf("<unassigned>");
            printf(" [size=%s]\n", size_str(size, sb, sizeof(sb)));
            continue;
        }
        addr = lo & ~0xfu;
        if (b64)
            addr |= (uint64_t)cfg32(cfg, 0x14 + 4 * b) << 32;
        printf("\tRegion %u: Memory at ", b);
        if (addr)
            printf("%" PRIx64, addr);
        else
            printf("<unassigned>");
        printf(" (%s, %sprefetchable) [size=%s]\n", b64 ? "64-bit" : "32-bit",
               pf ? "" : "non-", size_str(size, sb, sizeof(sb)));
        if (b64)
            b++;        /* the upper half is not a BAR of its own */
    }
}

static void print_rom(muc_t *c, const uint8_t *cfg)
{
    struct muc_region_info ri;
    uint32_t rom = cfg32(cfg, 0x30);
    char sb[24];

    if (muc_region_info(c, 6, &ri) < 0 || ri.size == 0)
        return;
    if (ri.fd >= 0)
        close(ri.fd);
    printf("\tExpansion ROM at ");
    if (rom & ~0x7ffu)
        printf("%" PRIx32, rom & ~0x7ffu);
    else
        printf("<unassigned>");
    printf(" [%s] [size=%s]\n", (rom & 1) ? "enabled" : "disabled",
           size_str(ri.size, sb, sizeof(sb)));
}

static void print_cap(const uint8_t *cfg, unsigned p)
{
    static const char *const pcie_types[] = {
        "Endpoint", "Legacy Endpoint", "?", "?", "Root Port",
        "Upstream Port", "Downstream Port", "PCI-Express to PCI/PCI-X Bridge",
        "PCI/PCI-X to PCI-Express Bridge", "Root Complex Integrated Endpoint",
        "Root Complex Event Collector",
    };
    uint8_t id = cfg[p];
    uint16_t ctl = p + 3 < CFG_STD ? cfg16(cfg, p + 2) : 0;
    bool room8 = p + 12 <= CFG_STD;

    printf("\t\t[%02x] ", p);
    switch (id) {
    case 0x01:
        printf("Power Management version %u\n", ctl & 0x7);
        break;
    case 0x05:
        printf("MSI: Enable%c Count=%u/%u Maskable%c 64bit%c\n",
               (ctl & 1) ? '+' : '-', 1u << ((ctl >> 4) & 7),
               1u << ((ctl >> 1) & 7), (ctl & 0x100) ? '+' : '-',
               (ctl & 0x80) ? '+' : '-');
        break;
    case 0x09:
        printf("Vendor Specific Information: Len=%02x\n", p + 2 < CFG_STD ? cfg[p + 2] : 0);
        break;
    case 0x10: {
        unsigned type = (ctl >> 4) & 0xf;
        uint32_t devcap = p + 8 <= CFG_STD ? cfg32(cfg, p + 4) : 0;

        printf("Express (v%u) %s, FLReset%c\n", ctl & 0xf,
               type < sizeof(pcie_types) / sizeof(pcie_types[0]) ?
               pcie_types[type] : "Unknown type",
               (devcap & (1u << 28)) ? '+' : '-');
        break;
    }
    case 0x11:
        printf("MSI-X: Enable%c Count=%u Masked%c\n", (ctl & 0x8000) ? '+' : '-',
               (ctl & 0x7ff) + 1, (ctl & 0x4000) ? '+' : '-');
        if (room8) {
            uint32_t t = cfg32(cfg, p + 4), pba = cfg32(cfg, p + 8);

            printf("\t\t\tVector table: BAR=%u offset=%08x\n", t & 7, t & ~7u);
            printf("\t\t\tPBA: BAR=%u offset=%08x\n", pba & 7, pba & ~7u);
        }
        break;
    default:
        printf("Capability ID %#04x\n", id);
        break;
    }
}

/* Walk the list: at most 48 caps (they take 4 bytes each, past 0x40), no
 * pointer into the header, none twice. */
static void print_caps(const uint8_t *cfg)
{
    bool seen[CFG_STD / 4] = { false };
    unsigned p = cfg[0x34] & ~3u;

    if (!(cfg16(cfg, 6) & 0x10))
        return;
    printf("\tCapabilities:\n");
    for (int n = 0; p != 0 && n < 48; n++) {
        if (p < 0x40 || p > CFG_STD - 4) {
            printf("\t\t[%02x] <pointer out of range, list ends>\n", p);
            return;
        }
        if (seen[p / 4]) {
            printf("\t\t[%02x] <loop in capability list, list ends>\n", p);
            return;
        }
        seen[p / 4] = true;
        print_cap(cfg, p);
        p = cfg[p + 1] & ~3u;
    }
}

static int print_pci(muc_t *c)
{
    static const char pins[] = "?ABCD";
    struct muc_region_info ri;
    uint8_t cfg[CFG_STD] = { 0 };
    uint32_t cls;
    size_t n;
    int rc;

    rc = muc_region_info(c, CFG_REGION, &ri);
    if (rc == 0 && ri.fd >= 0)
        close(ri.fd);
    if (rc < 0 || ri.size < 64)
        return fail("no usable config space region: %s",
                    rc < 0 ? strerror(-rc) : "too small");
    n = ri.size < CFG_STD ? (size_t)ri.size : CFG_STD;
    rc = muc_region_read(c, CFG_REGION, 0, cfg, n);
    if (rc < 0)
        return fail("reading config space: %s", strerror(-rc));

    cls = cfg32(cfg, 8) >> 8;
    printf("\nPCI configuration:\n");
    printf("\t%s [%06x]", class_name(cls), cls);
    if (cfg[8])
        printf(" (rev %02x)", cfg[8]);
    printf("\n\tVendor %04x Device %04x\n", cfg16(cfg, 0), cfg16(cfg, 2));
    printf("\tSubsystem: %04x:%04x\n", cfg16(cfg, 0x2c), cfg16(cfg, 0x2e));
    print_command_status(cfg);
    if (cfg[0x3d])
        printf("\tInterrupt: pin %c routed to IRQ %u\n",
               cfg[0x3d] <= 4 ? pins[cfg[0x3d]] : '?', cfg[0x3c]);
    if ((cfg[0x0e] & 0x7f) == 0) {
        print_bars(c, cfg);
        print_rom(c, cfg);
    } else {
        printf("\tHeader type %02x: BARs not decoded\n", cfg[0x0e]);
    }
    print_caps(cfg);
    return 0;
}

static int cmd_info(muc_t *c)
{
    const struct muc_server_caps *sc = muc_server_caps(c);
    struct muc_device_info d;
    int rc = muc_device_info(c, &d);

    if (rc < 0)
        return fail("device info: %s", strerror(-rc));
    printf("Server: vfio-user %u.%u, max_msg_fds %" PRIu32
           ", max_data_xfer_size %" PRIu32 ", max_dma_maps %" PRIu32
           ", pgsizes 0x%" PRIx64 "%s\n", sc->major, sc->minor,
           sc->max_msg_fds, sc->max_data_xfer_size, sc->max_dma_maps,
           sc->pgsizes, sc->write_multiple ? ", write_multiple" : "");
    printf("Device: %s%s, %" PRIu32 " regions, %" PRIu32 " irq types\n",
           (d.flags & 2) ? "PCI" : "non-PCI",
           (d.flags & 1) ? ", reset supported" : "", d.num_regions, d.num_irqs);
    printf("Regions:\n");
    for (uint32_t i = 0; i < d.num_regions && i < 64; i++)
        print_region(c, i);
    if (d.num_regions > 64)
        printf("  ... %" PRIu32 " more not shown\n", d.num_regions - 64);
    print_irqs(c, d.num_irqs < 16 ? d.num_irqs : 16);
    if ((d.flags & 2) && d.num_regions > CFG_REGION)
        return print_pci(c);
    return 0;
}

/* ---------------- read / write ---------------- */

/* Make sure [off, off+count) is inside a region that allows the access. */
static int check_range(muc_t *c, uint32_t idx, const char *name, uint64_t off,
                       uint64_t count, bool write)
{
    struct muc_region_info ri;
    int rc = muc_region_info(c, idx, &ri);

    if (rc == -EINVAL)
        return fail("the device has no region %s", name);
    if (rc < 0)
        return fail("region %s: %s", name, strerror(-rc));
    if (ri.fd >= 0)
        close(ri.fd);
    if (ri.size == 0)
        return fail("region %s is not present", name);
    if (!(ri.flags & (write ? MUC_REGION_WRITE : MUC_REGION_READ)))
        return fail("region %s is not %s", name, write ? "writable" : "readable");
    if (off >= ri.size)
        return fail("offset 0x%" PRIx64 " is past the end of %s (size 0x%" PRIx64 ")",
                    off, name, ri.size);
    if (count > ri.size - off)
        return fail("0x%" PRIx64 " bytes at 0x%" PRIx64 " run past the end of %s "
                    "(size 0x%" PRIx64 ")", count, off, name, ri.size);
    return 0;
}

static void hexdump(uint64_t base, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        size_t k = n - i < 16 ? n - i : 16;

        printf("%08" PRIx64 ":", base + i);
        for (size_t j = 0; j < 16; j++) {
            if (j < k)
                printf(" %02x", p[i + j]);
            else
                printf("   ");
        }
        printf("  |");
        for (size_t j = 0; j < k; j++)
            putchar(p[i + j] >= 0x20 && p[i + j] < 0x7f ? p[i + j] : '.');
        printf("|\n");
    }
}

static int cmd_read(muc_t *c, uint32_t idx, const char *name, uint64_t off,
                    uint64_t count)
{
    uint8_t *buf;
    int rc;

    if (check_range(c, idx, name, off, count, false))
        return 1;
    buf = malloc(count);
    if (buf == NULL)
        return fail("out of memory");
    rc = muc_region_read(c, idx, off, buf, count);
    if (rc < 0) {
        free(buf);
        return fail("read of %s at 0x%" PRIx64 ": %s", name, off, strerror(-rc));
    }
    hexdump(off, buf, count);
    if (count == 1 || count == 2 || count == 4 || count == 8) {
        uint64_t v = 0;

        memcpy(&v, buf, count);     /* little endian, like the device */
        printf("value: 0x%0*" PRIx64 "\n", (int)count * 2, v);
    }
    free(buf);
    return 0;
}

/* "hex:0011aabb" -> bytes.  Returns the count, or 0 if malformed. */
static size_t parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);

    if (n == 0 || n % 2 || n / 2 > cap)
        return 0;
    for (size_t i = 0; i < n / 2; i++) {
        char pair[3] = { s[2 * i], s[2 * i + 1], 0 };
        char *end;

        out[i] = (uint8_t)strtoul(pair, &end, 16);
        if (*end != '\0' || pair[0] == '+' || pair[0] == '-' || pair[0] == ' ')
            return 0;
    }
    return n / 2;
}

static int cmd_write(muc_t *c, uint32_t idx, const char *name, uint64_t off,
                     const uint8_t *data, size_t count)
{
    int rc;

    if (check_range(c, idx, name, off, count, true))
        return 1;
    rc = muc_region_write(c, idx, off, data, count);
    if (rc < 0)
        return fail("write to %s at 0x%" PRIx64 ": %s", name, off, strerror(-rc));
    printf("wrote %zu byte%s to %s at 0x%" PRIx64 "\n", count,
           count == 1 ? "" : "s", name, off);
    return 0;
}

/* Parse the write arguments into bytes; false for a usage error. */
static bool write_args(int argc, char **argv, uint8_t *buf, size_t cap,
                       size_t *count)
{
    uint64_t v, width = 4;

    if (strncmp(argv[0], "hex:", 4) == 0) {
        *count = parse_hex(argv[0] + 4, buf, cap);
        if (*count == 0 || argc > 1)
            return false;
        return true;
    }
    if (!parse_u64(argv[0], &v) || (argc > 1 && !parse_u64(argv[1], &width)) ||
        argc > 2 || (width != 1 && width != 2 && width != 4 && width != 8) ||
        (width < 8 && v >> (8 * width) != 0)) {
        fprintf(stderr, "%s: VALUE must be a number that fits in WIDTH "
                "(1, 2, 4 or 8) bytes\n", prog);
        return false;
    }
    memcpy(buf, &v, width);
    *count = width;
    return true;
}

int main(int argc, char **argv)
{
    static uint8_t wbuf[4096];
    uint64_t off = 0, count = 4;
    const char *name = NULL;
    char nb[24];
    uint32_t idx = 0;
    size_t wlen = 0;
    muc_t *c;
    int rc;

    if (argc > 0 && argv[0] != NULL && strrchr(argv[0], '/') != NULL)
        prog = strrchr(argv[0], '/') + 1;
    if (argc < 3 || (strcmp(argv[2], "info") != 0 && strcmp(argv[2], "read") != 0 &&
                     strcmp(argv[2], "write") != 0)) {
        if (argc >= 3)
            fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[2]);
        usage();
        return EXIT_USAGE;
    }
    if (strcmp(argv[2], "info") == 0) {
        if (argc != 3) {
            usage();
            return EXIT_USAGE;
        }
    } else {
        bool rd = strcmp(argv[2], "read") == 0;

        if (argc < (rd ? 5 : 6) || (rd && argc > 6) || (!rd && argc > 7)) {
            usage();
            return EXIT_USAGE;
        }
        if (!parse_region(argv[3], &idx)) {
            fprintf(stderr, "%s: unknown region '%s'\n", prog, argv[3]);
            usage();
            return EXIT_USAGE;
        }
        name = region_name(idx, nb, sizeof(nb));
        if (!parse_u64(argv[4], &off)) {
            fprintf(stderr, "%s: bad offset '%s'\n", prog, argv[4]);
            return EXIT_USAGE;
        }
        if (rd && argc == 6 && (!parse_u64(argv[5], &count) || count == 0 ||
                                count > MAX_RW)) {
            fprintf(stderr, "%s: COUNT must be 1..%u\n", prog, MAX_RW);
            return EXIT_USAGE;
        }
        if (!rd && !write_args(argc - 5, argv + 5, wbuf, sizeof(wbuf), &wlen)) {
            usage();
            return EXIT_USAGE;
        }
    }

    if (connect_or_explain(&c, argv[1]))
        return 1;
    if (strcmp(argv[2], "info") == 0)
        rc = cmd_info(c);
    else if (strcmp(argv[2], "read") == 0)
        rc = cmd_read(c, idx, name, off, count);
    else
        rc = cmd_write(c, idx, name, off, wbuf, wlen);
    muc_close(c);
    return rc ? 1 : 0;
}
