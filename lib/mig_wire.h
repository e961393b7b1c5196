/*
 * mig_wire.h - message layouts of migration (protocol §3.13, §3.14),
 * shared by the server (mig.c) and the client (client_mig.c).
 */
#ifndef MUSER_MIG_WIRE_H
#define MUSER_MIG_WIRE_H

#include <stdint.h>

/* MIG_DATA_READ / MIG_DATA_WRITE (protocol §3.14). */
struct vfu_mig_data {
    uint32_t argsz;
    uint32_t size;
    /* data follows (READ reply, WRITE request) */
} __attribute__((packed));

/* DEVICE_FEATURE MIG_DEVICE_STATE data. */
struct vfu_mig_device_state {
    uint32_t device_state;
    uint32_t data_fd;       /* unused by vfio-user */
} __attribute__((packed));

#endif /* MUSER_MIG_WIRE_H */
