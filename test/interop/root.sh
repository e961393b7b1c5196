#!/bin/bash
# root.sh CACHE - make sure a Debian trixie root with the real client
# (QEMU's vfio-user-pci from trixie-backports), its firmware, a Linux 6.12
# guest kernel and busybox exists under CACHE; print its path.
#
# The root lives outside the build directory so every clone on the machine
# shares it.  Its name carries a stamp of everything below that shapes it:
# change the package list or this recipe and a new root is built beside
# the old one.  Only Debian's archive is needed; when it cannot be reached
# we say so in one line and fail.
set -euo pipefail

CACHE=${1:?usage: root.sh CACHE}
MIRROR=${MUSER_INTEROP_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
QEMU_VERSION=1:11.1.3+ds-2~bpo13+1
# cpio and xz build the guest's initramfs inside the root (the host may
# have neither); seabios is QEMU's BIOS, qemu's own option ROMs come with
# qemu-system-data.
PKGS="qemu-system-x86=$QEMU_VERSION qemu-system-common=$QEMU_VERSION
      qemu-system-data=$QEMU_VERSION seabios/$SUITE-backports ipxe-qemu
      linux-image-amd64 busybox-static cpio xz-utils kmod"
RECIPE_VERSION=1

stamp=$(printf '%s\n' "$RECIPE_VERSION" "$SUITE" "$QEMU_VERSION" $PKGS |
        sha256sum | cut -c1-12)
root=$CACHE/root-$stamp
base=$CACHE/base-$SUITE

if [ -f "$root/.muser-interop-ok" ]; then
    echo "$root"
    exit 0
fi

# One builder at a time: two `make interop` runs share the cache.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$root/.muser-interop-ok" ]; then
    echo "$root"
    exit 0
fi

reachable() {
    local hostport=${MIRROR#http://}
    hostport=${hostport%%/*}
    local host=${hostport%%:*} port=80
    [ "$host" != "$hostport" ] && port=${hostport##*:}
    timeout 20 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}
if ! reachable; then
    echo "interop: cannot reach the Debian archive $MIRROR to build the QEMU/guest root (set MUSER_INTEROP_MIRROR)" >&2
    exit 1
fi

if ! command -v debootstrap >/dev/null; then
    echo "interop: debootstrap missing (make deps installs it)" >&2
    exit 1
fi

log=$CACHE/build-$stamp.log
: >"$log"
echo "interop: building the trixie root in $root (log $log; takes minutes)" >&2

if [ ! -f "$base/.debootstrap-ok" ]; then
    rm -rf "$base.tmp"
    debootstrap --variant=minbase $SUITE "$base.tmp" "$MIRROR" >>"$log" 2>&1 || {
        echo "interop: debootstrap of $SUITE failed, see $log" >&2; exit 1; }
    touch "$base.tmp/.debootstrap-ok"
    rm -rf "$base"
    mv "$base.tmp" "$base"
fi

rm -rf "$root.tmp"
cp -a "$base" "$root.tmp"
rm -f "$root.tmp/.debootstrap-ok"
cat >"$root.tmp/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-backports main
SRC
# A chroot has no init: keep package scripts from starting services.
printf '#!/bin/sh\nexit 101\n' >"$root.tmp/usr/sbin/policy-rc.d"
chmod +x "$root.tmp/usr/sbin/policy-rc.d"
in_root() {
    DEBIAN_FRONTEND=noninteractive LC_ALL=C chroot "$root.tmp" "$@" >>"$log" 2>&1
}
in_root apt-get update || {
    echo "interop: apt-get update in the root failed, see $log" >&2; exit 1; }
# shellcheck disable=SC2086
in_root apt-get install -y --no-install-recommends $PKGS || {
    echo "interop: installing QEMU and the guest kernel failed, see $log" >&2; exit 1; }
in_root apt-get clean
chroot "$root.tmp" qemu-system-x86_64 --version | head -1 >>"$log"
touch "$root.tmp/.muser-interop-ok"
rm -rf "$root"
mv "$root.tmp" "$root"
echo "$root"
