/*
 * dma_file.h - the files behind DMA regions: one held fd per file and
 * access mode, shared by every region of that file (dma.c).
 *
 * A client maps guest RAM as many regions of one file (QEMU: one memfd
 * per RAM block, cut into sections; a vIOMMU: a region per page), each
 * DMA_MAP carrying a new fd of it.  Holding every one of them would cost
 * the server an fd per region, so the process's open-file limit, not the
 * region limit, would cap the table, for nothing: mmap sees only the file
 * and the fd's access mode.  So the table keeps one fd per (st_dev,
 * st_ino, access mode) with a count of the regions using it, and the
 * caller closes the duplicates.
 *
 * Why that is safe: while one of its fds is held, a file cannot go away,
 * so its (st_dev, st_ino) cannot be handed to another file; and the held
 * fd has the access mode the client's own fd had, so a region never gets
 * more access through it than the client gave for that region (read-only
 * and read-write fds of a file are kept apart).  A filesystem that reports
 * one inode number for two files (a hostile FUSE server could) would only
 * have the device see one of the client's own files for the other.
 *
 * Pure bookkeeping: no locking (context thread only, as the table's
 * changes are; dma.c), no syscall but the close of a released fd.
 */
#ifndef MUSER_DMA_FILE_H
#define MUSER_DMA_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mu_dma_file {
    int fd;                 /* held; immutable while users > 0 */
    unsigned users;         /* regions using it */
    dev_t dev;
    ino_t ino;
    int accmode;            /* O_RDONLY or O_RDWR */
    /*
     * Sealed against shrinking (F_SEAL_SHRINK) when a DMA_MAP looked:
     * seals are never removed, so its size then is a floor for good.
     * Set by the context thread, read by translating threads: atomic.
     */
    bool shrink_sealed;
    struct mu_dma_file *next;   /* hash chain */
};

struct mu_dma_files {
    struct mu_dma_file **bucket;
    size_t nbuckets;        /* 0 or a power of two */
    size_t count;           /* files held */
};

void mu_dma_files_init(struct mu_dma_files *t);
/* Free the table; every file must have been released. */
void mu_dma_files_fini(struct mu_dma_files *t);

/*
 * The held file for fd, whose fstat is st and whose access mode is accmode
 * (O_RDONLY or O_RDWR): a file already held for that inode and mode gains
 * a user, or fd is held as a new one (users 1).  shrink_sealed: what the
 * caller learnt of the seals (true sticks; false leaves what is known).
 * Returns 0 with *out set, or -ENOMEM.  fd stays the caller's either way:
 * when (*out)->fd != fd the caller closes fd.
 */
int mu_dma_files_get(struct mu_dma_files *t, int fd, const struct stat *st,
                     int accmode, bool shrink_sealed,
                     struct mu_dma_file **out);

/* The held file for (st, accmode) if any, without taking it. */
struct mu_dma_file *mu_dma_files_find(const struct mu_dma_files *t,
                                      const struct stat *st, int accmode);

/* A region stopped using f; the last user closes its fd and frees it. */
void mu_dma_files_put(struct mu_dma_files *t, struct mu_dma_file *f);

static inline bool mu_dma_file_shrink_sealed(const struct mu_dma_file *f)
{
    return __atomic_load_n(&f->shrink_sealed, __ATOMIC_RELAXED);
}

#endif /* MUSER_DMA_FILE_H */
