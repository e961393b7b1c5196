/*
 * nvme-spec.h - NVM Express 1.4 definitions shared by the emulated
 * controller (samples/nvme) and the driver-like test client (test/nvme):
 * register offsets and fields, queue entry layouts, opcodes and status
 * codes.  Spec only: nothing here knows about muser.
 *
 * Everything on the wire is little-endian; muser only builds on
 * little-endian hosts, so the structures are used as they are.
 */
#ifndef NVME_SPEC_H
#define NVME_SPEC_H

#include <stdint.h>

/* ---- BAR0 registers ---- */

enum {
    NVME_REG_CAP = 0x00,
    NVME_REG_VS = 0x08,
    NVME_REG_INTMS = 0x0c,
    NVME_REG_INTMC = 0x10,
    NVME_REG_CC = 0x14,
    NVME_REG_CSTS = 0x1c,
    NVME_REG_NSSR = 0x20,
    NVME_REG_AQA = 0x24,
    NVME_REG_ASQ = 0x28,
    NVME_REG_ACQ = 0x30,
    NVME_REG_CMBLOC = 0x38,
    NVME_REG_CMBSZ = 0x3c,
    NVME_REG_DBS = 0x1000,
};

/* Doorbell offset with CAP.DSTRD = 0. */
#define NVME_DB_OFF(qid, is_cq) (NVME_REG_DBS + (2u * (qid) + (is_cq)) * 4u)

#define NVME_CAP_MQES(cap) ((uint32_t)((cap) & 0xffff))
#define NVME_CAP_CQR (1ull << 16)
#define NVME_CAP_TO(cap) ((uint32_t)(((cap) >> 24) & 0xff))
#define NVME_CAP_DSTRD(cap) ((uint32_t)(((cap) >> 32) & 0xf))
#define NVME_CAP_CSS_NVM (1ull << 37)
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf))
#define NVME_CAP_MPSMAX(cap) ((uint32_t)(((cap) >> 52) & 0xf))

#define NVME_CC_EN 0x1u
#define NVME_CC_CSS(cc) (((cc) >> 4) & 0x7)
#define NVME_CC_MPS(cc) (((cc) >> 7) & 0xf)
#define NVME_CC_AMS(cc) (((cc) >> 11) & 0x7)
#define NVME_CC_SHN(cc) (((cc) >> 14) & 0x3)
#define NVME_CC_SHN_MASK (0x3u << 14)
#define NVME_CC_SHN_NORMAL (0x1u << 14)
#define NVME_CC_SHN_ABRUPT (0x2u << 14)
#define NVME_CC_IOSQES(cc) (((cc) >> 16) & 0xf)
#define NVME_CC_IOCQES(cc) (((cc) >> 20) & 0xf)
/* What Linux writes: 4 KiB pages, NVM command set, round robin, 64/16. */
#define NVME_CC_LINUX (6u << 16 | 4u << 20)

#define NVME_CSTS_RDY 0x1u
#define NVME_CSTS_CFS 0x2u
#define NVME_CSTS_SHST_MASK (0x3u << 2)
#define NVME_CSTS_SHST_OCCUR (0x1u << 2)
#define NVME_CSTS_SHST_CMPLT (0x2u << 2)

#define NVME_AQA_ASQS(aqa) ((aqa) & 0xfff)
#define NVME_AQA_ACQS(aqa) (((aqa) >> 16) & 0xfff)

/* ---- queue entries ---- */

struct nvme_sqe {
    uint8_t opc;
    uint8_t flags;          /* bits 1:0 FUSE, 7:6 PSDT */
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2, cdw3;
    uint64_t mptr;
    uint64_t prp1, prp2;
    uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct nvme_cqe {
    uint32_t dw0;
    uint32_t dw1;
    uint16_t sqhd;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;        /* bit 0 phase, 15:1 status (see below) */
};

_Static_assert(sizeof(struct nvme_sqe) == 64, "SQ entry is 64 bytes");
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQ entry is 16 bytes");

#define NVME_SQE_FUSE(flags) ((flags) & 0x3)
#define NVME_SQE_PSDT(flags) (((flags) >> 6) & 0x3)

/*
 * Status as a 15-bit value, i.e. the CQE status field shifted right by one
 * (dropping the phase tag): bits 7:0 SC, 10:8 SCT, 12:11 CRD, 13 M, 14 DNR.
 */
#define NVME_SCT_GENERIC 0x0u
#define NVME_SCT_CMD 0x1u
#define NVME_SCT_MEDIA 0x2u
#define NVME_ST(sct, sc) ((uint16_t)((sct) << 8 | (sc)))
#define NVME_ST_DNR 0x4000u
#define NVME_ST_SC(st) ((st) & 0xff)
#define NVME_ST_SCT(st) (((st) >> 8) & 0x7)
#define NVME_ST_CODE(st) ((st) & 0x7ff)     /* SCT and SC without flags */
#define NVME_CQE_ST(status) ((uint16_t)((status) >> 1))

enum {
    NVME_SC_SUCCESS = NVME_ST(NVME_SCT_GENERIC, 0x00),
    NVME_SC_INVALID_OPCODE = NVME_ST(NVME_SCT_GENERIC, 0x01),
    NVME_SC_INVALID_FIELD = NVME_ST(NVME_SCT_GENERIC, 0x02),
    NVME_SC_DATA_XFER_ERROR = NVME_ST(NVME_SCT_GENERIC, 0x04),
    NVME_SC_INTERNAL = NVME_ST(NVME_SCT_GENERIC, 0x06),
    NVME_SC_ABORT_SQ_DELETED = NVME_ST(NVME_SCT_GENERIC, 0x08),
    NVME_SC_INVALID_NS = NVME_ST(NVME_SCT_GENERIC, 0x0b),
    NVME_SC_CMD_SEQ_ERROR = NVME_ST(NVME_SCT_GENERIC, 0x0c),
    NVME_SC_PRP_OFFSET = NVME_ST(NVME_SCT_GENERIC, 0x13),
    NVME_SC_LBA_RANGE = NVME_ST(NVME_SCT_GENERIC, 0x80),
    NVME_SC_CQ_INVALID = NVME_ST(NVME_SCT_CMD, 0x00),
    NVME_SC_QID_INVALID = NVME_ST(NVME_SCT_CMD, 0x01),
    NVME_SC_QSIZE_INVALID = NVME_ST(NVME_SCT_CMD, 0x02),
    NVME_SC_AER_LIMIT = NVME_ST(NVME_SCT_CMD, 0x05),
    NVME_SC_INVALID_VECTOR = NVME_ST(NVME_SCT_CMD, 0x08),
    NVME_SC_INVALID_LOG_PAGE = NVME_ST(NVME_SCT_CMD, 0x09),
    NVME_SC_INVALID_QUEUE_DELETION = NVME_ST(NVME_SCT_CMD, 0x0c),
    NVME_SC_FEATURE_NOT_SAVEABLE = NVME_ST(NVME_SCT_CMD, 0x0d),
    NVME_SC_WRITE_FAULT = NVME_ST(NVME_SCT_MEDIA, 0x80),
    NVME_SC_UNRECOVERED_READ = NVME_ST(NVME_SCT_MEDIA, 0x81),
};

/* ---- opcodes ---- */

enum {
    NVME_ADM_DELETE_SQ = 0x00,
    NVME_ADM_CREATE_SQ = 0x01,
    NVME_ADM_GET_LOG = 0x02,
    NVME_ADM_DELETE_CQ = 0x04,
    NVME_ADM_CREATE_CQ = 0x05,
    NVME_ADM_IDENTIFY = 0x06,
    NVME_ADM_ABORT = 0x08,
    NVME_ADM_SET_FEATURES = 0x09,
    NVME_ADM_GET_FEATURES = 0x0a,
    NVME_ADM_AER = 0x0c,
    NVME_ADM_KEEP_ALIVE = 0x18,
    NVME_ADM_DBBUF = 0x7c,
};

enum {
    NVME_IO_FLUSH = 0x00,
    NVME_IO_WRITE = 0x01,
    NVME_IO_READ = 0x02,
    NVME_IO_WRITE_ZEROES = 0x08,
    NVME_IO_DSM = 0x09,
};

/* Create I/O CQ / SQ CDW11 */
#define NVME_CQ_PC 0x1u
#define NVME_CQ_IEN 0x2u
#define NVME_SQ_PC 0x1u

/* Read/Write/Write Zeroes CDW12 */
#define NVME_RW_NLB(cdw12) (((cdw12) & 0xffff) + 1u)
#define NVME_RW_DEAC (1u << 25)
#define NVME_RW_FUA (1u << 30)
#define NVME_RW_LR (1u << 31)

/* Dataset Management */
#define NVME_DSM_NR(cdw10) (((cdw10) & 0xff) + 1u)
#define NVME_DSM_IDR 0x1u
#define NVME_DSM_IDW 0x2u
#define NVME_DSM_AD 0x4u
struct nvme_dsm_range {
    uint32_t cattr;
    uint32_t nlb;
    uint64_t slba;
};

/* Identify CNS values */
enum {
    NVME_CNS_NS = 0x00,
    NVME_CNS_CTRL = 0x01,
    NVME_CNS_NS_ACTIVE_LIST = 0x02,
    NVME_CNS_NS_DESC_LIST = 0x03,
    NVME_CNS_CS_CTRL = 0x06,
};

/* Feature identifiers */
enum {
    NVME_FEAT_ARBITRATION = 0x01,
    NVME_FEAT_POWER_MGMT = 0x02,
    NVME_FEAT_TEMP_THRESH = 0x04,
    NVME_FEAT_ERR_RECOVERY = 0x05,
    NVME_FEAT_VOLATILE_WC = 0x06,
    NVME_FEAT_NUM_QUEUES = 0x07,
    NVME_FEAT_IRQ_COALESCE = 0x08,
    NVME_FEAT_IRQ_CONFIG = 0x09,
    NVME_FEAT_WRITE_ATOMIC = 0x0a,
    NVME_FEAT_ASYNC_EVENT = 0x0b,
};

/* Log page identifiers */
enum {
    NVME_LOG_ERROR = 0x01,
    NVME_LOG_SMART = 0x02,
    NVME_LOG_FW_SLOT = 0x03,
    NVME_LOG_CMD_EFFECTS = 0x05,
};

/* Asynchronous event completion DW0 */
enum {
    NVME_AER_TYPE_ERROR = 0,
    NVME_AER_TYPE_SMART = 1,
    NVME_AER_TYPE_NOTICE = 2,
};
enum {
    NVME_AER_ERR_INVALID_DB = 0x00,     /* write to an invalid doorbell */
    NVME_AER_ERR_INVALID_DB_VALUE = 0x01,
    NVME_AER_SMART_TEMP = 0x01,         /* temperature threshold */
};
#define NVME_AER_DW0(type, info, lid) \
    ((uint32_t)(type) | (uint32_t)(info) << 8 | (uint32_t)(lid) << 16)

/* SMART / health critical warning bits */
#define NVME_SMART_WARN_TEMP 0x02u

/* Error information log entry (64 bytes). */
struct nvme_error_entry {
    uint64_t error_count;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;        /* bit 0 phase, 15:1 status */
    uint16_t param_loc;
    uint64_t lba;
    uint32_t nsid;
    uint8_t vs;
    uint8_t trtype;
    uint8_t rsvd30[2];
    uint64_t cs;
    uint16_t trtype_spec;
    uint8_t rsvd42[22];
};
_Static_assert(sizeof(struct nvme_error_entry) == 64, "error entry size");

/* Identify controller byte offsets used by both sides. */
enum {
    NVME_IDC_VID = 0,
    NVME_IDC_SSVID = 2,
    NVME_IDC_SN = 4,
    NVME_IDC_MN = 24,
    NVME_IDC_FR = 64,
    NVME_IDC_RAB = 72,
    NVME_IDC_MDTS = 77,
    NVME_IDC_CNTLID = 78,
    NVME_IDC_VER = 80,
    NVME_IDC_OAES = 92,
    NVME_IDC_CNTRLTYPE = 111,
    NVME_IDC_OACS = 256,
    NVME_IDC_ACL = 258,
    NVME_IDC_AERL = 259,
    NVME_IDC_FRMW = 260,
    NVME_IDC_LPA = 261,
    NVME_IDC_ELPE = 262,
    NVME_IDC_NPSS = 263,
    NVME_IDC_WCTEMP = 266,
    NVME_IDC_CCTEMP = 268,
    NVME_IDC_SQES = 512,
    NVME_IDC_CQES = 513,
    NVME_IDC_NN = 516,
    NVME_IDC_ONCS = 520,
    NVME_IDC_VWC = 525,
    NVME_IDC_SGLS = 536,
    NVME_IDC_SUBNQN = 768,
    NVME_IDC_PSD0 = 2048,
};

/* Identify namespace byte offsets. */
enum {
    NVME_IDN_NSZE = 0,
    NVME_IDN_NCAP = 8,
    NVME_IDN_NUSE = 16,
    NVME_IDN_NSFEAT = 24,
    NVME_IDN_NLBAF = 25,
    NVME_IDN_FLBAS = 26,
    NVME_IDN_DLFEAT = 33,
    NVME_IDN_NVMCAP = 48,
    NVME_IDN_NGUID = 104,
    NVME_IDN_EUI64 = 120,
    NVME_IDN_LBAF0 = 128,
};

/* Namespace identification descriptor types */
enum {
    NVME_NIDT_EUI64 = 0x01,
    NVME_NIDT_NGUID = 0x02,
    NVME_NIDT_UUID = 0x03,
    NVME_NIDT_CSI = 0x04,
};

#endif /* NVME_SPEC_H */
