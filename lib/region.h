/*
 * region.h - device regions (region.c), internal: the state the context embeds
 * and the typed calls of the command layer.
 */
#ifndef MUSER_REGION_H
#define MUSER_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "muser.h"

#define MU_MAX_REGIONS 32u

/* ---- regions ---- */

struct mu_ioeventfd {
    uint64_t offset;
    uint32_t size;
    bool datamatch;
    uint64_t data;
    int fd;
    mu_ioeventfd_cb_t cb;
    uint64_t opaque_value;
};

struct mu_region {
    bool present;
    uint64_t size;
    unsigned flags;         /* MU_REGION_* */
    mu_access_cb_t cb;
    int fd;                 /* -1 when not mmappable */
    uint64_t fd_offset;
    struct mu_mmap_area *areas;
    unsigned nr_areas;      /* 0 with fd >= 0: the whole region */
    struct mu_ioeventfd *ioeventfds;
    unsigned nr_ioeventfds;
    /* The current client was sent the ioeventfds (GET_REGION_IO_FDS
     * served with its fds); cleared when it goes away. */
    bool io_fds_taken;
};

/* Guest access to region idx at [offset, offset+count), checked. */
ssize_t mu_region_access(mu_ctx_t *ctx, unsigned idx, uint8_t *buf,
                         size_t count, uint64_t offset, bool is_write);
void mu_regions_fini(mu_ctx_t *ctx);
/*
 * What a client is told of region idx (GET_REGION_INFO): its access flags
 * (MU_REGION_READ/WRITE) and size, zero for an index not set up; config
 * space is read/write and sized by pci.c.  fd >= 0 (lent, not given) when
 * it is mmappable, with the offset and the mmappable areas (none: all of
 * it).  -EINVAL when idx is past the regions.
 */
struct mu_region_desc {
    unsigned flags;
    uint64_t size;
    int fd;
    uint64_t fd_offset;
    const struct mu_mmap_area *areas;
    unsigned nr_areas;
};
int mu_region_describe(mu_ctx_t *ctx, unsigned idx, struct mu_region_desc *d);
/* The ioeventfds of region idx (lent); -EINVAL when it does not exist. */
int mu_region_ioeventfds(mu_ctx_t *ctx, unsigned idx,
                         const struct mu_ioeventfd **list, unsigned *n);
/* Whether the current client was given them (GET_REGION_IO_FDS). */
void mu_region_ioeventfds_given(mu_ctx_t *ctx, unsigned idx, bool given);
/* The client went away: what it took from the regions is forgotten. */
void mu_regions_client_gone(mu_ctx_t *ctx);

#endif /* MUSER_REGION_H */
