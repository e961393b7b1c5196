/*
 * test_hostile_mem - the memory a device hands to its client is safe from
 * that client: mu_region_set_mmap seals a BAR's file against shrinking
 * and growing, or refuses a file it cannot seal, so a client truncating
 * the fd it got from GET_REGION_INFO gets EPERM and the device, which
 * reads and writes the same file, lives on for the next client.  And the
 * fds a client sends are bounded while they arrive (test_server_fd_flood).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

#define PG 4096u
#define BAR_SIZE (4 * PG)

static void test_set_mmap_seal_rules(void **state)
{
    struct inproc s;
    mu_ctx_t *ctx;
    char path[160];
    int fd, seals;

    (void)state;
    assert_int_equal(inproc_create(&s, "seal.sock", MU_DEV_PCI, NULL), 0);
    ctx = s.ctx;
    assert_int_equal(mu_ctx_set_log(ctx, log_capture, MU_LOG_ERR), 0);
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, BAR_SIZE,
                                     MU_REGION_RW | MU_REGION_MEM, NULL), 0);

    /* A memfd that cannot be sealed (F_SEAL_SEAL from birth): refused. */
    fd = memfd_sized("unsealable", BAR_SIZE, 0);
    assert_true(fd >= 0);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0),
                     -EPERM);
    assert_true(log_has("could shrink"));
    close(fd);

    /* A plain file (not a memfd): refused too. */
    snprintf(path, sizeof(path), "%s/file", s.dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, BAR_SIZE), 0);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0),
                     -EPERM);
    close(fd);
    unlink(path);

    /* Shorter than the region at that offset: refused. */
    fd = memfd_sized("short", BAR_SIZE, MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, PG, NULL, 0),
                     -EINVAL);
    /* Sealable: sealed against shrinking and growing, for its owner too. */
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0), 0);
    seals = fcntl(fd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW),
                     F_SEAL_SHRINK | F_SEAL_GROW);
    assert_int_equal(ftruncate(fd, 0), -1);
    assert_int_equal(errno, EPERM);
    close(fd);

    /* Sealed against shrinking and closed to more seals: taken as is. */
    fd = memfd_sized("sealed", BAR_SIZE, MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL), 0);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0), 0);
    close(fd);
    inproc_stop(&s);
}

static void test_client_cannot_truncate_bar(void **state)
{
    struct muc_region_info ri;
    struct inproc s;
    uint32_t v = 0x12345678, back = 0;
    uint8_t *dev_map;
    muc_t *c;
    int fd, base = count_open_fds();

    (void)state;
    fd = memfd_sized("bar0", BAR_SIZE, MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    dev_map = mmap(NULL, BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(dev_map != MAP_FAILED);
    assert_int_equal(inproc_create(&s, "bar.sock", MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_region_setup(s.ctx, MU_PCI_BAR0, BAR_SIZE,
                                     MU_REGION_RW | MU_REGION_MEM, NULL), 0);
    assert_int_equal(mu_region_set_mmap(s.ctx, MU_PCI_BAR0, fd, 0, NULL, 0),
                     0);
    assert_int_equal(inproc_start(&s), 0);

    for (int round = 0; round < 2; round++) {
        assert_int_equal(client_connect(&c, s.sock), 0);
        memset(&ri, 0, sizeof(ri));
        assert_int_equal(muc_region_info(c, 0, &ri), 0);
        assert_true(ri.fd >= 0);
        assert_true(ri.flags & MUC_REGION_MMAP);
        /* The attack: shrink (or grow) the device's memory. */
        assert_int_equal(ftruncate(ri.fd, 0), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(ftruncate(ri.fd, 2 * BAR_SIZE), -1);
        assert_int_equal(errno, EPERM);
        close(ri.fd);
        /* The device's own access to its BAR still works. */
        dev_map[BAR_SIZE - 4] = (uint8_t)round;
        assert_int_equal(muc_region_write(c, 0, 8, &v, 4), 0);
        assert_int_equal(muc_region_read(c, 0, 8, &back, 4), 0);
        assert_int_equal(back, v);
        assert_int_equal(memcmp(dev_map + 8, &v, 4), 0);
        muc_close(c);
        assert_true(inproc_wait_detached(&s, 1000, 2000));
    }
    inproc_stop(&s);
    munmap(dev_map, BAR_SIZE);
    close(fd);
    assert_int_equal(wait_open_fds(base, 1000, 2000), base);
}

/*
 * A client announcing a 64 KiB message and sending it a byte per sendmsg,
 * 8 fds on each: the server must close them as they pass its limit and
 * drop the client, not collect them until its fd table is full.  Peak fd
 * counts are taken in this process, which holds both ends.
 */
static void test_server_fd_flood(void **state)
{
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    unsigned limit;
    struct inproc s;
    struct vfu_hdr hdr;
    uint8_t *p = (uint8_t *)&hdr;
    int fds[8], sk, base, peak, n;
    unsigned long sent = 0;
    uint32_t id;
    muc_t *c;

    (void)state;
    assert_int_equal(inproc_create(&s, "fds.sock", MU_DEV_PCI, NULL), 0);
    limit = (unsigned)mu_ctx_get_limit(s.ctx, MU_LIMIT_MSG_FDS);
    assert_int_equal(inproc_start(&s), 0);
    for (unsigned i = 0; i < 8; i++)
        assert_true((fds[i] = eventfd(0, EFD_CLOEXEC)) >= 0);
    base = peak = count_open_fds();
    sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(sk >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s.sock);
    assert_int_equal(connect(sk, (struct sockaddr *)&sa, sizeof(sa)), 0);
    vfu_hdr_init(&hdr, 1, VFU_CMD_VERSION, 64 * 1024, VFU_F_TYPE_COMMAND, 0);
    for (size_t i = 0; i < 64 * 1024 - 1; i++) {
        uint8_t b = i < sizeof(hdr) ? p[i] : 0;
        struct iovec iov = { &b, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = ctl.buf,
                             .msg_controllen = CMSG_SPACE(sizeof(fds)) };
        struct cmsghdr *cm;

        memset(&ctl, 0, sizeof(ctl));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
        if (sendmsg(sk, &mh, MSG_NOSIGNAL) != 1)
            break;          /* dropped */
        sent++;
        n = count_open_fds();
        if (n > peak)
            peak = n;
    }
    /* The socket (1) and what is in flight in it: a batch the server has
     * not read yet, the limit it may hold, and the batch that passed it. */
    printf("server fd flood: %lu pieces sent, fds %d before, peak %d\n",
           sent, base, peak);
    assert_true(sent < 64 * 1024 - 1);
    assert_true(peak <= base + 1 + (int)limit + 2 * 8 + 2);
    close(sk);
    assert_true(inproc_wait_detached(&s, 1000, 2000));
    for (unsigned i = 0; i < 8; i++)
        close(fds[i]);
    assert_int_equal(wait_open_fds(base - 8, 1000, 2000), base - 8);
    /* And the next client is served. */
    assert_int_equal(client_connect(&c, s.sock), 0);
    assert_int_equal(muc_config_read32(c, 0, &id), 0);
    muc_close(c);
    inproc_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_mmap_seal_rules),
        cmocka_unit_test(test_client_cannot_truncate_bar),
        cmocka_unit_test(test_server_fd_flood),
    };

    log_ring_init(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
