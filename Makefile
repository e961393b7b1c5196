# muser - the two commands a fresh Debian 12 machine needs:
#   make demo   build, start the sample devices, drive them with the client
#   make test   every test: unit + integration, again under ASan/UBSan,
#               ThreadSanitizer and valgrind, plus a short fuzzing run
# Both install missing Debian packages first (apt-get, as root or via sudo).

BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
SHORT_FUZZ_SECONDS ?= 20

PKGS := gcc make meson ninja-build pkg-config libjson-c-dev libcmocka-dev \
        valgrind clang libclang-rt-14-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MESON_TEST := meson test --print-errorlogs --num-processes 2

.PHONY: all deps build test test-unit test-asan test-tsan test-valgrind test-fuzz \
        demo bench fuzz install clean

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

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	CC=gcc meson setup $(ASAN_BUILD) -Dsanitizers=address,undefined -Dbench=false \
	  -Dbuildtype=debug -Db_lundef=false

test-unit: build
	$(MESON_TEST) -C $(BUILD) --suite unit --suite integration

test-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(MESON_TEST) -C $(ASAN_BUILD) --suite unit --suite integration

# Data races: the DMA and interrupt paths are used from device threads
# while the context thread serves the client.
$(TSAN_BUILD)/build.ninja:
	CC=gcc meson setup $(TSAN_BUILD) -Dsanitizers=thread -Dbench=false \
	  -Dbuildtype=debug -Db_lundef=false

test-tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  $(MESON_TEST) -C $(TSAN_BUILD) --suite unit --suite integration \
	  --timeout-multiplier 3

# The integration tests again, each test program and every device it starts
# under valgrind: any error or leak fails the run.
test-valgrind: build
	MU_VALGRIND=1 $(MESON_TEST) -C $(BUILD) --suite integration \
	  --timeout-multiplier 4 \
	  --wrapper 'valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-fds=no -q'

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dsamples=false -Dtests=false \
	  -Dbench=false -Dwerror=true -Db_lundef=false

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

# make fuzz FUZZ_SECONDS=600: each harness for that long, corpus in test/fuzz.
fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-fuzz: fuzz-build
	test/fuzz/run.sh $(FUZZ_BUILD) $(SHORT_FUZZ_SECONDS)

test: test-unit test-asan test-tsan test-valgrind test-fuzz interop
	@echo "make test: all suites passed"

# The real client: QEMU's vfio-user-pci and a Linux guest's stock drivers
# against the samples (test/interop/run.sh; the QEMU root is cached in
# /var/cache/muser-interop).  make interop SCENARIOS="gpio nvme-trapped"
.PHONY: interop
interop: build
	@dpkg -s debootstrap >/dev/null 2>&1 || $(MAKE) --no-print-directory deps PKGS=debootstrap
	test/interop/run.sh $(BUILD) $(SCENARIOS)

demo: build
	samples/demo.sh $(BUILD)

bench: build
	$(BUILD)/bench/muser-bench all

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
