#!/bin/sh
# test/stress.sh N - run `make test` N times (from the repository's top)
# with two busy loops beside it, the load of a shared 2-core machine.
# Prints "N passed, M failed" last; exits non-zero if any run failed.
# Each failing run's log is kept in the directory named at the start
# (STRESS_LOGS=dir to choose it).
set -u
n=${1:?usage: test/stress.sh N}
case $n in ''|*[!0-9]*) echo "usage: test/stress.sh N" >&2; exit 2;; esac
top=$(cd "$(dirname "$0")/.." && pwd)
logs=${STRESS_LOGS:-$(mktemp -d /tmp/muser-stress-XXXXXX)}
mkdir -p "$logs"
echo "stress: $n runs of make test with 2 busy loops; failing logs in $logs"

pids=""
stop_load() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    pids=""
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT TERM
for i in 1 2; do
    ( while :; do :; done ) &
    pids="$pids $!"
done

passed=0
failed=0
i=1
while [ "$i" -le "$n" ]; do
    log="$logs/run-$i.log"
    if make -C "$top" test >"$log" 2>&1; then
        passed=$((passed + 1))
        rm -f "$log"
        echo "run $i: passed"
    else
        failed=$((failed + 1))
        echo "run $i: FAILED, log kept: $log"
    fi
    i=$((i + 1))
done
stop_load
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
