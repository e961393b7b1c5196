/*
 * test_nvme.h - what the parts of test_nvme share: the group environment
 * (which controller configuration runs, its device process, the driver),
 * helpers, and the tests each file defines.
 */
#ifndef TEST_NVME_H
#define TEST_NVME_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "driver.h"

#define MIB (1024u * 1024u)
#define P NVD_PAGE
#define MAX_XFER (128u * 1024u)     /* MDTS 5 */
#define SHADOW_BYTES (4u * MIB)

struct env {
    const char *name;
    const char *args[12];
    enum nvd_db_mode db;
    bool intx_on_reconnect;
    unsigned nr_ns;
    unsigned shift;
    unsigned pollers;       /* the device's poller threads, 0: one */
    /* run time */
    pid_t pid;
    char dir[64], sock[128], backing[128];
    struct nvd *d;
    uint64_t pool;          /* 2 MiB around the DMA region boundary */
    uint64_t check;         /* 256 KiB read-back buffer */
    uint8_t *shadow;        /* what ns 1's first SHADOW_BYTES hold */
    unsigned seed;
};

/* The group running now, and what to scale waits by (test/slow.h). */
extern struct env *E;
extern int slow;

/* A status (>= 0) with this SCT/SC; errors carry DNR, except transfer
 * errors, which may pass once the memory is back. */
#define assert_status(st, code) \
    do { \
        int st_ = (st); \
        assert_true(st_ >= 0); \
        assert_int_equal(NVME_ST_CODE(st_), (code)); \
        if ((code) != 0 && (code) != NVME_SC_DATA_XFER_ERROR) \
            assert_true(st_ & NVME_ST_DNR); \
    } while (0)

void msleep(unsigned ms);
/* CLOCK_MONOTONIC, the device's clock for its timers. */
uint64_t mono_ns(void);
unsigned rnd(unsigned n);
void fill(uint8_t *p, size_t len);
void *va(uint64_t iova);
size_t blk(void);
uint64_t at(uint64_t bytes);
int rw(uint8_t opc, uint32_t nsid, uint64_t slba, size_t len, uint64_t iova);
void opts_for(struct nvd_opts *o, bool intx);
unsigned find_cap(uint8_t id);
uint64_t le64_at(const uint8_t *p);
/* ns 1 against the shadow copy */
void shadow_check(uint64_t slba, const uint8_t *buf, size_t len);
void random_io(uint64_t buf_iova, size_t room);
void check_data(void);
/* Connect E->d, bring it up, place the test buffers. */
int connect_and_bringup(bool intx);

/* test_nvme.c */
void test_pci(void **state);
void test_identify(void **state);
/* nvme_data.c */
void test_rw_random(void **state);
void test_rw_queue_depth(void **state);
void test_prp_contiguous(void **state);
void test_prp_lists(void **state);
void test_prp_invalid(void **state);
void test_flush_zeroes_dsm(void **state);
void test_namespaces(void **state);
/* nvme_admin.c */
void test_admin_errors(void **state);
void test_queue_errors(void **state);
void test_io_errors(void **state);
void test_aer_limit(void **state);
void test_features(void **state);
void test_temperature_event(void **state);
void test_doorbell_events(void **state);
void test_logs(void **state);
void test_coalescing(void **state);
void test_cq_full(void **state);
void test_fdless_queues(void **state);
/* nvme_hostile.c */
void test_guest_memory_truncated(void **state);
void test_guest_memory_sparse_full(void **state);
void test_doorbell_fd_sealed(void **state);
void test_fdless_io_register_reads(void **state);
/* nvme_reset.c */
void test_reset(void **state);
void test_flr(void **state);
void test_shutdown(void **state);
void test_remap_live_queues(void **state);
void test_unmap_live_queues(void **state);
void test_reconnect(void **state);
void test_ioeventfds_not_taken(void **state);
/* nvme_poller.c */
void test_poller_idle(void **state);
/* nvme_multiq.c */
void test_multiq_io(void **state);
void test_multiq_delete_create(void **state);
void test_multiq_delete_during_dma(void **state);

#endif
