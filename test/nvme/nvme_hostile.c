/*
 * nvme_hostile.c - a client that attacks the device through the memory it
 * shares with it.  After each attack the device process must still run,
 * serve the next client, and hold the data it held before (check_data).
 *
 *  - guest memory truncated after the device faulted it in (the queues),
 *    then a doorbell: the device reads zeros and drops the client;
 *  - guest memory as a sparse file on a full tmpfs: the device's write
 *    into a hole (a Read command's data) does not kill it;
 *  - the doorbell memfd it hands out cannot be truncated (EPERM).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_nvme.h"

static void assert_device_alive(void)
{
    int st;

    assert_int_equal(waitpid(E->pid, &st, WNOHANG), 0);
}

/* Wait (generously) for the device to hang up on h: any register read
 * failing.  Returns that read's error. */
static int wait_dropped(struct nvd *h)
{
    uint32_t v;
    int rc = 0;

    for (int i = 0; i < 2000 * slow && rc == 0; i++) {
        rc = nvd_read32(h, NVME_REG_CSTS, &v);
        if (rc == 0)
            msleep(5);
    }
    return rc;
}

/* The test's own client E->d is replaced by an attacker; afterwards a
 * well-behaved client takes over again and the data must be intact. */
static void next_client_served(void)
{
    assert_device_alive();
    assert_int_equal(connect_and_bringup(false), 0);
    check_data();
    for (unsigned i = 0; i < 8; i++)
        random_io(E->pool, 2 * MIB);
    check_data();
}

void test_guest_memory_truncated(void **state)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY, .cdw10 = NVME_CNS_CTRL };
    struct nvd_buf b;
    struct nvd_opts o;
    struct nvd *h;

    (void)state;
    nvd_close(E->d);
    E->d = NULL;
    opts_for(&o, false);
    assert_int_equal(nvd_open(&h, &o), 0);
    /* Bring-up runs Identify: the device has the admin queues mapped. */
    assert_int_equal(nvd_bringup(h), 0);
    b = (struct nvd_buf){ .iova = h->scratch, .len = 4096 };
    assert_true(nvd_submit(h, 0, &cmd, &b) >= 0);
    /* From here the test must not touch h's guest memory either. */
    assert_int_equal(ftruncate(h->memfd, 0), 0);
    nvd_ring(h, 0);     /* trapped: its reply may or may not come */
    assert_true(wait_dropped(h) < 0);
    nvd_close(h);
    next_client_served();
}

/* A tmpfs of its own, so filling it up bothers nobody. */
static bool mount_small_tmpfs(const char *dir)
{
    if (geteuid() != 0) {
        printf("skipped: sparse guest memory on a full tmpfs needs root "
               "to mount one\n");
        return false;
    }
    if (mkdir(dir, 0700) < 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=16m,mode=0700") < 0) {
        printf("skipped: cannot mount a tmpfs on %s: %s\n", dir,
               strerror(errno));
        rmdir(dir);
        return false;
    }
    return true;
}

static void fill_up(const char *path)
{
    static uint8_t chunk[64 * 1024];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t n;

    assert_true(fd >= 0);
    memset(chunk, 0x11, sizeof(chunk));
    do {
        n = write(fd, chunk, sizeof(chunk));
    } while (n > 0);
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

void test_guest_memory_sparse_full(void **state)
{
    char fs[96], guest[128], filler[128];
    struct nvd_opts o;
    struct nvme_cqe cqe;
    struct nvd *h;
    uint64_t hole;
    int rc, dropped = 0, got = 0;

    (void)state;
    snprintf(fs, sizeof(fs), "%s/smallfs", E->dir);
    if (!mount_small_tmpfs(fs)) {
        skip();
        return;
    }
    snprintf(guest, sizeof(guest), "%s/guest", fs);
    snprintf(filler, sizeof(filler), "%s/filler", fs);
    nvd_close(E->d);
    E->d = NULL;
    opts_for(&o, false);
    o.mem_path = guest;         /* 64 MiB, sparse, on a 16 MiB tmpfs */
    assert_int_equal(nvd_open(&h, &o), 0);
    assert_int_equal(nvd_bringup(h), 0);
    /* Every page the driver uses is allocated now; the rest are holes. */
    fill_up(filler);
    hole = nvd_region_iova(h, 1) + 8 * MIB;
    assert_true(nvd_submit_rw(h, 1, NVME_IO_READ, 1, 0,
                              (uint32_t)(4096 >> E->shift), hole, 4096) >= 0);
    nvd_ring(h, 1);
    /*
     * Memory the device writes with memcpy faults: the write is lost,
     * the client dropped, and the completion (in memory that is still
     * there) may or may not have been posted first.  A backing file read
     * straight into the hole gets EFAULT from the kernel instead, and
     * the command fails.  Either way the device must live.
     */
    for (int i = 0; i < 2000 * slow && !dropped && !got; i++) {
        uint32_t v;

        rc = nvd_reap(h, 1, &cqe, 1, 0);
        if (rc > 0)
            got = 1;
        else if (nvd_read32(h, NVME_REG_CSTS, &v) < 0)
            dropped = 1;
        else
            msleep(5);
    }
    assert_true(dropped || got);
    nvd_close(h);
    unlink(filler);
    unlink(guest);
    assert_int_equal(umount2(fs, MNT_DETACH), 0);
    rmdir(fs);
    next_client_served();
}

/*
 * The doorbell page the device polls is a memfd the client gets read-write
 * (polled and ioeventfd modes): it must not be able to truncate it, or the
 * device's next touch of its doorbells (even for the next client's first
 * enable) would be a SIGBUS.
 */
void test_doorbell_fd_sealed(void **state)
{
    struct muc_region_info ri;

    (void)state;
    memset(&ri, 0, sizeof(ri));
    assert_int_equal(muc_region_info(E->d->c, 0, &ri), 0);
    if (E->db == NVD_DB_TRAPPED) {
        assert_int_equal(ri.fd, -1);    /* nothing handed out */
    } else {
        assert_true(ri.fd >= 0);
        assert_int_equal(ftruncate(ri.fd, 0), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(ftruncate(ri.fd, 1 << 20), -1);
        assert_int_equal(errno, EPERM);
        close(ri.fd);
    }
    nvd_close(E->d);
    E->d = NULL;
    next_client_served();
}

/*
 * No lock held across a call to the client: QD32 random reads on a queue
 * pair in fd-less guest memory (every fetch, completion and data transfer
 * is a DMA_READ/DMA_WRITE message) with a register read after every reap.
 * In polled mode the poller once held the controller lock while it waited
 * for its DMA reply, which only the context thread can receive, while the
 * context thread waited for that lock to answer the register read: every
 * such message then ran into the device's receive timeout and its command
 * failed.  So: every command must succeed with the right data, and every
 * register read must complete while commands are in flight.  (The latency
 * figure lives in bench/nvme.c.)
 */
void test_fdless_io_register_reads(void **state)
{
    const unsigned qd = 32, total = 1024 / (unsigned)slow + 64;
    uint64_t base = E->d->fdless_iova, slba_of[64];
    unsigned submitted = 0, completed = 0, reads = 0, busy_reads = 0;
    uint64_t served0 = muc_dma_requests_served(E->d->c);
    uint32_t nlb = 4096u >> E->shift;
    struct nvme_cqe cqe[32];

    (void)state;
    /* Fresh data to read back: ns 1's first 1 MiB, through fd memory. */
    for (uint64_t off = 0; off < MIB; off += MAX_XFER) {
        fill(va(E->pool), MAX_XFER);
        assert_status(rw(NVME_IO_WRITE, 1, at(off), MAX_XFER, E->pool), 0);
        memcpy(E->shadow + off, va(E->pool), MAX_XFER);
    }
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    /* 64 entries: cids 0..63, each with its 4 KiB buffer at base + cid. */
    assert_int_equal(nvd_create_qpair_at(E->d, 2, 64, 64, base + 512 * 1024,
                                         base + 768 * 1024), 0);
    while (completed < total) {
        int n;

        while (submitted < total && submitted - completed < qd) {
            uint64_t slba = rnd((unsigned)(MIB / 4096)) * (uint64_t)nlb;
            struct nvd_queue *q = &E->d->ioq[2];
            /* The slot the driver hands out next is its cid: the
             * command's buffer is that slot's page. */
            uint16_t next = q->free_cid[q->nr_free - 1];
            int cid;

            memset(va(base + (uint64_t)next * 4096), 0xee, 4096);
            cid = nvd_submit_rw(E->d, 2, NVME_IO_READ, 1, slba, nlb,
                                base + (uint64_t)next * 4096, 4096);
            assert_int_equal(cid, next);
            slba_of[cid] = slba;
            submitted++;
        }
        assert_int_equal(nvd_ring(E->d, 2), 0);
        /* A register read with commands in flight must complete (while
         * it waits, the client serves the device's DMA requests). */
        {
            uint64_t before = muc_dma_requests_served(E->d->c);
            uint32_t csts;

            assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &csts), 0);
            assert_true(csts & NVME_CSTS_RDY);
            reads++;
            busy_reads += muc_dma_requests_served(E->d->c) > before;
        }
        n = nvd_reap(E->d, 2, cqe, 32, 20000 * slow);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            assert_int_equal(NVME_CQE_ST(cqe[i].status), 0);
            assert_true(cqe[i].cid < 64);
            shadow_check(slba_of[cqe[i].cid],
                         va(base + (uint64_t)cqe[i].cid * 4096), 4096);
        }
        completed += (unsigned)n;
    }
    /* The device reached this memory by messages only, all along. */
    assert_true(muc_dma_requests_served(E->d->c) - served0 >= 3 * total);
    /* Polled: the poller ran the commands while the read waited, so
     * some reads saw DMA requests come and go before their reply.
     * Trapped and ioeventfd: the doorbell itself runs them, first. */
    printf("%s: %u register reads, %u of them during DMA traffic\n",
           E->name, reads, busy_reads);
    assert_true(reads > 0);
    if (E->db == NVD_DB_POLLED)
        assert_true(busy_reads > 0);
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    assert_int_equal(nvd_create_qpair(E->d, 2, 64, 64), 0);
    check_data();
}
