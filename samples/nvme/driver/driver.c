/*
 * driver.c - the life cycle side of the test driver: connecting, guest
 * memory and DMA regions, doorbell access, interrupt fds, registers, and
 * the Linux bring-up, reset and shutdown sequences.  See driver.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

#define P NVD_PAGE
#define MIB (1024u * 1024u)
#define GUEST_IOVA 0x40000000ull        /* not 0: offsets are not IOVAs */
#define FDLESS_GAP 0x10000000ull
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

/* ---------------- registers ---------------- */

int nvd_read32(struct nvd *d, uint32_t off, uint32_t *v)
{
    return muc_region_read(d->c, 0, off, v, 4);
}

int nvd_write32(struct nvd *d, uint32_t off, uint32_t v)
{
    return muc_region_write(d->c, 0, off, &v, 4);
}

int nvd_wait_csts(struct nvd *d, uint32_t mask, uint32_t want, int timeout_ms)
{
    struct timespec nap = { 0, 1000000 };

    for (int waited = 0;; waited++) {
        uint32_t csts;
        int rc = nvd_read32(d, NVME_REG_CSTS, &csts);

        if (rc < 0)
            return rc;
        if (csts == 0xffffffff)
            return -ENODEV;     /* what Linux calls "device removed" */
        if ((csts & mask) == want)
            return 0;
        if ((csts & NVME_CSTS_CFS) && !(mask & NVME_CSTS_CFS))
            return -EIO;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        nanosleep(&nap, NULL);
    }
}

/* ---------------- guest memory ---------------- */

uint64_t nvd_alloc(struct nvd *d, size_t len, size_t align)
{
    size_t off = (d->bump + align - 1) & ~(align - 1);

    if (len > d->o.mem_size || off > d->o.mem_size - len)
        return 0;
    d->bump = off + len;
    memset(d->mem + off, 0, len);
    return d->mem_iova + off;
}

void *nvd_va(struct nvd *d, uint64_t iova)
{
    if (iova >= d->mem_iova && iova - d->mem_iova < d->o.mem_size)
        return d->mem + (iova - d->mem_iova);
    if (d->fdless != NULL && iova >= d->fdless_iova &&
        iova - d->fdless_iova < d->o.fdless_size)
        return d->fdless + (iova - d->fdless_iova);
    return NULL;
}

uint64_t nvd_region_iova(const struct nvd *d, unsigned i)
{
    return d->mem_iova + (uint64_t)i * (d->o.mem_size / d->o.nr_regions);
}

static int guest_memory(struct nvd *d)
{
    size_t per = d->o.mem_size / d->o.nr_regions;
    int rc;

    if (per == 0 || per % P || per * d->o.nr_regions != d->o.mem_size)
        return -EINVAL;
    if (d->o.mem_path != NULL)
        d->memfd = open(d->o.mem_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                        0600);
    else
        d->memfd = memfd_create("nvd-guest", MFD_CLOEXEC);
    if (d->memfd < 0)
        return -errno;
    if (ftruncate(d->memfd, (off_t)d->o.mem_size) < 0)
        return -errno;
    d->mem = mmap(NULL, d->o.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  d->memfd, 0);
    if (d->mem == MAP_FAILED) {
        d->mem = NULL;
        return -errno;
    }
    d->mem_iova = GUEST_IOVA;
    /* Adjacent regions: a buffer may run from one into the next. */
    for (unsigned i = 0; i < d->o.nr_regions; i++) {
        rc = muc_dma_map(d->c, d->mem_iova + i * per, per, d->memfd, i * per,
                         MUC_DMA_READ | MUC_DMA_WRITE);
        if (rc < 0)
            return rc;
    }
    if (d->o.fdless_size == 0)
        return 0;
    d->fdless = aligned_alloc(P, d->o.fdless_size);
    if (d->fdless == NULL)
        return -ENOMEM;
    memset(d->fdless, 0, d->o.fdless_size);
    d->fdless_iova = d->mem_iova + d->o.mem_size + FDLESS_GAP;
    return muc_dma_map_mem(d->c, d->fdless_iova, d->o.fdless_size, d->fdless,
                           MUC_DMA_READ | MUC_DMA_WRITE);
}

/* ---------------- doorbells and interrupts ---------------- */

static int map_doorbells(struct nvd *d)
{
    struct muc_region_info ri;
    uint64_t aoff = 0, asize;
    void *p;
    int rc;

    rc = muc_region_info(d->c, 0, &ri);
    if (rc < 0)
        return rc;
    if (!(ri.flags & MUC_REGION_MMAP) || ri.fd < 0) {
        if (ri.fd >= 0)
            close(ri.fd);
        return -ENOTSUP;
    }
    asize = ri.size;
    for (unsigned i = 0; i < ri.nr_sparse; i++) {
        aoff = ri.sparse[i].offset;
        asize = ri.sparse[i].size;
        if (aoff <= NVME_REG_DBS && NVME_REG_DBS < aoff + asize)
            break;
        asize = 0;
    }
    if (asize == 0) {
        close(ri.fd);
        return -ENOTSUP;
    }
    p = mmap(NULL, asize, PROT_READ | PROT_WRITE, MAP_SHARED, ri.fd,
             (off_t)(ri.offset + aoff));
    rc = p == MAP_FAILED ? -errno : 0;
    close(ri.fd);
    if (rc < 0)
        return rc;
    d->db_map = p;
    d->db_map_len = asize;
    d->db = (uint32_t *)((uint8_t *)p + (NVME_REG_DBS - aoff));
    return 0;
}

static int get_ioeventfds(struct nvd *d)
{
    struct muc_ioeventfd io[2 * (NVD_MAX_IOQ + 1)];
    int n = muc_region_io_fds(d->c, 0, io, 2 * (NVD_MAX_IOQ + 1));

    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        uint64_t idx = (io[i].offset - NVME_REG_DBS) / 4;

        if (io[i].offset < NVME_REG_DBS || idx >= 2 * (NVD_MAX_IOQ + 1)) {
            close(io[i].fd);
            continue;
        }
        d->iofd[idx] = io[i].fd;
    }
    return n > 0 ? 0 : -ENOTSUP;
}

/* NVD_DB_AUTO: the nvme sample shares its doorbell page only when it
 * polls it or reads it on ioeventfd kicks; the kicks say which. */
static int pick_doorbells(struct nvd *d)
{
    int rc = map_doorbells(d);

    if (rc == -ENOTSUP) {
        d->o.db = NVD_DB_TRAPPED;
        return 0;
    }
    if (rc < 0)
        return rc;
    d->o.db = get_ioeventfds(d) == 0 ? NVD_DB_IOEVENTFD : NVD_DB_POLLED;
    return 0;
}

static int irq_fds(struct nvd *d)
{
    d->nr_irqfd = d->o.irq == NVD_IRQ_MSIX ? d->o.nr_io_queues + 1 : 1;
    for (unsigned i = 0; i < d->nr_irqfd; i++) {
        d->irqfd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->irqfd[i] < 0)
            return -errno;
    }
    return 0;
}

int nvd_wait_irq(struct nvd *d, unsigned vector, int timeout_ms)
{
    int64_t n;

    if (vector >= d->nr_irqfd)
        vector = 0;
    n = muc_eventfd_wait(d->irqfd[vector], timeout_ms);
    if (n <= 0)
        return (int)n;
    d->irqs_seen += (uint64_t)n;
    /* INTx is automasked after each interrupt: end of interrupt. */
    if (d->o.irq == NVD_IRQ_INTX)
        muc_irq_mask(d->c, NVD_IRQ_INTX_INDEX, 0, 1, false);
    return 1;
}

/* ---------------- open / close ---------------- */

static void defaults(struct nvd_opts *o)
{
    if (o->mem_size == 0)
        o->mem_size = 64 * MIB;
    if (o->nr_regions == 0)
        o->nr_regions = 2;
    if (o->nr_io_queues == 0)
        o->nr_io_queues = 1;
    if (o->nr_io_queues > NVD_MAX_IOQ)
        o->nr_io_queues = NVD_MAX_IOQ;
    if (o->io_qsize == 0)
        o->io_qsize = 64;
    if (o->io_cq_size == 0)
        o->io_cq_size = o->io_qsize;
    if (o->admin_qsize == 0)
        o->admin_qsize = 32;
    if (o->timeout_ms == 0)
        o->timeout_ms = 5000;
}

int nvd_open(struct nvd **out, const struct nvd_opts *o)
{
    struct muc_opts mo = { .max_msg_fds = 2 * (NVD_MAX_IOQ + 1) };
    struct nvd *d = calloc(1, sizeof(*d));
    int rc;

    *out = NULL;
    if (d == NULL)
        return -ENOMEM;
    if (o->qemu_like) {
        mo.qemu_like = true;
        mo.max_msg_fds = 0;     /* QEMU's 16 */
    }
    d->o = *o;
    defaults(&d->o);
    d->memfd = -1;
    for (unsigned i = 0; i < 2 * (NVD_MAX_IOQ + 1); i++)
        d->iofd[i] = -1;
    for (unsigned i = 0; i <= NVD_MAX_IOQ; i++)
        d->irqfd[i] = -1;
    rc = muc_connect(&d->c, d->o.sock, &mo);
    if (rc == 0)
        rc = guest_memory(d);
    if (rc == 0 && d->o.db == NVD_DB_AUTO) {
        rc = pick_doorbells(d);
    } else if (rc == 0 && d->o.db != NVD_DB_TRAPPED) {
        rc = map_doorbells(d);
        if (rc == 0 && d->o.db == NVD_DB_IOEVENTFD)
            rc = get_ioeventfds(d);
    }
    if (rc == 0)
        rc = irq_fds(d);
    if (rc == 0) {
        /* Driver-owned memory: admin queues, PRP lists, a scratch page. */
        d->aq.sq_iova = nvd_alloc(d, (size_t)d->o.admin_qsize * 64, P);
        d->aq.cq_iova = nvd_alloc(d, (size_t)d->o.admin_qsize * 16, P);
        d->aq.prp_iova = nvd_alloc(d, (size_t)d->o.admin_qsize * 2 * P, P);
        d->scratch = nvd_alloc(d, 2 * P, P);
        d->aq.free_cid = calloc(d->o.admin_qsize, sizeof(uint16_t));
        d->aq.sq = nvd_va(d, d->aq.sq_iova);
        d->aq.cq = nvd_va(d, d->aq.cq_iova);
        d->aq.sq_cap = d->aq.cq_cap = d->aq.slots = d->o.admin_qsize;
        if (d->scratch == 0 || d->aq.free_cid == NULL)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        nvd_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void nvd_close(struct nvd *d)
{
    if (d == NULL)
        return;
    if (d->c != NULL)
        muc_close(d->c);
    if (d->db_map != NULL)
        munmap(d->db_map, d->db_map_len);
    for (unsigned i = 0; i < 2 * (NVD_MAX_IOQ + 1); i++) {
        if (d->iofd[i] >= 0)
            close(d->iofd[i]);
    }
    for (unsigned i = 0; i <= NVD_MAX_IOQ; i++) {
        if (d->irqfd[i] >= 0)
            close(d->irqfd[i]);
        free(d->ioq[i].free_cid);
    }
    free(d->aq.free_cid);
    if (d->mem != NULL)
        munmap(d->mem, d->o.mem_size);
    if (d->memfd >= 0)
        close(d->memfd);
    free(d->fdless);
    free(d);
}

/* ---------------- bring-up, reset, shutdown ---------------- */

static int ready_timeout(const struct nvd *d)
{
    int ms = (int)(NVME_CAP_TO(d->cap) + 1) * 500;

    return ms > d->o.timeout_ms ? ms : d->o.timeout_ms;
}

static void forget_queues(struct nvd *d)
{
    d->aq.live = false;
    for (unsigned i = 0; i <= NVD_MAX_IOQ; i++)
        d->ioq[i].live = false;
    d->nr_ioq = 0;
    d->nr_aer = 0;      /* a reset drops them without completions */
}

int nvd_disable(struct nvd *d)
{
    uint32_t cc;
    int rc = nvd_read32(d, NVME_REG_CC, &cc);

    if (rc == 0)
        rc = nvd_write32(d, NVME_REG_CC, cc & ~(NVME_CC_EN | NVME_CC_SHN_MASK));
    if (rc == 0)
        rc = nvd_wait_csts(d, NVME_CSTS_RDY, 0, ready_timeout(d));
    forget_queues(d);
    return rc;
}

/* Steps 1-6 of the Linux probe: PCI enable, one vector, CAP/VS, disable,
 * admin queue registers, enable. */
static int enable_ctrl(struct nvd *d)
{
    uint32_t lo, hi, csts, cmbsz, cc;
    uint16_t cmd;
    int rc;

    if ((rc = muc_config_read16(d->c, PCI_COMMAND, &cmd)) < 0 ||
        (rc = muc_config_write16(d->c, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY |
                                 PCI_COMMAND_MASTER)) < 0 ||
        (rc = nvd_read32(d, NVME_REG_CSTS, &csts)) < 0)
        return rc;
    if (csts == 0xffffffff)
        return -ENODEV;
    rc = muc_irq_set_eventfds(d->c, d->o.irq == NVD_IRQ_MSIX ?
                              NVD_IRQ_MSIX_INDEX : NVD_IRQ_INTX_INDEX,
                              0, 1, d->irqfd);
    if (rc < 0)
        return rc;
    if ((rc = nvd_read32(d, NVME_REG_CAP, &lo)) < 0 ||
        (rc = nvd_read32(d, NVME_REG_CAP + 4, &hi)) < 0 ||
        (rc = nvd_read32(d, NVME_REG_CMBSZ, &cmbsz)) < 0 ||
        (rc = nvd_read32(d, NVME_REG_VS, &d->vs)) < 0)
        return rc;
    d->cap = (uint64_t)hi << 32 | lo;
    if (NVME_CAP_MPSMIN(d->cap) != 0)
        return -ENOTSUP;
    if ((rc = nvd_disable(d)) < 0)
        return rc;
    nvd__queue_init(&d->aq, 0, d->o.admin_qsize, d->o.admin_qsize);
    if ((rc = nvd_write32(d, NVME_REG_AQA, (d->o.admin_qsize - 1) * 0x10001u)) < 0 ||
        (rc = nvd_write32(d, NVME_REG_ASQ, (uint32_t)d->aq.sq_iova)) < 0 ||
        (rc = nvd_write32(d, NVME_REG_ASQ + 4, (uint32_t)(d->aq.sq_iova >> 32))) < 0 ||
        (rc = nvd_write32(d, NVME_REG_ACQ, (uint32_t)d->aq.cq_iova)) < 0 ||
        (rc = nvd_write32(d, NVME_REG_ACQ + 4, (uint32_t)(d->aq.cq_iova >> 32))) < 0)
        return rc;
    /* Newer kernels: fields first with EN = 0, read back, then enable. */
    if ((rc = nvd_write32(d, NVME_REG_CC, NVME_CC_LINUX)) < 0 ||
        (rc = nvd_read32(d, NVME_REG_CC, &cc)) < 0)
        return rc;
    if (cc != NVME_CC_LINUX)
        return -EIO;
    if ((rc = nvd_write32(d, NVME_REG_CC, NVME_CC_LINUX | NVME_CC_EN)) < 0 ||
        (rc = nvd_wait_csts(d, NVME_CSTS_RDY, NVME_CSTS_RDY, ready_timeout(d))) < 0)
        return rc;
    d->aq.live = true;
    return 0;
}

static int io_queues(struct nvd *d)
{
    uint32_t want = d->o.nr_io_queues - 1, dw0;
    unsigned n;
    int st;

    st = nvd_set_features(d, NVME_FEAT_NUM_QUEUES, want | want << 16, &dw0);
    if (st != 0)
        return st < 0 ? st : -EIO;
    n = (dw0 & 0xffff) < (dw0 >> 16) ? (dw0 & 0xffff) + 1 : (dw0 >> 16) + 1;
    if (n > d->o.nr_io_queues)
        n = d->o.nr_io_queues;
    if (d->o.irq == NVD_IRQ_MSIX) {
        int rc = muc_irq_set_eventfds(d->c, NVD_IRQ_MSIX_INDEX, 1, n,
                                      d->irqfd + 1);

        if (rc < 0)
            return rc;
    }
    /* Like Linux: keep what could be created. */
    for (unsigned q = 1; q <= n; q++) {
        if (nvd_create_qpair(d, (uint16_t)q, d->o.io_qsize, d->o.io_cq_size) != 0)
            break;
        d->nr_ioq = q;
    }
    return d->nr_ioq > 0 ? 0 : -EIO;
}

static int scan_namespaces(struct nvd *d)
{
    uint8_t list[4096], id[4096];
    int st;

    st = nvd_identify(d, NVME_CNS_NS_ACTIVE_LIST, 0, list);
    if (st != 0)
        return st < 0 ? st : -EIO;
    d->nr_ns = 0;
    for (unsigned i = 0; i < 1024 && d->nr_ns < NVD_MAX_NS; i++) {
        uint32_t nsid, lbaf;
        uint64_t ncap;
        struct nvd_ns *ns = &d->ns[d->nr_ns];

        memcpy(&nsid, list + 4 * i, 4);
        if (nsid == 0)
            break;
        st = nvd_identify(d, NVME_CNS_NS_DESC_LIST, nsid, NULL);
        if (st < 0)
            return st;
        st = nvd_identify(d, NVME_CNS_NS, nsid, id);
        if (st != 0)
            return st < 0 ? st : -EIO;
        memcpy(&ncap, id + NVME_IDN_NCAP, 8);
        if (ncap == 0)
            continue;
        memcpy(&ns->nsze, id + NVME_IDN_NSZE, 8);
        memcpy(&lbaf, id + NVME_IDN_LBAF0 + 4 * (id[NVME_IDN_FLBAS] & 0xf), 4);
        ns->lba_shift = (lbaf >> 16) & 0xff;
        ns->nsid = nsid;
        d->nr_ns++;
    }
    return 0;
}

int nvd_bringup(struct nvd *d)
{
    uint8_t buf[4096];
    uint32_t oaes;
    int rc, st;

    rc = enable_ctrl(d);
    if (rc < 0)
        return rc;
    st = nvd_identify(d, NVME_CNS_CTRL, 0, d->idctrl);
    if (st != 0)
        return st < 0 ? st : -EIO;
    /* Tolerated steps, as Linux tolerates them. */
    if (d->idctrl[NVME_IDC_LPA] & 0x2)
        nvd_get_log(d, NVME_LOG_CMD_EFFECTS, 0, buf, 4096);
    nvd_identify(d, NVME_CNS_CS_CTRL, 0, NULL);
    nvd_get_log(d, NVME_LOG_SMART, 0xffffffff, buf, 512);
    rc = io_queues(d);
    if (rc < 0)
        return rc;
    memcpy(&oaes, d->idctrl + NVME_IDC_OAES, 4);
    if (oaes != 0)
        nvd_set_features(d, NVME_FEAT_ASYNC_EVENT, oaes, NULL);
    rc = nvd_aer_submit(d);
    if (rc < 0)
        return rc;
    return scan_namespaces(d);
}

int nvd_reset(struct nvd *d)
{
    int rc = nvd_disable(d);

    return rc < 0 ? rc : nvd_bringup(d);
}

int nvd_shutdown(struct nvd *d)
{
    uint32_t cc;
    int rc;

    /* Linux: all SQs, then all CQs. */
    for (unsigned q = 1; q <= NVD_MAX_IOQ; q++) {
        struct nvme_sqe cmd = { .opc = NVME_ADM_DELETE_SQ, .cdw10 = q };

        if (d->ioq[q].live && (rc = nvd_exec(d, 0, &cmd, NULL, NULL)) != 0)
            return rc < 0 ? rc : -EIO;
    }
    for (unsigned q = 1; q <= NVD_MAX_IOQ; q++) {
        struct nvme_sqe cmd = { .opc = NVME_ADM_DELETE_CQ, .cdw10 = q };

        if (d->ioq[q].live && (rc = nvd_exec(d, 0, &cmd, NULL, NULL)) != 0)
            return rc < 0 ? rc : -EIO;
        d->ioq[q].live = false;
    }
    d->nr_ioq = 0;
    if ((rc = nvd_read32(d, NVME_REG_CC, &cc)) < 0 ||
        (rc = nvd_write32(d, NVME_REG_CC,
                          (cc & ~NVME_CC_SHN_MASK) | NVME_CC_SHN_NORMAL)) < 0)
        return rc;
    return nvd_wait_csts(d, NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_CMPLT,
                         d->o.timeout_ms);
}

/* ---------------- live migration ---------------- */

/*
 * What a VMM does on the destination before it runs the device: the same
 * guest memory (our fds, at the same addresses), memory and bus master on,
 * the interrupt fds.  Queue state and registers come in the stream.
 */
int nvd_attach(struct nvd *d, muc_t *c)
{
    size_t per = d->o.mem_size / d->o.nr_regions;
    uint16_t cmd;
    int rc;

    for (unsigned i = 0; i < d->o.nr_regions; i++) {
        rc = muc_dma_map(c, d->mem_iova + i * per, per, d->memfd, i * per,
                         MUC_DMA_READ | MUC_DMA_WRITE);
        if (rc < 0)
            return rc;
    }
    if (d->fdless != NULL &&
        (rc = muc_dma_map_mem(c, d->fdless_iova, d->o.fdless_size, d->fdless,
                              MUC_DMA_READ | MUC_DMA_WRITE)) < 0)
        return rc;
    if ((rc = muc_config_read16(c, PCI_COMMAND, &cmd)) < 0 ||
        (rc = muc_config_write16(c, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY |
                                 PCI_COMMAND_MASTER)) < 0)
        return rc;
    return muc_irq_set_eventfds(c, d->o.irq == NVD_IRQ_MSIX ?
                                NVD_IRQ_MSIX_INDEX : NVD_IRQ_INTX_INDEX,
                                0, d->nr_irqfd, d->irqfd);
}

int nvd_migrate(struct nvd *d, muc_t *c, const struct muc_migrate_opts *mo,
                struct muc_migrate_stats *stats)
{
    int rc;

    if (d->o.db != NVD_DB_TRAPPED)
        return -ENOTSUP;
    rc = nvd_attach(d, c);
    if (rc == 0)
        rc = muc_migrate(d->c, c, mo, stats);
    if (rc < 0)
        return rc;
    nvd_adopt(d, c);
    return 0;
}

void nvd_adopt(struct nvd *d, muc_t *c)
{
    muc_close(d->c);
    d->c = c;
}
