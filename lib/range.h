/*
 * range.h - overflow-safe range checks shared by the subsystems.
 */
#ifndef MUSER_RANGE_H
#define MUSER_RANGE_H

#include <stdbool.h>
#include <stdint.h>

/* [off, off + len) lies within [0, limit), and off + len does not wrap. */
static inline bool mu_range_ok(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

#endif /* MUSER_RANGE_H */
