/*
 * dma_file.c - held files of the DMA table (dma_file.h): a chained hash
 * table on (st_dev, st_ino, access mode), doubled when it fills up.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dma_file.h"

void mu_dma_files_init(struct mu_dma_files *t)
{
    t->bucket = NULL;
    t->nbuckets = 0;
    t->count = 0;
}

void mu_dma_files_fini(struct mu_dma_files *t)
{
    free(t->bucket);
    mu_dma_files_init(t);
}

static size_t hash(dev_t dev, ino_t ino, int accmode, size_t nbuckets)
{
    uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 24) ^ (uint64_t)accmode) *
                 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 32) & (nbuckets - 1);
}

static bool same(const struct mu_dma_file *f, const struct stat *st,
                 int accmode)
{
    return f->ino == st->st_ino && f->dev == st->st_dev &&
           f->accmode == accmode;
}

struct mu_dma_file *mu_dma_files_find(const struct mu_dma_files *t,
                                      const struct stat *st, int accmode)
{
    struct mu_dma_file *f;

    if (t->nbuckets == 0)
        return NULL;
    f = t->bucket[hash(st->st_dev, st->st_ino, accmode, t->nbuckets)];
    while (f != NULL && !same(f, st, accmode))
        f = f->next;
    return f;
}

/* Room for one more file at load factor 1: 0 or -ENOMEM (table as was). */
static int reserve(struct mu_dma_files *t)
{
    size_t n = t->nbuckets ? 2 * t->nbuckets : 16;
    struct mu_dma_file **b;

    if (t->count < t->nbuckets)
        return 0;
    b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct mu_dma_file *f = t->bucket[i], *next;

        for (; f != NULL; f = next) {
            size_t h = hash(f->dev, f->ino, f->accmode, n);

            next = f->next;
            f->next = b[h];
            b[h] = f;
        }
    }
    free(t->bucket);
    t->bucket = b;
    t->nbuckets = n;
    return 0;
}

int mu_dma_files_get(struct mu_dma_files *t, int fd, const struct stat *st,
                     int accmode, bool shrink_sealed,
                     struct mu_dma_file **out)
{
    struct mu_dma_file *f = mu_dma_files_find(t, st, accmode);
    size_t h;

    if (f != NULL) {
        if (f->users == UINT_MAX)
            return -ENOMEM;     /* cannot count it: hold fd apart */
        f->users++;
    } else {
        f = calloc(1, sizeof(*f));
        if (f == NULL || reserve(t) < 0) {
            free(f);
            return -ENOMEM;
        }
        f->fd = fd;
        f->users = 1;
        f->dev = st->st_dev;
        f->ino = st->st_ino;
        f->accmode = accmode;
        h = hash(f->dev, f->ino, accmode, t->nbuckets);
        f->next = t->bucket[h];
        t->bucket[h] = f;
        t->count++;
    }
    if (shrink_sealed)
        __atomic_store_n(&f->shrink_sealed, true, __ATOMIC_RELAXED);
    *out = f;
    return 0;
}

void mu_dma_files_put(struct mu_dma_files *t, struct mu_dma_file *f)
{
    struct mu_dma_file **link;

    if (--f->users > 0)
        return;
    link = &t->bucket[hash(f->dev, f->ino, f->accmode, t->nbuckets)];
    while (*link != f)
        link = &(*link)->next;
    *link = f->next;
    t->count--;
    close(f->fd);
    free(f);
}
