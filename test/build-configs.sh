#!/bin/sh
# make test-configs: configure and build the main combinations of the
# options in meson_options.txt, each in a build directory of its own under
# OUT-DIR (default build-configs), the way a packager would try them.  No
# tests run here, only meson setup + ninja (+ an install into a scratch
# DESTDIR where what gets installed is the point).  The fuzz build is its
# own (make fuzz-build).  Usage: test/build-configs.sh [OUT-DIR]
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build-configs}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
failed=""

# name and meson options, one configuration a line.
CONFIGS='
no-samples   -Dsamples=false
no-tests     -Dtests=false
no-bench     -Dbench=false
all-off      -Dsamples=false -Dtests=false -Dbench=false
debug-log    -Ddebug_log=true
no-install   -Dinstall_samples=false -Dtests=false -Dbench=false
'

# What `meson install` put in DESTDIR's bin directory, one name a line.
installed_bins() {
    dir=$1
    rm -rf "$dir/destdir"
    meson install -C "$dir" --destdir "$dir/destdir" >"$dir/install.log" 2>&1 ||
        { echo "meson install failed, see $dir/install.log" >&2; return 1; }
    find "$dir/destdir" -path '*/bin/*' -type f -printf '%f\n' | sort | tr '\n' ' '
}

# The installed executables must be exactly these (none of them named
# like something a distribution already ships).
check_install() {
    name=$1 dir=$2 want=$3
    got=$(installed_bins "$dir") || return 1
    if [ "$got" != "$want" ]; then
        echo "$name: installs bin/ '$got', expected '$want'" >&2
        return 1
    fi
}

echo "$CONFIGS" | while read -r name opts; do
    [ -n "$name" ] || continue
    dir=$OUT/$name
    echo "== $name: $opts"
    # A directory from an earlier run is reconfigured in place (ninja then
    # rebuilds only what changed); one whose setup failed is started over.
    if [ -f "$dir/build.ninja" ]; then
        # shellcheck disable=SC2086
        meson configure "$dir" -Dwerror=true $opts >"$dir.setup.log" 2>&1 ||
            { echo "$name: meson configure failed:"; cat "$dir.setup.log"; exit 1; }
    else
        rm -rf "$dir"
        # shellcheck disable=SC2086
        meson setup "$dir" -Dwerror=true $opts >"$dir.setup.log" 2>&1 ||
            { echo "$name: meson setup failed:"; cat "$dir.setup.log"; exit 1; }
    fi
    ninja -C "$dir" >"$dir.ninja.log" 2>&1 ||
        { echo "$name: ninja failed:"; tail -n 40 "$dir.ninja.log"; exit 1; }
    case $name in
    debug-log)
        check_install "$name" "$dir" \
            'muser-cli muser-gpio-pci-idio-16 muser-nvme muser-nvme-client ' || exit 1 ;;
    no-install)
        check_install "$name" "$dir" '' || exit 1 ;;
    esac
done || failed=yes

if [ -n "$failed" ]; then
    echo "test-configs: FAILED (logs in $OUT/)"
    exit 1
fi
echo "test-configs: every configuration builds"
