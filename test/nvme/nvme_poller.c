/*
 * nvme_poller.c - the poller thread (polled mode, and ioeventfd mode for
 * its fallback) sleeps when it has nothing to poll: while the controller
 * is disabled, and in ioeventfd mode when the client took the ioeventfds
 * (their kicks are the doorbells).  It used to nap 1 ms at a time there,
 * a thousand wakeups a second for nothing.
 *
 * Seen from outside, through the device's /proc: the thread named
 * nvme-poller blocks in futex (the condition variable) and its count of
 * voluntary context switches stays put while the device serves requests
 * that take the controller lock, for at least 200 ms of them.  A thread
 * that naps switches once per nap and is seldom in futex at all.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "test_nvme.h"

#define IDLE_NS 200000000ull    /* requests served while we watch */

/* /proc/PID/task/TID of the device's poller, in path; false if none. */
static bool poller_task(char *path, size_t len)
{
    char dir[64], comm[128];
    struct dirent *de;
    bool found = false;
    DIR *d;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)E->pid);
    d = opendir(dir);
    assert_non_null(d);
    while (!found && (de = readdir(d)) != NULL) {
        FILE *f;

        if (de->d_name[0] == '.')
            continue;
        if (snprintf(path, len, "%s/%s", dir, de->d_name) >= (int)len ||
            snprintf(comm, sizeof(comm), "%s/comm", path) >= (int)sizeof(comm))
            continue;
        f = fopen(comm, "r");
        if (f == NULL)
            continue;
        found = fgets(comm, sizeof(comm), f) != NULL &&
                strcmp(comm, "nvme-poller\n") == 0;
        fclose(f);
    }
    closedir(d);
    return found;
}

/* The task's field NAME from its status file. */
static long task_status(const char *task, const char *name)
{
    char file[128], line[128];
    size_t n = strlen(name);
    long v = -1;
    FILE *f;

    assert_true(snprintf(file, sizeof(file), "%s/status", task) <
                (int)sizeof(file));
    f = fopen(file, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    assert_true(v >= 0);
    return v;
}

/* The task is blocked in futex() (/proc/.../syscall: its number first). */
static bool task_in_futex(const char *task)
{
    char file[128], line[64];
    bool in = false;
    FILE *f;

    assert_true(snprintf(file, sizeof(file), "%s/syscall", task) <
                (int)sizeof(file));
    f = fopen(file, "r");
    assert_non_null(f);
    if (fgets(line, sizeof(line), f) != NULL)
        in = strtol(line, NULL, 10) == SYS_futex;
    fclose(f);
    return in;
}

/* One request that takes the controller lock on the device's side. */
static void request(void)
{
    uint32_t v;

    if (E->db == NVD_DB_IOEVENTFD)      /* a kicked admin command */
        assert_status(nvd_get_features(E->d, NVME_FEAT_NUM_QUEUES, 0, 0, &v), 0);
    else                                /* a register read */
        assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &v), 0);
}

void test_poller_idle(void **state)
{
    char task[96];
    long before;
    uint64_t start;
    unsigned n = 0;
    int t;

    (void)state;
    if (E->db == NVD_DB_TRAPPED)
        return;                         /* no poller */
    assert_true(poller_task(task, sizeof(task)));
    if (E->db == NVD_DB_POLLED)
        assert_int_equal(nvd_disable(E->d), 0);
    /* Guest memory without an fd makes the poller run the kicked
     * commands (the context thread cannot wait for the client's DMA
     * replies): take it away for the idle check. */
    if (E->db == NVD_DB_IOEVENTFD && E->d->fdless != NULL)
        assert_int_equal(muc_dma_unmap(E->d->c, E->d->fdless_iova,
                                       E->d->o.fdless_size), 0);
    /* Asleep: in futex, and still there with no switch in between,
     * across a request (a futex seen once may be the lock, taken by
     * another device thread just then, on the poller's way to sleep). */
    for (t = 0; t < 1000 * slow; t++) {
        bool in = task_in_futex(task);

        before = task_status(task, "voluntary_ctxt_switches");
        request();
        if (in && task_in_futex(task) &&
            task_status(task, "voluntary_ctxt_switches") == before)
            break;
        msleep(10);
    }
    assert_true(t < 1000 * slow);
    start = mono_ns();
    while (n < 20 || mono_ns() - start < IDLE_NS) {
        request();
        n++;
    }
    assert_int_equal(task_status(task, "voluntary_ctxt_switches"), before);
    assert_true(task_in_futex(task));
    if (E->db == NVD_DB_IOEVENTFD && E->d->fdless != NULL)
        assert_int_equal(muc_dma_map_mem(E->d->c, E->d->fdless_iova,
                                         E->d->o.fdless_size, E->d->fdless,
                                         MUC_DMA_READ | MUC_DMA_WRITE), 0);
    if (E->db == NVD_DB_POLLED) {
        /* Enabling wakes it: the queues are served again. */
        assert_int_equal(nvd_bringup(E->d), 0);
        check_data();
    }
}
