/*
 * cmd.h - the command layer: one function per vfio-user command, between
 * dispatch.c and the subsystems.
 *
 * Each command function decodes its message with wire.c (every check on
 * the peer's bytes and fd count is made there or here), calls the typed
 * functions of one subsystem (dma.c, irq.c, region.c, pci.c, dma_log.c,
 * mig.c), and builds the reply from what they return.  The subsystems know
 * no wire struct.  Context thread only, like every handler.
 *
 * The files: cmd_dma.c (DMA_MAP, DMA_UNMAP), cmd_feature.c
 * (DEVICE_FEATURE), cmd_irq.c (GET_IRQ_INFO, SET_IRQS), cmd_region.c
 * (GET_REGION_INFO, GET_REGION_IO_FDS, REGION_READ/WRITE, WRITE_MULTI),
 * cmd_mig.c (the migration features, MIG_DATA_READ/WRITE), cmd_dma_rw.c
 * (the server's own DMA_READ/DMA_WRITE, for dma_rw.c).  VERSION,
 * DEVICE_GET_INFO and DEVICE_RESET concern the context and stay in
 * dispatch.c.
 */
#ifndef MUSER_CMD_H
#define MUSER_CMD_H

#include "private.h"
#include "dma.h"
#include "irq.h"

int mu_cmd_dma_map(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply);
int mu_cmd_dma_unmap(mu_ctx_t *ctx, struct mu_msg *msg,
                     struct mu_reply *reply);
int mu_cmd_device_feature(mu_ctx_t *ctx, struct mu_msg *msg,
                          struct mu_reply *reply);
int mu_cmd_irq_info(mu_ctx_t *ctx, struct mu_msg *msg,
                    struct mu_reply *reply);
int mu_cmd_set_irqs(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply);
int mu_cmd_region_info(mu_ctx_t *ctx, struct mu_msg *msg,
                       struct mu_reply *reply);
int mu_cmd_region_rw(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply);
int mu_cmd_write_multi(mu_ctx_t *ctx, struct mu_msg *msg,
                       struct mu_reply *reply);
int mu_cmd_region_io_fds(mu_ctx_t *ctx, struct mu_msg *msg,
                         struct mu_reply *reply);
int mu_cmd_mig_data_read(mu_ctx_t *ctx, struct mu_msg *msg,
                         struct mu_reply *reply);
int mu_cmd_mig_data_write(mu_ctx_t *ctx, struct mu_msg *msg,
                          struct mu_reply *reply);
/* DEVICE_FEATURE MIGRATION and MIG_DEVICE_STATE, decoded this far by
 * cmd_feature.c (cmd_mig.c). */
int mu_cmd_mig_feature(mu_ctx_t *ctx, const struct vfu_device_feature *f,
                       const uint8_t *data, size_t len,
                       struct mu_reply *reply);

/*
 * The server's own commands (cmd_dma_rw.c), for dma_rw.c: DMA_READ (data
 * from the client into buf) and DMA_WRITE (buf to the client) of n bytes
 * at iova.
 *  - room: the most data one such message may carry under our message
 *    size limit (the peer's transfer limit may be lower);
 *  - call: send and wait for the reply (device threads; -EDEADLK on the
 *    context thread); 0 or -errno as mu_dma_read() documents;
 *  - send: send as *call (its req field set by the caller), the reply to
 *    come through dispatch.c; 0 or -errno;
 *  - done: the outcome of a call from its result and reply (released).
 */
size_t mu_cmd_dma_rw_room(const mu_ctx_t *ctx);
const char *mu_cmd_dma_rw_name(bool is_write);
int mu_cmd_dma_rw_call(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t n,
                       bool is_write);
int mu_cmd_dma_rw_send(mu_ctx_t *ctx, struct mu_call *call, uint64_t iova,
                       uint8_t *buf, size_t n, bool is_write);
int mu_cmd_dma_rw_done(int rc, struct mu_msg *reply, uint64_t iova,
                       uint8_t *buf, size_t n, bool is_write);

#endif /* MUSER_CMD_H */
