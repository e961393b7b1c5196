/*
 * regs.c - BAR0: the controller registers (0h-FFFh) and, in trapped mode,
 * the doorbells (1000h-1FFFh); the CC.EN and CC.SHN handshakes; resets.
 *
 * Registers are 32 bits, CAP/ASQ/ACQ 64; both widths are accepted, and a
 * 64-bit write is two 32-bit writes, low half first, as Linux does it.
 * Enabling, disabling and shutting down complete synchronously, so CSTS
 * already tells the outcome when the host first reads it.
 *
 * All of this runs on the context thread and takes the controller lock,
 * which in polled mode pauses the poller for the duration.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nvme.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

void ctrl_log(const struct nvme_ctrl *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->opts.verbose)
        return;
    va_start(ap, fmt);
    fputs("nvme: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool ctrl_ready(const struct nvme_ctrl *c)
{
    /* Atomic: an I/O pass may set CFS meanwhile (ctrl_fatal). */
    return (__atomic_load_n(&c->csts, __ATOMIC_RELAXED) &
            (NVME_CSTS_RDY | NVME_CSTS_CFS | NVME_CSTS_SHST_MASK))
           == NVME_CSTS_RDY;
}

bool ctrl_running(const struct nvme_ctrl *c)
{
    return c->bme && !c->mig_stopped && ctrl_ready(c);
}

void ctrl_fatal(struct nvme_ctrl *c, const char *why)
{
    /* From an I/O pass too, which holds its poller's mutex only: other
     * pollers read CSTS meanwhile (ctrl_ready); every other write of it
     * holds the controller lock, when no I/O pass runs. */
    if (!(__atomic_fetch_or(&c->csts, NVME_CSTS_CFS, __ATOMIC_RELAXED) &
          NVME_CSTS_CFS))
        fprintf(stderr, "nvme: controller fatal status: %s\n", why);
}

void ctrl_init_regs(struct nvme_ctrl *c)
{
    c->cap = NVME_MQES | NVME_CAP_CQR | (uint64_t)NVME_CAP_TO_VAL << 24 |
             NVME_CAP_CSS_NVM;      /* DSTRD 0, MPSMIN = MPSMAX = 4 KiB */
    c->cc = c->csts = c->aqa = c->intms = 0;
    c->asq = c->acq = 0;
    c->page_size = NVME_PAGE_SIZE;
}

/* ---------------- handshakes ---------------- */

static void ctrl_enable(struct nvme_ctrl *c)
{
    uint32_t asqs = NVME_AQA_ASQS(c->aqa) + 1, acqs = NVME_AQA_ACQS(c->aqa) + 1;
    const char *bad = NULL;

    if (NVME_CC_MPS(c->cc) != 0)
        bad = "unsupported page size";
    else if (NVME_CC_CSS(c->cc) != 0)
        bad = "unsupported command set";
    else if (NVME_CC_AMS(c->cc) != 0)
        bad = "unsupported arbitration";
    else if (asqs < 2 || acqs < 2)
        bad = "admin queue too small";
    else if (c->asq == 0 || c->acq == 0 || ((c->asq | c->acq) & 0xfff))
        bad = "admin queue address not page aligned";
    if (bad != NULL) {
        ctrl_fatal(c, bad);
        return;
    }
    c->page_size = NVME_PAGE_SIZE << NVME_CC_MPS(c->cc);
    if (cq_create(c, 0, c->acq, acqs, true, 0) < 0) {
        ctrl_fatal(c, "admin CQ memory not mapped");
        return;
    }
    if (sq_create(c, 0, c->asq, asqs, 0) < 0) {
        cq_delete(c, 0);
        ctrl_fatal(c, "admin SQ memory not mapped");
        return;
    }
    if (c->opts.ioeventfd) {
        /* No kick will come from a client that did not take them: poll
         * the doorbell page it stores to instead (poller.c). */
        c->db_poll = !mu_region_ioeventfds_taken(c->ctx, MU_PCI_BAR0);
        ctrl_log(c, "doorbells: %s", c->db_poll
                 ? "ioeventfds not taken, polling the doorbell page"
                 : "ioeventfds");
    }
    c->csts = NVME_CSTS_RDY;
    ctrl_log(c, "enabled: admin SQ %u entries at %#llx, CQ %u at %#llx", asqs,
             (unsigned long long)c->asq, acqs, (unsigned long long)c->acq);
}

/*
 * Controller reset (EN 1->0): nothing in flight survives, queues and
 * outstanding AERs go without completions, features return to defaults.
 * A full reset (FLR, DEVICE_RESET) also clears the registers.
 */
static void ctrl_reset(struct nvme_ctrl *c, bool full)
{
    queues_delete_all(c);
    aen_reset(c);
    features_reset(c);
    intr_reset(c);
    if (c->db != NULL)
        memset(c->db, 0, NVME_PAGE_SIZE);
    c->csts = 0;
    if (full) {
        c->cc = c->aqa = c->intms = 0;
        c->asq = c->acq = 0;
    }
    ctrl_log(c, "%s reset", full ? "full" : "controller");
}

static void ctrl_shutdown(struct nvme_ctrl *c)
{
    c->csts = (c->csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_OCCUR;
    /* Nothing is in flight; fetching has stopped with SHST set.  What is
     * left is making completed writes durable. */
    for (unsigned i = 0; i < c->nr_ns; i++) {
        if (ns_flush(&c->ns[i]) < 0)
            fprintf(stderr, "nvme: namespace %u: flush at shutdown failed\n",
                    c->ns[i].nsid);
    }
    c->csts = (c->csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_CMPLT;
    ctrl_log(c, "shutdown complete");
}

static void cc_write(struct nvme_ctrl *c, uint32_t val)
{
    uint32_t old = c->cc;

    c->cc = val;
    if ((old & NVME_CC_EN) && !(val & NVME_CC_EN))
        ctrl_reset(c, false);
    else if (!(old & NVME_CC_EN) && (val & NVME_CC_EN))
        ctrl_enable(c);
    if ((val & NVME_CC_EN) && NVME_CC_SHN(val) && !NVME_CC_SHN(old))
        ctrl_shutdown(c);
}

/* ---------------- register file ---------------- */

static void reg_write32(struct nvme_ctrl *c, uint32_t off, uint32_t val)
{
    bool disabled = !(c->cc & NVME_CC_EN);

    switch (off) {
    case NVME_REG_INTMS:
        c->intms |= val;
        break;
    case NVME_REG_INTMC:
        c->intms &= ~val;
        intr_intms_changed(c);
        break;
    case NVME_REG_CC:
        cc_write(c, val);
        break;
    /* The admin queue registers only change while disabled. */
    case NVME_REG_AQA:
        if (disabled)
            c->aqa = val & 0x0fff0fff;
        break;
    case NVME_REG_ASQ:
    case NVME_REG_ASQ + 4:
    case NVME_REG_ACQ:
    case NVME_REG_ACQ + 4: {
        uint64_t *r = off < NVME_REG_ACQ ? &c->asq : &c->acq;
        unsigned shift = (off & 4) ? 32 : 0;

        if (disabled)
            *r = (*r & ~(0xffffffffull << shift)) | (uint64_t)val << shift;
        break;
    }
    default:
        break;      /* read-only or reserved: ignored */
    }
}

static void reg_image(const struct nvme_ctrl *c, uint8_t img[0x40])
{
    memset(img, 0, 0x40);
    put_le64(img + NVME_REG_CAP, c->cap);
    put_le32(img + NVME_REG_VS, 0x00010400);
    put_le32(img + NVME_REG_INTMS, c->intms);
    put_le32(img + NVME_REG_INTMC, c->intms);
    put_le32(img + NVME_REG_CC, c->cc);
    put_le32(img + NVME_REG_CSTS, c->csts);
    put_le32(img + NVME_REG_AQA, c->aqa);
    put_le64(img + NVME_REG_ASQ, c->asq);
    put_le64(img + NVME_REG_ACQ, c->acq);
}

static void regs_read(struct nvme_ctrl *c, uint8_t *buf, size_t count,
                      uint64_t offset)
{
    uint8_t img[0x40];

    memset(buf, 0, count);
    if (offset >= sizeof(img))
        return;
    ctrl_lock(c);
    reg_image(c, img);
    ctrl_unlock(c);
    if (count > sizeof(img) - offset)
        count = sizeof(img) - (size_t)offset;
    memcpy(buf, img + offset, count);
}

static void regs_write(struct nvme_ctrl *c, const uint8_t *buf, size_t count,
                       uint64_t offset)
{
    if ((count != 4 && count != 8) || (offset & 3)) {
        ctrl_log(c, "ignored %zu-byte register write at %#llx", count,
                 (unsigned long long)offset);
        return;
    }
    ctrl_lock(c);
    for (size_t i = 0; i < count; i += 4) {
        uint32_t v;

        memcpy(&v, buf + i, sizeof(v));
        reg_write32(c, (uint32_t)(offset + i), v);
    }
    ctrl_unlock(c);
}

static void doorbell_write(struct nvme_ctrl *c, const uint8_t *buf,
                           size_t count, uint64_t offset)
{
    uint32_t v;

    if (count != 4 || (offset & 3)) {
        ctrl_log(c, "ignored %zu-byte doorbell write at %#llx", count,
                 (unsigned long long)offset);
        return;
    }
    memcpy(&v, buf, sizeof(v));
    ctrl_lock(c);
    /* A shared page must agree, or a poller reading it would take the
     * stale value for a new write. */
    if (c->db != NULL)
        __atomic_store_n(&c->db[(offset - NVME_DB_PAGE) / 4], v,
                         __ATOMIC_RELEASE);
    db_write(c, (unsigned)(offset - NVME_DB_PAGE) / 4, v & 0xffff);
    ctrl_unlock(c);
}

ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count, uint64_t offset,
                    bool is_write)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    const uint8_t *cfg = mu_pci_config(ctx);

    /* Memory decoding off: the BAR does not answer (reads float high). */
    if (!(cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY)) {
        if (!is_write)
            memset(buf, 0xff, count);
        return (ssize_t)count;
    }
    if (offset < NVME_DB_PAGE) {
        if (is_write)
            regs_write(c, buf, count, offset);
        else
            regs_read(c, buf, count, offset);
    } else if (offset < NVME_DB_PAGE + NVME_PAGE_SIZE && is_write) {
        doorbell_write(c, buf, count, offset);
    } else if (!is_write) {
        memset(buf, 0, count);  /* doorbells are write-only; rest reserved */
    }
    return (ssize_t)count;
}

/* ---------------- PCI events ---------------- */

int ctrl_on_reset(mu_ctx_t *ctx, enum mu_reset_type type)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);

    ctrl_lock(c);
    if (type == MU_RESET_LOST) {
        /* vfio-user keeps device state across clients; the unmap
         * callbacks already failed a controller whose queues went. */
        ctrl_log(c, "client gone (CSTS %#x)", c->csts);
    } else {
        ctrl_reset(c, true);
        mig_on_reset(c);
    }
    ctrl_unlock(c);
    return 0;
}

void ctrl_on_command(mu_ctx_t *ctx, uint16_t old_cmd, uint16_t new_cmd)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);

    (void)old_cmd;
    ctrl_lock(c);
    c->bme = new_cmd & PCI_COMMAND_MASTER;
    /* Trapped doorbells may have queued work while mastering was off; in
     * polled mode the poller notices by itself. */
    if (c->bme && c->opts.db_mode == NVME_DB_TRAPPED) {
        sq_process_all(c);
        aen_deliver(c);
    }
    ctrl_unlock(c);
}
