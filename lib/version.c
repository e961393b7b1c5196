/*
 * version.c - the library's version at run time (muser.h's MU_VERSION_*
 * at build time).  MU_BUILD_VERSION comes from meson's project version;
 * test_api checks the two agree.
 */
#include "muser.h"

#ifndef MU_BUILD_VERSION
#error "MU_BUILD_VERSION is set by lib/meson.build"
#endif

unsigned mu_version(void)
{
    return MU_VERSION;
}

const char *mu_version_string(void)
{
    return MU_BUILD_VERSION;
}
