#!/bin/bash
# run.sh BUILD [SCENARIO...] - the muser samples against the real client:
# QEMU's vfio-user-pci (TCG) and a Linux 6.12 guest with its stock nvme and
# gpio-pci-idio-16 drivers.  Prints one PASS/FAIL line per scenario, then
# "N passed, M failed"; exits non-zero unless every scenario passed.
#
# QEMU, the firmware and the guest kernel come from a Debian trixie root
# (root.sh, cached in $MUSER_INTEROP_CACHE).  QEMU runs chrooted there; the
# devices run on the host, built from this tree, their sockets in a
# directory inside the root.  All checks run inside the guest (guest/init,
# guest/muser-guest.c) and come back as markers on the serial console.
#
# Environment:
#   MUSER_NVME, MUSER_GPIO    the sample binaries (default: in BUILD)
#   MUSER_INTEROP_CACHE       where the root lives (/var/cache/muser-interop)
#   MUSER_INTEROP_TIMEOUT     seconds one QEMU run may take (default 300)
#   MUSER_INTEROP_KEEP=1      keep the run directory inside the root
set -uo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD [SCENARIO...]" >&2
    exit 2
fi
BUILD=$(realpath "$1")
shift
HERE=$(dirname "$(realpath "$0")")
CACHE=${MUSER_INTEROP_CACHE:-/var/cache/muser-interop}
NVME=${MUSER_NVME:-$BUILD/samples/nvme/muser-nvme}
GPIO=${MUSER_GPIO:-$BUILD/samples/muser-gpio-pci-idio-16}
TIMEOUT=${MUSER_INTEROP_TIMEOUT:-300}
LOGS=$BUILD/interop
ALL="gpio nvme-trapped nvme-polled nvme-ioeventfd nvme-2ns reboot kill
     seabios-boot smp8 smp8-pollers"

for b in "$NVME" "$GPIO"; do
    if [ ! -x "$b" ]; then
        echo "interop: sample binary $b missing (build first, or set MUSER_NVME/MUSER_GPIO)"
        exit 1
    fi
done

if [ "$(id -u)" != 0 ]; then
    echo "interop: needs root (debootstrap, chroot): run it as root or through sudo (make interop does)"
    exit 1
fi
ROOT=$("$HERE/root.sh" "$CACHE") || exit 1
KERNEL=$(cd "$ROOT" && ls boot/vmlinuz-* | head -1)
KVER=${KERNEL#boot/vmlinuz-}

# The run directory is inside the root: QEMU sees it as $GRUN.  Those of
# runs that were killed before they could clean up go first.
GRUN=/muser-interop/run-$$
RUN=$ROOT$GRUN
for d in "$ROOT"/muser-interop/run-*; do
    [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
done
rm -rf "$RUN"
mkdir -p "$RUN" "$LOGS"

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    [ "${MUSER_INTEROP_KEEP:-0}" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------- the guest's initramfs ----------------

# Modules in load order: each after what it depends on (modules.dep).
mod_order() {
    local dep=$ROOT/lib/modules/$KVER/modules.dep m d
    for m in "$@"; do
        local line
        line=$(grep -E "/$m\.ko(\.xz)?:" "$dep") || {
            echo "interop: module $m not in $dep" >&2; return 1; }
        for d in ${line#*:}; do
            mod_order "$(basename "${d%%.ko*}")" || return 1
        done
        echo "${line%%:*}"
    done
}

build_initramfs() {
    local st=$RUN/initramfs m
    mkdir -p "$st/bin" "$st/lib/modules" "$st/proc" "$st/sys" "$st/dev"
    cp "$ROOT/bin/busybox" "$st/bin/busybox"
    cp "$HERE/guest/init" "$st/init"
    chmod 755 "$st/init"
    gcc -static -O2 -Wall -Wextra -Werror -pthread -o "$st/bin/muser-guest" \
        "$HERE/guest/muser-guest.c" || return 1
    : >"$st/modules"
    for m in $(mod_order nvme gpio-pci-idio-16 | awk '!seen[$0]++'); do
        local name
        name=$(basename "${m%%.ko*}").ko
        # Uncompressed: busybox insmod need not know the format; the
        # root's xz, as the host may not have one.
        case $m in
        *.xz) chroot "$ROOT" xz -dc "/lib/modules/$KVER/$m" ;;
        *) cat "$ROOT/lib/modules/$KVER/$m" ;;
        esac >"$st/lib/modules/$name" || return 1
        echo "$name" >>"$st/modules"
    done
    # cpio comes from the root: the host need not have it.
    chroot "$ROOT" sh -c "cd $GRUN/initramfs && find . | cpio -o -H newc --quiet" |
        gzip -1 >"$RUN/initrd.gz"
}

# ---------------- running things ----------------

# wait_marker FILE REGEX PID SECS: 0 once FILE has a line matching REGEX,
# 1 if PID ended without it, 2 after SECS.  The file is the event; the
# pause only paces the look.
wait_marker() {
    local file=$1 re=$2 pid=$3 end=$((SECONDS + $4))
    while [ $SECONDS -lt $end ]; do
        grep -aqE "$re" "$file" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            grep -aqE "$re" "$file" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.2
    done
    return 2
}

# wait_exit PID SECS: the process's exit status, or 124 after killing it
# when SECS have passed.
wait_exit() {
    local pid=$1 end=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 124
    fi
    wait "$pid" 2>/dev/null
}

# dev_start LOGDIR CMD...: start a device, wait for its socket; DPID.
dev_start() {
    local dir=$1; shift
    record "$@" "$RUN/$SC.sock"
    "$@" "$RUN/$SC.sock" >"$dir/device.log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    local end=$((SECONDS + 60))
    while [ ! -S "$RUN/$SC.sock" ]; do
        if ! kill -0 "$DPID" 2>/dev/null || [ $SECONDS -ge $end ]; then
            REASON="device did not come up: $(tail -1 "$dir/device.log")"
            return 1
        fi
        sleep 0.1
    done
}

# dev_stop: the device must still be running and exit 0 on SIGTERM.
dev_stop() {
    if ! kill -0 "$DPID" 2>/dev/null; then
        wait "$DPID" 2>/dev/null
        REASON="${REASON:-device process died (status $?)}"
        return 1
    fi
    kill -TERM "$DPID"
    wait_exit "$DPID" 60
    local rc=$?
    if [ $rc -ne 0 ]; then
        REASON="${REASON:-device exited with status $rc on SIGTERM}"
        return 1
    fi
}

# record CMD...: append the command, shell-quoted, to the scenario's
# commands file (what to run to do the same by hand).
record() {
    local a line=
    for a in "$@"; do
        case $a in
        *[!A-Za-z0-9_./=:,+@%-]*) a="'${a//\'/\'\\\'\'}'" ;;
        esac
        line="$line${line:+ }$a"
    done
    echo "$line" >>"$DIR/commands"
}

# qemu_start N EXTRA-ARGS...: QEMU run N of this scenario, in the
# background (QPID); console-N.log and qemu-N.log in the scenario's logs.
# QEMU waits up to x-msg-timeout ms for each reply of the device: far
# longer than a device descheduled on a loaded machine takes (the default
# is 5 s); the run as a whole is bounded by the caller.
qemu_start() {
    local n=$1; shift
    local cmd=(chroot "$ROOT" qemu-system-x86_64 -accel tcg -nodefaults -no-user-config
        -display none -m 512M
        -object memory-backend-memfd,id=mem,size=512M,share=on
        -machine q35,memory-backend=mem
        -serial stdio -trace 'enable=vfio_user*'
        -device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$GRUN/$SC.sock\",\"type\":\"unix\"},\"x-msg-timeout\":60000}"
        "$@")
    record "${cmd[@]}"
    "${cmd[@]}" </dev/null >"$DIR/console-$n.log" 2>"$DIR/qemu-$n.log" &
    QPID=$!
    PIDS+=("$QPID")
}

# kernel SCENARIO-ARGS...: KARGS boot the guest kernel with our initramfs.
# The nvme timeouts are short enough that a device which never answers
# fails within the run's bound, and far longer than any command takes.
kernel() {
    KARGS=(-kernel "/$KERNEL" -initrd "$GRUN/initrd.gz" -append
        "console=ttyS0 loglevel=4 panic=-1 nvme_core.admin_timeout=30 nvme_core.io_timeout=30 $*")
}

# qemu_boot N SECS ARGS...: a guest run to its end (poweroff).
qemu_boot() {
    local n=$1 secs=$2; shift 2
    qemu_start "$n" "$@"
    wait_exit "$QPID" "$secs"
    local rc=$?
    if [ $rc = 124 ]; then
        REASON="${REASON:-QEMU run $n timed out after ${secs}s}"
        return 1
    fi
    return 0
}

# Why a run failed, from what the logs say: the guest's failed checks,
# else QEMU's first error (its warnings are not why), else how it ended.
qemu_reason() {
    local n=$1 l
    l=$(grep -a 'MUSER-CHECK fail' "$DIR"/console-*.log | sed 's/.*MUSER-CHECK fail //' |
        awk '{print $1}' | paste -sd, -)
    [ -n "$l" ] && { echo "guest checks failed: $l"; return; }
    l=$(grep -a -E '^qemu-system-x86_64: ' "$DIR/qemu-$n.log" | grep -av ': warning: ' | head -1)
    l=${l#qemu-system-x86_64: }
    [ -n "$l" ] && { echo "QEMU: ${l#-device * }"; return; }
    grep -aqE 'Kernel panic' "$DIR/console-$n.log" && { echo "guest kernel panic"; return; }
    grep -aq 'MUSER-END' "$DIR/console-$n.log" || { echo "guest did not finish its checks"; return; }
}

# guest_ok N REQUIRED-CHECK...: console-N.log has every required check
# passed, none failed, and the guest's end marker.
guest_ok() {
    local n=$1 c log=$DIR/console-$1.log
    shift
    if grep -aq 'MUSER-CHECK fail' "$log" || ! grep -aq 'MUSER-END' "$log"; then
        REASON="${REASON:-$(qemu_reason "$n")}"
        return 1
    fi
    for c in "$@"; do
        if ! grep -aqE "MUSER-CHECK ok $c"$'\r'"?\$" "$log"; then
            REASON="${REASON:-guest check $c missing}"
            return 1
        fi
    done
}

# The guest's figures, each QEMU run's after "runN:" when there are several
# (kill: the killed guest's, then the new one's), each boot's after "bootN:"
# when a run boots more than once (reboot).
figures() {
    local f n=0
    for f in "$DIR"/console-*.log; do
        n=$((n + 1))
    done
    for f in "$DIR"/console-*.log; do
        [ -e "$f" ] || continue
        local nums
        nums=$(grep -aoE 'MUSER-NUM [a-z0-9_]+=[^ ]+|MUSER-BOOT [0-9]+' "$f" |
            sed -e 's/MUSER-NUM //' -e 's/MUSER-BOOT \([0-9]*\)/boot\1:/' |
            tr -d '\r' | paste -sd' ' -)
        [ -n "$nums" ] || continue      # a run without a kernel (SeaBIOS)
        [ $n -gt 1 ] && printf 'run%s: ' "$(basename "$f" .log | sed 's/console-//')"
        echo "$nums"
    done | paste -sd' ' -
}

NVME_CHECKS="nvme-bound-n1 nvme-driver size-n1 identify-serial identify-model
             identify-firmware write-n1 verify-n1 seqread-n1 nvme-no-timeouts"
MIB=$((1 << 20))

# ---------------- scenarios ----------------

sc_nvme() {  # sc_nvme DOORBELL-OPTIONS...
    local serial=MUSER-$SC-$$
    serial=${serial:0:20}
    dev_start "$DIR" "$NVME" -v -v --size 128M --serial "$serial" "$@" || return 1
    kernel muser.scenario=nvme muser.size=$((128 * MIB)) muser.serial="$serial" \
        muser.seed=$$
    qemu_boot 1 "$TIMEOUT" "${KARGS[@]}" || return 1
    guest_ok 1 $NVME_CHECKS || return 1
    dev_stop
}
sc_nvme_trapped() { sc_nvme --doorbells trapped; }
sc_nvme_polled() { sc_nvme --doorbells polled; }
sc_nvme_ioeventfd() { sc_nvme --ioeventfd; }

sc_nvme_2ns() {
    dev_start "$DIR" "$NVME" -v -v --namespaces 2 --size 96M || return 1
    kernel muser.scenario=nvme2ns muser.size=$((96 * MIB))
    qemu_boot 1 "$TIMEOUT" "${KARGS[@]}" || return 1
    guest_ok 1 nvme-bound-n1 nvme-bound-n2 size-n1 size-n2 write-n1 write-n2 \
        verify-n1 verify-n2 seqread-n2 nvme-no-timeouts || return 1
    dev_stop
}

sc_gpio() {
    local out=0xa5c3 i
    dev_start "$DIR" "$GPIO" -v || return 1
    kernel muser.scenario=gpio muser.outputs=$out
    qemu_start 1 "${KARGS[@]}"
    echo "# then kill -USR1 the device each time the guest prints MUSER-GPIO-WAIT" >>"$DIR/commands"
    # Each input change is made once the guest waits for it.
    for i in 0 1 2; do
        if ! wait_marker "$DIR/console-1.log" "MUSER-GPIO-WAIT $i" "$QPID" "$TIMEOUT"; then
            REASON="guest never waited for input change $i: $(qemu_reason 1)"
            return 1
        fi
        kill -USR1 "$DPID"
    done
    wait_exit "$QPID" "$TIMEOUT" || true
    guest_ok 1 gpio-bound gpio-chip gpio-32-lines gpio-outputs gpio-input-events \
        gpio-irqs-counted || return 1
    # The outputs the guest set are the device's: it reports them when the
    # client leaves.
    if ! grep -q "outputs $out" "$DIR/device.log"; then
        REASON="device does not report the guest's outputs $out"
        return 1
    fi
    dev_stop
}

sc_reboot() {
    dev_start "$DIR" "$NVME" -v -v --size 96M || return 1
    kernel muser.scenario=reboot muser.seed=$$
    qemu_start 1 "${KARGS[@]}"
    if ! wait_marker "$DIR/console-1.log" 'MUSER-BOOT 2' "$QPID" "$TIMEOUT"; then
        REASON="no second boot: $(qemu_reason 1)"
        return 1
    fi
    wait_exit "$QPID" "$TIMEOUT"
    if [ "$(grep -ac 'MUSER-BOOT 1' "$DIR/console-1.log")" != 1 ]; then
        REASON="data gone after reboot -f (first boot seen again)"
        return 1
    fi
    guest_ok 1 write-n1 verify-n1 verify-after-reboot seqread-after-reboot \
        nvme-no-timeouts || return 1
    dev_stop
}

sc_kill() {
    dev_start "$DIR" "$NVME" -v -v --size 160M || return 1
    kernel muser.scenario=killio muser.seed=$$
    qemu_start 1 "${KARGS[@]}"
    if ! wait_marker "$DIR/console-1.log" 'MUSER-IO-RUNNING' "$QPID" "$TIMEOUT"; then
        REASON="guest never started its I/O: $(qemu_reason 1)"
        return 1
    fi
    kill -KILL "$QPID"
    wait "$QPID" 2>/dev/null
    if ! kill -0 "$DPID" 2>/dev/null; then
        REASON="device died with its client"
        return 1
    fi
    kernel muser.scenario=killcheck muser.seed=$$ muser.size=$((160 * MIB))
    qemu_boot 2 "$TIMEOUT" "${KARGS[@]}" || return 1
    grep -aq 'MUSER-CHECK ok write-n1' "$DIR/console-1.log" || {
        REASON="first guest did not write its data"; return 1; }
    guest_ok 2 nvme-bound-n1 size-n1 verify-after-kill seqread-after-kill \
        write-after-kill verify-written-after-kill nvme-no-timeouts || return 1
    dev_stop
}

sc_seabios_boot() {
    local marker=MUSER-BOOTSECTOR-$$-$RANDOM
    dev_start "$DIR" "$NVME" -v -v --size 64M || return 1
    kernel muser.scenario=bootsector muser.marker=$marker
    qemu_boot 1 "$TIMEOUT" "${KARGS[@]}" || return 1
    guest_ok 1 write-bootsector nvme-no-timeouts || return 1
    # No kernel this time: SeaBIOS finds the NVMe disk and runs its sector.
    # SeaBIOS's own messages go to its debug port, kept with the logs.
    qemu_start 2 -chardev "file,id=bios,path=$GRUN/$SC-bios.log" \
        -device isa-debugcon,iobase=0x402,chardev=bios
    if ! wait_marker "$DIR/console-2.log" "$marker" "$QPID" "$TIMEOUT"; then
        cp "$RUN/$SC-bios.log" "$DIR/seabios-2.log" 2>/dev/null
        REASON="SeaBIOS did not run the boot sector: $(grep -ah -m1 -iE 'could not|timeout|no bootable' "$DIR/seabios-2.log" "$DIR/console-2.log" | tr -d '\r' || qemu_reason 2)"
        return 1
    fi
    cp "$RUN/$SC-bios.log" "$DIR/seabios-2.log" 2>/dev/null
    kill -KILL "$QPID"      # the sector halts forever
    wait "$QPID" 2>/dev/null
    dev_stop
}

sc_smp8() {  # sc_smp8 [DOORBELL-OPTIONS...]
    dev_start "$DIR" "$NVME" -v -v --size 96M "$@" || return 1
    kernel muser.scenario=smp muser.seed=$$
    qemu_boot 1 "$TIMEOUT" -smp 8 "${KARGS[@]}" || return 1
    guest_ok 1 nvme-bound-n1 io-queue-per-cpu parallel-io every-queue-interrupts \
        nvme-no-timeouts ||
        return 1
    dev_stop
}
# The eight queues over three pollers (queue q on poller q % 3).
sc_smp8_pollers() { sc_smp8 --doorbells polled --pollers 3; }

# ---------------- main ----------------

if ! build_initramfs >"$LOGS/initramfs.log" 2>&1; then
    echo "interop: building the guest initramfs failed, see $LOGS/initramfs.log"
    exit 1
fi
# The latest initramfs where running a scenario by hand finds it (README).
cp "$RUN/initrd.gz" "$ROOT/muser-interop/.initrd.gz.$$" &&
    mv "$ROOT/muser-interop/.initrd.gz.$$" "$ROOT/muser-interop/initrd.gz"

passed=0 failed=0
for SC in ${*:-$ALL}; do
    fn=sc_${SC//-/_}
    if ! declare -F "$fn" >/dev/null; then
        echo "interop: no scenario $SC (have: $(echo $ALL))"
        exit 2
    fi
    DIR=$LOGS/$SC
    rm -rf "$DIR"
    mkdir -p "$DIR"
    { echo "# $SC: the commands run, in order (the device in the background);"
      echo "# the run directory exists after the run with MUSER_INTEROP_KEEP=1"
    } >"$DIR/commands"
    REASON=
    start=$SECONDS
    PIDS=()
    if "$fn"; then
        printf 'PASS %-15s %4ds  %s\n' "$SC" $((SECONDS - start)) "$(figures)"
        passed=$((passed + 1))
    else
        printf 'FAIL %-15s %4ds  %s (logs: %s)\n' "$SC" $((SECONDS - start)) \
            "${REASON:-unknown}" "${DIR#"$PWD"/}"
        failed=$((failed + 1))
    fi
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -f "$RUN/$SC.sock"
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
