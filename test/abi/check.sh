#!/bin/sh
# test/abi/check.sh BUILD [--update]
#
# The ABI of the installed library, held against the committed baseline
# (test/abi/libmuser.abi, an abidw dump of the exported functions and the
# types of include/muser.h and include/muser-client.h they reach):
#  1. abidw dumps BUILD's libmuser.so the same way and abidiff compares the
#     two.  Any difference fails: a removed or changed symbol or type breaks
#     programs built against the baseline; an added one is a new ABI that
#     must be recorded on purpose (--update rewrites the baseline; commit it
#     with the change that made it).
#  2. The library is installed into a scratch DESTDIR and a program using
#     both public headers is compiled against the installed headers only,
#     linked against the installed library (through its pkg-config file)
#     and run: the headers must stand alone (no internal header, no test
#     call) and the version it was built against must be the one it runs.
# abidw/abidiff come from Debian's abigail-tools (make deps).
set -eu

build=${1:?usage: check.sh BUILD [--update]}
mode=${2:-check}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
base="$here/libmuser.abi"
lib=$(ls "$build"/lib/libmuser.so.*.*.* 2>/dev/null | head -n 1)
[ -n "$lib" ] || { echo "abi: no libmuser.so.X.Y.Z in $build/lib (build first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

dump() {
    abidw --headers-dir "$src/include" --drop-private-types \
          --exported-interfaces-only --no-corpus-path --no-show-locs \
          --no-comp-dir-path --type-id-style hash "$1"
}

dump "$lib" > "$tmp/now.abi"
if [ "$mode" = --update ]; then
    cp "$tmp/now.abi" "$base"
    echo "abi: baseline $base rewritten from $lib"
    exit 0
fi

rc=0
abidiff "$base" "$tmp/now.abi" > "$tmp/diff" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$tmp/diff"
    if [ $((rc & 8)) -ne 0 ]; then
        echo "abi: INCOMPATIBLE change against $base (abidiff exit $rc)" >&2
    elif [ $((rc & 4)) -ne 0 ]; then
        echo "abi: the ABI changed against $base (abidiff exit $rc); if" \
             "meant, record it: test/abi/check.sh $build --update" >&2
    else
        echo "abi: abidiff failed (exit $rc)" >&2
    fi
    exit 1
fi
nsyms=$(grep -c '<elf-symbol ' "$base")
echo "abi: $nsyms exported symbols, no change against the baseline"

# 2. Build a program against the installed headers and library only.
meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet \
    >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
libdir=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"][0])')
root="$tmp/root$prefix"
case $libdir in /*) ldir="$tmp/root$libdir" ;; *) ldir="$root/$libdir" ;; esac
cat > "$tmp/user.c" <<'PROG'
#include <muser.h>
#include <muser-client.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    struct muc_opts o = { .timeout_ms = 100 };
    muc_t *c;
    mu_ctx_t *ctx;

    if (mu_version() != MU_VERSION) {
        fprintf(stderr, "built against %#x, runs with %#x\n", MU_VERSION,
                mu_version());
        return 1;
    }
    if (mu_ctx_create(&ctx, "/nonexistent/dir/s", MU_DEV_PCI, NULL) != 0 ||
        mu_ctx_set_flags(ctx, MU_CTX_ONE_CLIENT) != 0)
        return 1;
    mu_ctx_destroy(ctx);
    if (muc_connect(&c, "/nonexistent/dir/s", &o) >= 0)
        return 1;
    printf("%s\n", mu_version_string());
    return 0;
}
PROG
# The installed muser.pc, its prefix moved into the DESTDIR.
PKG_CONFIG_PATH="$ldir/pkgconfig" \
    pkg-config --define-variable=prefix="$root" --cflags --libs muser \
    > "$tmp/flags"
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -o "$tmp/user" "$tmp/user.c" \
    $(cat "$tmp/flags")
if nm -D "$ldir"/libmuser.so | grep -Eq ' T (muc_request|muc_send_bytes|muc_recv_msg|muc_connect_raw|muc_set_irqs|mu_dma__)'; then
    echo "abi: the installed library exports a test-only call" >&2
    exit 1
fi
ver=$(LD_LIBRARY_PATH="$ldir" "$tmp/user")
echo "abi: a program built against the installed headers links and runs ($ver)"
