#!/bin/sh
# run.sh BUILD_DIR SECONDS - run every fuzz harness for SECONDS each.
#
# For each harness: first replay its crash reproducers
# (test/fuzz/regressions/<harness>/), then fuzz from a scratch copy of its
# committed seed corpus (test/fuzz/corpus/<harness>/); the repository is
# never written to.  New corpus entries and any crash artifact go under
# BUILD_DIR/fuzz-out/<harness>/.  Exits 1 if any harness fails.
#
# Extra libFuzzer flags may be passed in FUZZ_FLAGS (e.g. -jobs=2); the
# fuzzer runs in BUILD_DIR/fuzz-out/<harness>, where -jobs writes its logs.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
# The fast harnesses; FUZZ_HARNESSES may add fuzz_server_sock (the socket
# link: device threads and real time, ~100 exec/s; see fuzz_server_sock.c).
harnesses="${FUZZ_HARNESSES:-fuzz_wire fuzz_server fuzz_client}"

# Leaks are failures, and UBSan stops at its first report (the build makes
# its checks non-recoverable as well).  An allocation too big to succeed
# returns NULL, as malloc would (the library must cope), but libFuzzer still
# reports any single allocation above -rss_limit_mb.
# The quarantine (freed memory kept poisoned, to catch a use after free)
# is 32 MiB instead of ASan's 256: an input frees tens of KiB, so a block
# stays poisoned for a thousand inputs after its own, while a 256 MiB one
# takes the whole of a short run to fill, and until then every allocation
# is fresh memory, a page fault (~20 us on a VM) every few.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:quarantine_size_mb=32}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

report_artifacts() {
    for a in "$2/artifacts"/*; do
        [ -e "$a" ] && echo "== $1: artifact: $a"
    done
    echo "== $1: reproduce with: $3 <artifact>;" \
         "minimize with: $3 -minimize_crash=1 -runs=10000 <artifact>"
}

out_root=$(mkdir -p "$build/fuzz-out" && cd "$build/fuzz-out" && pwd) || exit 1
failed=""

for h in $harnesses; do
    bin="$build/test/fuzz/$h"
    if [ ! -x "$bin" ]; then
        echo "run.sh: $bin not built (make fuzz-build)" >&2
        exit 1
    fi
    bin="$(cd "$(dirname "$bin")" && pwd)/$h"
    out="$out_root/$h"
    rm -rf "$out"
    mkdir -p "$out/corpus" "$out/artifacts"

    # 1. Inputs that once crashed must not crash again.
    regs=""
    if [ -d "$here/regressions/$h" ]; then
        for f in "$here/regressions/$h"/*; do
            # *.pending: found, not fixed yet (in code owned elsewhere)
            case "$(basename "$f")" in
            README*|*.pending|\*) ;;
            *) regs="$regs $f" ;;
            esac
        done
    fi
    if [ -n "$regs" ]; then
        echo "== $h: replaying regressions/$h"
        # shellcheck disable=SC2086
        if ! "$bin" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
                -artifact_prefix="$out/artifacts/" $regs \
                >"$out/regressions.log" 2>&1; then
            tail -40 "$out/regressions.log"
            echo "== $h: a regression input fails again (log: $out/regressions.log)"
            grep '^Running: ' "$out/regressions.log" | tail -1 |
                sed "s/^Running: /== $h: failing input: /"
            report_artifacts "$h" "$out" "$bin"
            failed="$failed $h"
            continue
        fi
    fi

    # 2. Fuzz from a copy of the seeds.  One process has nobody else
    # writing to its corpus: no -reload (libFuzzer re-reads the directory
    # every second by default, its own new units included); runs of
    # several (-jobs, -workers, -fork) share one and keep it.
    reload=-reload=0
    case " ${FUZZ_FLAGS:-} " in
    *" -jobs="*|*" -workers="*|*" -fork="*) reload= ;;
    esac
    seeds=$h
    [ "$h" = fuzz_server_sock ] && seeds=fuzz_server   # same input format
    cp "$here/corpus/$seeds"/* "$out/corpus/" 2>/dev/null
    echo "== $h: fuzzing for ${secs}s"
    # shellcheck disable=SC2086
    (cd "$out" && "$bin" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -detect_leaks=1 $reload \
        -artifact_prefix="$out/artifacts/" ${FUZZ_FLAGS:-} \
        "$out/corpus" >"$out/fuzz.log" 2>&1)
    rc=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$out/fuzz.log" | tail -2
    sed -n 's/^stat::average_exec_per_sec:[[:space:]]*/exec\/s: /p' \
        "$out/fuzz.log" | sed "s/^/== $h: /"
    if [ $rc -ne 0 ]; then
        tail -60 "$out/fuzz.log"
        echo "== $h: FAILED (exit $rc)"
        report_artifacts "$h" "$out" "$bin"
        failed="$failed $h"
    else
        echo "== $h: ok"
    fi
done

if [ -n "$failed" ]; then
    echo "run.sh: failed:$failed"
    exit 1
fi
echo "run.sh: all harnesses passed"
