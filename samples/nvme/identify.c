/*
 * identify.c - Identify (06h): controller, namespace, active namespace
 * list, namespace identification descriptors, and the (empty) NVM command
 * set specific controller page.  Always 4 KiB through PRP1/PRP2.
 *
 * The controller data advertises exactly what is implemented: MDTS 5,
 * AERL/ACL 3, 16 error log entries, the effects log (LPA bit 1) and
 * extended Get Log Page data (bit 2), DSM and Write Zeroes (ONCS), a
 * volatile write cache with broadcast flush (VWC 07h), PRPs only.
 */
#include <string.h>

#include "nvme.h"

#define IDENT_SIZE 4096u

static void put_str(uint8_t *dst, const char *s, size_t width)
{
    size_t n = strlen(s);

    memset(dst, ' ', width);
    memcpy(dst, s, n < width ? n : width);
}

struct nvme_ns *ns_lookup(struct nvme_ctrl *c, uint32_t nsid)
{
    if (nsid == 0 || nsid > c->nr_ns)
        return NULL;
    return &c->ns[nsid - 1];
}

static void id_ctrl(const struct nvme_ctrl *c, uint8_t *p)
{
    put_le16(p + NVME_IDC_VID, NVME_VENDOR_ID);
    put_le16(p + NVME_IDC_SSVID, NVME_VENDOR_ID);
    put_str(p + NVME_IDC_SN, c->serial, 20);
    put_str(p + NVME_IDC_MN, "muser emulated NVMe controller", 40);
    put_str(p + NVME_IDC_FR, "0.1", 8);
    p[NVME_IDC_RAB] = 6;
    p[NVME_IDC_MDTS] = NVME_MDTS;
    put_le16(p + NVME_IDC_CNTLID, 1);
    put_le32(p + NVME_IDC_VER, 0x00010400);
    p[NVME_IDC_CNTRLTYPE] = 1;          /* I/O controller */
    p[NVME_IDC_ACL] = NVME_ACL;
    p[NVME_IDC_AERL] = NVME_AERL;
    p[NVME_IDC_FRMW] = 0x03;            /* 1 slot, slot 1 read-only */
    p[NVME_IDC_LPA] = 0x06;             /* effects log, extended data */
    p[NVME_IDC_ELPE] = NVME_ELPE;
    p[NVME_IDC_NPSS] = 0;
    put_le16(p + NVME_IDC_WCTEMP, NVME_WCTEMP);
    put_le16(p + NVME_IDC_CCTEMP, NVME_CCTEMP);
    p[NVME_IDC_SQES] = 0x66;
    p[NVME_IDC_CQES] = 0x44;
    put_le32(p + NVME_IDC_NN, c->nr_ns);
    put_le16(p + NVME_IDC_ONCS, 0x000c);        /* DSM, Write Zeroes */
    p[NVME_IDC_VWC] = 0x07;     /* cache present, flush to all NS works */
    put_le32(p + NVME_IDC_SGLS, 0);
    memcpy(p + NVME_IDC_SUBNQN, c->subnqn, strlen(c->subnqn));
    put_le16(p + NVME_IDC_PSD0, 2500);          /* 25 W max power */
}

static void id_ns(const struct nvme_ns *ns, uint8_t *p)
{
    put_le64(p + NVME_IDN_NSZE, ns->nlb);
    put_le64(p + NVME_IDN_NCAP, ns->nlb);
    put_le64(p + NVME_IDN_NUSE, ns->nlb);
    p[NVME_IDN_NLBAF] = 0;
    p[NVME_IDN_FLBAS] = 0;
    /* Deallocated blocks read zeros; Write Zeroes honours DEAC. */
    p[NVME_IDN_DLFEAT] = 0x09;
    put_le64(p + NVME_IDN_NVMCAP, ns->size);
    memcpy(p + NVME_IDN_NGUID, ns->nguid, 16);
    put_le32(p + NVME_IDN_LBAF0, (uint32_t)ns->lba_shift << 16);
}

static void id_active_list(const struct nvme_ctrl *c, uint32_t after,
                           uint8_t *p)
{
    unsigned n = 0;

    for (uint32_t id = after + 1; id <= c->nr_ns && n < 1024; id++)
        put_le32(p + 4 * n++, id);
}

static size_t put_desc(uint8_t *p, uint8_t type, const void *v, uint8_t len)
{
    p[0] = type;
    p[1] = len;
    memcpy(p + 4, v, len);
    return 4u + len;
}

static void id_ns_descs(const struct nvme_ns *ns, uint8_t *p)
{
    static const uint8_t csi_nvm = 0;
    size_t o = 0;

    o += put_desc(p + o, NVME_NIDT_NGUID, ns->nguid, 16);
    o += put_desc(p + o, NVME_NIDT_UUID, ns->uuid, 16);
    put_desc(p + o, NVME_NIDT_CSI, &csi_nvm, 1);
}

uint16_t identify(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint8_t page[IDENT_SIZE];
    uint8_t cns = cmd->cdw10 & 0xff, csi = cmd->cdw11 >> 24;
    struct nvme_ns *ns = NULL;

    memset(page, 0, sizeof(page));
    switch (cns) {
    case NVME_CNS_NS:
    case NVME_CNS_NS_DESC_LIST:
        ns = ns_lookup(c, cmd->nsid);
        if (ns == NULL)
            return NVME_SC_INVALID_NS | NVME_ST_DNR;
        if (cns == NVME_CNS_NS)
            id_ns(ns, page);
        else
            id_ns_descs(ns, page);
        break;
    case NVME_CNS_CTRL:
        id_ctrl(c, page);
        break;
    case NVME_CNS_NS_ACTIVE_LIST:
        if (cmd->nsid >= 0xfffffffe)
            return NVME_SC_INVALID_NS | NVME_ST_DNR;
        id_active_list(c, cmd->nsid, page);
        break;
    case NVME_CNS_CS_CTRL:
        /* NVM command set: no extra limits, an all-zero page. */
        if (csi != 0)
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        break;
    default:
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    }
    return xfer_to_guest(c, cmd->prp1, cmd->prp2, page, sizeof(page));
}
