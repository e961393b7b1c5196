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
