/*
 * fuzz.h - what the harnesses and gen_corpus.c agree on: the input format
 * of each harness, and a few helpers (input reader, fd factory, fd count).
 *
 * The formats are small op languages rather than raw protocol bytes, so the
 * fuzzer can reach deep states (a negotiated session with DMA regions and
 * interrupt fds) without guessing framing, and so fds can travel with the
 * bytes.  Every byte sequence is a valid input: a truncated op just ends
 * the run.
 */
#ifndef MUSER_FUZZ_H
#define MUSER_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points; declared for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------ */
/* fuzz_wire: [selector] [nfds] [aux] [payload...]                    */
/* ------------------------------------------------------------------ */

enum fw_sel {
    FW_HDR,             /* payload = header; aux picks max_size */
    FW_VERSION,
    FW_DMA_MAP,
    FW_DMA_UNMAP,
    FW_DEVICE_INFO,
    FW_REGION_INFO,
    FW_IO_FDS,
    FW_IRQ_INFO,
    FW_SET_IRQS,
    FW_REGION_READ,     /* aux picks max_xfer */
    FW_REGION_WRITE,    /* aux picks max_xfer */
    FW_WRITE_MULTI,
    FW_DEVICE_FEATURE,
    FW_NO_PAYLOAD,
    FW_DMA_ACCESS,      /* aux bit 7: is_write; low bits pick max_xfer */
    FW_CAPS_PARSE,      /* payload as is */
    FW_CAPS_ROUNDTRIP,  /* payload + NUL: parse, build, parse, compare */
    FW_NUM,
};
#define FW_HDR_BYTES 3u

/* ------------------------------------------------------------------ */
/* fuzz_server: [flags] then ops                                      */
/* ------------------------------------------------------------------ */

/* flags byte */
#define FS_F_VERSION      0x01  /* harness sends a valid VERSION first */
#define FS_F_WRITE_MULTI  0x02  /* ... offering write_multiple */
#define FS_F_RESET_UNMAPS 0x04  /* mu_ctx_set_reset_unmaps_dma(true) */
#define FS_F_OVERLAP_CB   0x08  /* install the alternating overlap callback */
#define FS_F_REPLY_SHIFT  4     /* 2 bits: how the harness answers DMA_READ/
                                   DMA_WRITE from the server */
#define FS_F_REPLY_MASK   0x30
#define FS_F_RESET_FAILS  0x40  /* the device's reset callback fails */
#define FS_F_REPLACE      0x80  /* default overlap policy REPLACE */

enum fs_reply_mode {
    FS_REPLY_NONE = 0,  /* never answer: calls time out */
    FS_REPLY_OK = 1,    /* answer as a correct client */
    FS_REPLY_ERROR = 2, /* error replies */
    FS_REPLY_BAD = 3,   /* replies of the wrong size */
};

/*
 * Ops: low 3 bits are the kind, the upper 5 its parameter p.
 *
 *  FS_OP_SEND  u16 len, nfds = p & 3 fd specs (1 byte each), len bytes:
 *              raw bytes on the socket, fds attached to the first byte.
 *  FS_OP_MSG   u8 cmd, u8 flagsel, u16 len, nfds = p & 3 fd specs, len
 *              bytes: one message whose header (id, size) the harness
 *              writes; flagsel 0 command, 1 no_reply, 2 reply, else raw.
 *  FS_OP_POLL  run the context until it has nothing to do; p & 1: also
 *              drain replies in between; p & 2: only through the
 *              context's own loop (epoll_wait), the client's fd
 *              signalled, as a context run by mu_ctx_run() sees it (the
 *              memory link otherwise serves what it knows is pending
 *              directly, see fuzz_server.c pump()).
 *  FS_OP_DRAIN read the server's replies; p & 1: signal received eventfds
 *              (ioeventfds the device watches); p & 2: signal the
 *              eventfds we sent (mask/unmask fds the server watches).
 *  FS_OP_DMA   u8 region, u8 offset, u8 len, u8 mode: the device touches
 *              guest memory (see fuzz_server.c).
 *  FS_OP_IRQ   u8 vector: the device raises irq type p % 5.
 *  FS_OP_RECONNECT  hang up (invariants are checked) and connect anew;
 *              p & 1: through the listening socket (accept), else with
 *              mu_ctx_attach_fd().
 *  FS_OP_WAIT  sleep (p & 7) + 1 ms, or past the receive timeout for
 *              p >= 24, then poll:
 *              lets timers fire.
 */
enum fs_op {
    FS_OP_SEND = 0,
    FS_OP_MSG = 1,
    FS_OP_POLL = 2,
    FS_OP_DRAIN = 3,
    FS_OP_DMA = 4,
    FS_OP_IRQ = 5,
    FS_OP_RECONNECT = 6,
    FS_OP_WAIT = 7,
};
#define FS_OP(kind, p) ((uint8_t)((kind) | ((p) << 3)))

/* FS_OP_DMA mode byte */
#define FS_DMA_ACT_MASK   0x03  /* 0 get+write, 1 get+read, 2 mu_dma_read,
                                   3 mu_dma_write */
#define FS_DMA_DIRTY      0x04  /* also mu_dma_mark_dirty */
#define FS_DMA_THREAD     0x08  /* from a device thread, not inline */
#define FS_DMA_LARGE      0x10  /* len unit 256 bytes instead of 16 */
#define FS_DMA_HOLD       0x20  /* keep the translation 2 ms before the put */

/*
 * fd spec byte (server and client harnesses): kind = b & 7, n = b >> 3.
 *   0 memfd, read-write, n pages       4 a pipe end (n & 1: write end)
 *   1 memfd sealed against writes      5 a socket (other end closed)
 *   2 memfd reopened read-only         6 /dev/null
 *   3 eventfd (n & 1: non-blocking)    7 memfd of n pages + 100 bytes
 */
enum fz_fd_kind {
    FZ_FD_MEMFD, FZ_FD_MEMFD_SEALED, FZ_FD_MEMFD_RO, FZ_FD_EVENTFD,
    FZ_FD_PIPE, FZ_FD_SOCKET, FZ_FD_DEVNULL, FZ_FD_MEMFD_ODD,
};
#define FZ_FD(kind, n) ((uint8_t)((kind) | ((n) << 3)))

/* The test device of fuzz_server (gen_corpus aims its messages at it). */
#define FS_BAR0_SIZE      4096u
#define FS_MSIX_VECS      16u
#define FS_MSIX_TABLE_OFF 0x800u
#define FS_MSIX_PBA_OFF   0xc00u
#define FS_BAR2_SIZE      256u
#define FS_BAR4_SIZE      0x10000u
#define FS_BAR4_AREA0     0x0000u     /* sparse mmap areas of BAR4 */
#define FS_BAR4_AREA0_LEN 0x4000u
#define FS_BAR4_AREA1     0x8000u
#define FS_BAR4_AREA1_LEN 0x8000u
#define FS_IOEVENTFD0_OFF 0x100u      /* BAR0, 4 bytes */
#define FS_IOEVENTFD1_OFF 0x10u       /* BAR2, 2 bytes, datamatch */
#define FS_IOEVENTFD1_VAL 0x1234u
#define FS_IOEVENTFD2_OFF 0x100u      /* BAR4 sparse area 0, 4 bytes, datamatch */
#define FS_IOEVENTFD2_VAL 0xcafeu
#define FS_IOEVENTFD3_OFF 0x8008u     /* BAR4 sparse area 1, any size */
#define FS_DEV9_SIZE      0x10000u    /* region 9: 14 sparse one-page areas */
#define FS_DEV9_TRAP0     0x7000u     /* its two trapping pages */
#define FS_DEV9_TRAP1     0xf000u
#define FS_CFG_HOOK_OFF   0xc0u
#define FS_CFG_HOOK_LEN   0x40u
#define FS_MSI_VECS       4u
#define FS_MAP_REFUSE_BIT (1ull << 40) /* map callback refuses such iovas */
#define FS_DATA_XFER      0x10000u
#define FS_MSG_SIZE       0x20000u

/* ------------------------------------------------------------------ */
/* fuzz_client: [flags] then chunks                                   */
/* ------------------------------------------------------------------ */

#define FC_F_NEGOTIATE    0x01  /* muc__from_fd negotiates (VERSION) */
#define FC_F_VERSION      0x02  /* harness queues a valid VERSION reply */
#define FC_F_WRITE_MULTI  0x04  /* the client offers write_multiple */
#define FC_F_KEEP_OPEN    0x08  /* no EOF after the last chunk: calls time
                                   out instead */
#define FC_F_FDS_SHIFT    4     /* 2 bits: client max_msg_fds 8, 1, 2, 253 */

/*
 * Chunk: u8 ctl, then
 *   ctl & FC_C_HDR: u16 id, u16 cmd, u8 flags, u8 error (the harness
 *                   writes the header with the right size);
 *   nfds = ctl & 3 fd spec bytes; u16 len; len bytes.
 * ctl & FC_C_BARRIER: the chunk (and those after it) is only written once
 * the client call running now has returned.
 */
#define FC_C_NFDS_MASK    0x03
#define FC_C_HDR          0x40
#define FC_C_BARRIER      0x80

/* The client's calls, in order; each takes the next queued group. */
enum fc_call {
    FC_DEVICE_INFO,
    FC_REGION_INFO_0,
    FC_REGION_INFO_4,
    FC_REGION_INFO_7,
    FC_IRQ_INFO_2,
    FC_IO_FDS_0,
    FC_REGION_READ,
    FC_REGION_WRITE,
    FC_BAR_SIZE_0,
    FC_BAR_SIZE_1,
    FC_DMA_MAP,
    FC_DMA_MAP_MEM,
    FC_SERVE,
    FC_IRQ_SET_EVENTFDS,
    FC_IRQ_MASK,
    FC_IRQ_CLEAR,
    FC_DIRTY_START,
    FC_DIRTY_REPORT,
    FC_DIRTY_STOP,
    FC_DMA_UNMAP,
    FC_RESET,
    FC_REQUEST,
    FC_RECV_MSG,
    FC_DMA_UNMAP_ALL,
    FC_NUM_CALLS,
};
/* Arguments of those calls (gen_corpus builds the replies from them). */
#define FC_REGION_READ_IDX   0u
#define FC_REGION_READ_OFF   0x10u
#define FC_REGION_READ_LEN   16u
#define FC_REGION_WRITE_IDX  2u
#define FC_REGION_WRITE_OFF  0x4u
#define FC_REGION_WRITE_LEN  8u
#define FC_DMA_IOVA          0x100000ull
#define FC_DMA_SIZE          0x2000ull
#define FC_MEM_IOVA          0x200000ull
#define FC_MEM_SIZE          0x2000ull
#define FC_IRQ_INDEX         2u
#define FC_IRQ_COUNT         2u
#define FC_DIRTY_PGSIZE      4096ull
#define FC_DIRTY_LEN         0x40000ull
#define FC_REQUEST_CMD       4u       /* DEVICE_GET_INFO through muc_request */
#define FC_TIMEOUT_MS        10

/* ------------------------------------------------------------------ */
/* helpers (fuzz_util.c)                                              */
/* ------------------------------------------------------------------ */

/* A cursor over the input; reads past the end yield 0 and set 'end'. */
struct fz_in {
    const uint8_t *p;
    size_t n;
    bool end;
};
uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
/* Up to len bytes (fewer at the end of the input); returns how many. */
size_t fz_bytes(struct fz_in *in, const uint8_t **p, size_t len);

/* Open fds of the process, from /proc/self/fd. */
int fz_count_fds(void);
/* An fd as described by a spec byte, or -1.  Close it with fz_close_fd. */
int fz_make_fd(uint8_t spec);
/*
 * With the pool (fz_pool_init()), the fds of most kinds are reused across
 * inputs (fuzz_util.c says which, and why each is the same to the
 * receiver as a fresh one): the harness calls fz_pool_recycle() once the
 * library has let go of all of them (a client's hang-up), and
 * fz_close_fd() closes an fd of fz_make_fd unless it is the pool's.
 * fz_pool_fds() is how many fds the pool holds (it grows as kinds are
 * first asked for), to be left out of a count of leaked fds.  Without
 * the pool every fd is made anew and fz_close_fd is close().
 */
void fz_pool_init(void);
void fz_pool_recycle(void);
int fz_pool_fds(void);
void fz_close_fd(int fd);
bool fz_is_eventfd(int fd);
/*
 * Send buf on a non-blocking stream socket with fds on the first byte.
 * Returns the bytes the kernel took (possibly 0) or -errno; never blocks.
 */
long fz_send(int sock, const void *buf, size_t len, const int *fds,
             unsigned nfds);

#endif /* MUSER_FUZZ_H */
