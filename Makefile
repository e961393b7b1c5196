# muser - the two commands a fresh Debian 12 machine needs:
#   make demo   build, start the sample devices, drive them with the client
#   make test   every test: each option combination builds, unit +
#               integration, again under ASan/UBSan, ThreadSanitizer and
#               valgrind, a short fuzzing run, and the samples against the
#               real client (QEMU vfio-user-pci + a Linux guest)
# Both install missing Debian packages first (make deps: apt-get, as root or
# via sudo); `make` / `make build` only build, and never run apt-get.
# The builds made here are developer builds: warnings are errors (--werror);
# the project's defaults leave that to the packager.

BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
CONFIGS_BUILD ?= build-configs
FUZZ_SECONDS ?= 60
SHORT_FUZZ_SECONDS ?= 20

# debootstrap: the interop root (test/interop/root.sh); libc6-dev: its
# guest program is linked -static; abigail-tools: abidw/abidiff for the
# ABI check (test/abi/check.sh).
PKGS := gcc libc6-dev make meson ninja-build pkg-config libjson-c-dev \
        libcmocka-dev valgrind clang libclang-rt-14-dev debootstrap \
        abigail-tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MESON_TEST := meson test --print-errorlogs --num-processes 2

.PHONY: all deps build test test-configs test-unit test-asan test-tsan \
        test-valgrind test-fuzz test-interop test-abi abi-update interop \
        fuzz-build demo bench fuzz install clean

all: build

deps:
	@missing=""; \
	for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y $$missing || \
	    { $(SUDO) apt-get update && $(SUDO) apt-get install -y $$missing; }; \
	fi

# The targets that need the packages pull deps in before any meson setup
# (order-only, so it holds under make -j too); a plain `make` does not.
DEPS_FIRST := $(if $(filter demo test test-% fuzz fuzz-build bench interop,$(MAKECMDGOALS)),deps)

$(BUILD)/build.ninja: | $(DEPS_FIRST)
	meson setup --werror $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja: | $(DEPS_FIRST)
	CC=gcc meson setup --werror $(ASAN_BUILD) -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dbench=false -Dbuildtype=debug

test-unit: deps build
	$(MESON_TEST) -C $(BUILD)

test-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	$(MESON_TEST) -C $(ASAN_BUILD) --setup=asan

# Data races: the DMA and interrupt paths are used from device threads
# while the context thread serves the client.
$(TSAN_BUILD)/build.ninja: | $(DEPS_FIRST)
	CC=gcc meson setup --werror $(TSAN_BUILD) -Db_sanitize=thread \
	  -Db_lundef=false -Dbench=false -Dbuildtype=debug

test-tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD)
	$(MESON_TEST) -C $(TSAN_BUILD) --setup=tsan

# The integration tests again, each test program and every device it starts
# under valgrind: any error or leak fails the run (test/meson.build).
test-valgrind: deps build
	$(MESON_TEST) -C $(BUILD) --setup=valgrind

$(FUZZ_BUILD)/build.ninja: | $(DEPS_FIRST)
	CC=clang meson setup --werror $(FUZZ_BUILD) -Dfuzz=true -Dsamples=false \
	  -Dtests=false -Dbench=false -Db_lundef=false

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

# make fuzz FUZZ_SECONDS=600: each harness for that long, corpus in test/fuzz.
fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_BUILD) $(SHORT_FUZZ_SECONDS)

# Every main combination of meson_options.txt configures and builds (and
# installs what it should), each in a directory under $(CONFIGS_BUILD)/:
# builds only, no tests.
test-configs: deps
	test/build-configs.sh $(CONFIGS_BUILD)

# The ABI: libmuser.so against the committed baseline test/abi/libmuser.abi
# (abidiff: any change fails), and a program built against the headers and
# library installed into a DESTDIR.  A deliberate ABI change records the
# new baseline with `make abi-update` and commits it.
test-abi: deps build
	test/abi/check.sh $(BUILD)

abi-update: build
	test/abi/check.sh $(BUILD) --update

test: test-configs test-unit test-abi test-asan test-tsan test-valgrind \
      test-fuzz test-interop
	@echo "make test: all suites passed"

# The real client: QEMU's vfio-user-pci (TCG) and a Linux guest's stock
# nvme and gpio-pci-idio-16 drivers against the samples built in $(BUILD)
# (test/interop/run.sh).  The first run builds a Debian trixie root with
# QEMU and the guest kernel from Debian's archive (a few minutes, cached in
# /var/cache/muser-interop for every clone on the machine); without the
# archive it fails in one line.  Runs as root (chroot): through sudo
# otherwise, passing on the MUSER_INTEROP_* settings run.sh documents.
#   make interop SCENARIOS="gpio nvme-trapped"
interop: deps build
	$(SUDO) env $(foreach v,$(filter MUSER_%,$(.VARIABLES)),'$(v)=$($(v))') \
	  test/interop/run.sh $(BUILD) $(SCENARIOS)

test-interop: interop

demo: deps build
	samples/demo.sh $(BUILD)

bench: build
	$(BUILD)/bench/muser-bench all

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(CONFIGS_BUILD)
