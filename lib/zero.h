/*
 * zero.h - reserved space in the public structs must be 0 on input (see
 * muser.h's preamble); this says whether it is.
 */
#ifndef MUSER_ZERO_H
#define MUSER_ZERO_H

#include <stdbool.h>
#include <stddef.h>

static inline bool mu_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

#endif
