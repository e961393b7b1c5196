#!/bin/sh
# make demo: start the sample devices on temporary sockets, drive them with
# the clients and show what happened.  Usage: samples/demo.sh BUILD-DIR
set -eu
BUILD=${1:-build}
CLI="$BUILD/samples/muser-cli"
GPIO="$BUILD/samples/muser-gpio-pci-idio-16"
NVME="$BUILD/samples/nvme/muser-nvme"
NVME_CLIENT="$BUILD/samples/nvme/muser-nvme-client"
dir=$(mktemp -d /tmp/muser-demo-XXXXXX)
pid=""

cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

wait_for() {
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1))
        [ $i -gt 200 ] && { echo "device did not start; its log:"; cat "$2"; exit 1; }
        sleep 0.05
    done
}

step() {
    echo
    echo "\$ muser-cli $*" | sed "s|$dir/||"
    "$CLI" "$@"
}

echo "== gpio-pci-idio-16: a 16-in/16-out digital I/O card =="
"$GPIO" -v "$dir/gpio.sock" 2>"$dir/gpio.log" &
pid=$!
wait_for "$dir/gpio.sock" "$dir/gpio.log"

step "$dir/gpio.sock" info
echo
echo "# set outputs 0-7 to 0xa5 and 8-15 to 0x3c, then read them back"
step "$dir/gpio.sock" write bar2 0 0xa5 1
step "$dir/gpio.sock" write bar2 4 0x3c 1
step "$dir/gpio.sock" read bar2 0 8
echo
echo "# enable the interrupt (a read of offset 2), then change the inputs"
step "$dir/gpio.sock" read bar2 2 1
kill -USR1 "$pid"; sleep 0.2
kill -USR1 "$pid"; sleep 0.2
echo "# inputs (offsets 1 and 5) and interrupt status (offset 6, 0x05 = pending)"
step "$dir/gpio.sock" read bar2 0 8
echo
echo "# out of range: refused with a clear error, and the device keeps serving"
step "$dir/gpio.sock" read bar2 0x100 4 || true
step "$dir/gpio.sock" read config 0 4

kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
echo
echo "== what the device logged (connects and disconnects left out) =="
grep -v -e 'client connected' -e 'negotiated' -e 'client dropped' -e 'state kept' \
    "$dir/gpio.log" | sed 's/^/  /'

# ---- NVMe ----

# Run muser-nvme-client, its output with the temporary directory left out; on
# failure show what the device logged, and stop.
nvme_client() {
    if ! "$NVME_CLIENT" "$@" >"$dir/client.out" 2>&1; then
        sed "s|$dir/||" "$dir/client.out"
        echo "muser-nvme-client failed; the device logged:"
        sed 's/^/  /' "$dir/nvme.log"
        exit 1
    fi
}

nvme_start() {
    rm -f "$dir/nvme.sock"
    "$NVME" -v --size 64M --lba-size 4096 "$@" "$dir/nvme.sock" 2>"$dir/nvme.log" &
    pid=$!
    wait_for "$dir/nvme.sock" "$dir/nvme.log"
}

nvme_stop() {
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

echo
echo "== nvme: an NVMe 1.4 controller, 64 MiB RAM namespace, polled doorbells =="
nvme_start --doorbells polled --serial DEMO-POLLED
echo "# bring-up the way Linux does it, Identify, write and read back 16"
echo "# blocks, 4 KiB random reads at queue depth 32 for a second, shutdown"
echo
echo "\$ muser-nvme-client nvme.sock demo --blocks 16"
nvme_client "$dir/nvme.sock" demo --blocks 16
sed "s|$dir/||" "$dir/client.out"
nvme_stop
echo
echo "== what the nvme device logged (DMA map/unmap left out) =="
grep '^nvme: ' "$dir/nvme.log" | grep -v -e 'DMA map' -e 'DMA unmap' |
    sed -e "s|$dir/||" -e 's/^/  /'

echo
echo "== the same with trapped doorbells: each doorbell write is a message =="
nvme_start --doorbells trapped --serial DEMO-TRAPPED
echo "\$ muser-nvme-client nvme.sock demo --blocks 16   (summary)"
nvme_client "$dir/nvme.sock" demo --blocks 16
grep -e '^connected' -e '^wrote' -e '^read them' -e '^random' -e 'shut down' \
    "$dir/client.out" | sed "s|$dir/||"
nvme_stop
