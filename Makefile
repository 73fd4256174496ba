# leadintake: the PostgreSQL extension (PGXS) and the HTTP shim.
# make && make install; make installcheck runs pg_regress; scripts/test.sh runs everything.

EXTENSION = leadintake
MODULE_big = leadintake
OBJS = extension/leadintake.o extension/fields.o extension/payload.o extension/notifier.o \
       extension/phone.o extension/agents.o extension/lookup.o extension/store.o \
       extension/result.o extension/redact.o extension/spi.o \
       extension/intake.o extension/log.o extension/phonelib.o extension/check.o
DATA = $(wildcard extension/leadintake--*.sql)

REGRESS = tables payload agents upsert results callers redact minimal invalid_keep phones phone_upgrade
REGRESS_OPTS = --inputdir=. --outputdir=test/results

PG_CONFIG ?= pg_config
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
            -Wno-sign-compare -Wno-missing-field-initializers
# phonelib.cpp, the one C++ file (libphonenumber): PGXS compiles .cpp with $(CXX).
PG_CXXFLAGS = -std=gnu++17 -Wall -Wextra -Werror -Wno-unused-parameter
# Debian 12's libphonenumber-dev ships no .pc file: then -lphonenumber, and libstdc++
# because the module is linked by $(CC).
PHONENUMBER_LIBS := $(shell pkg-config --libs libphonenumber 2>/dev/null || echo -lphonenumber)
SHLIB_LINK = $(PHONENUMBER_LIBS) -lstdc++

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: every object depends on the shared one.
$(OBJS): extension/leadintake.h
extension/phone.o extension/phonelib.o: extension/phonelib.h

all: shim
.PHONY: shim shim-clean
shim:
	$(MAKE) -C shim

clean: shim-clean
shim-clean:
	$(MAKE) -C shim clean

# The benchmark (as root; not part of scripts/test.sh): writes test/bench/RESULTS.md and
# exits non-zero naming each missed target. BEFORE=OLD.so adds instructions per call of
# OLD.so against this build (callgrind); make bench-callgrind BEFORE=OLD.so counts only
# those, against the installed build, and make bench-callgrind-tx [BEFORE=OLD.so] the
# database-CPU target's ratio in instructions (the function's transaction ÷ the floor's).
.PHONY: bench bench-flood bench-callgrind bench-callgrind-tx
bench:
	$(if $(BEFORE),BENCH_BEFORE_SO='$(abspath $(BEFORE))' )bash test/bench/run.sh

bench-callgrind: install
	@test -n '$(BEFORE)' || { echo 'usage: make bench-callgrind BEFORE=/path/to/older/leadintake.so'; exit 2; }
	bash test/bench/callgrind.sh '$(abspath $(BEFORE))' '$(DESTDIR)$(pkglibdir)/leadintake.so'

bench-callgrind-tx: install
	bash test/bench/callgrind_tx.sh $(if $(BEFORE),'$(abspath $(BEFORE))') '$(DESTDIR)$(pkglibdir)/leadintake.so'

# The console's reads at 10 million intake_log rows (as root; about 20 minutes): writes
# test/bench/CONSOLE.md, exits non-zero when a read misses its 100 ms target.
.PHONY: bench-console
bench-console: install
	bash test/bench/console.sh

# Hostile connection floods: a legitimate client's p99 during and after each, and memory.
bench-flood: all
	bash test/bench/flood.sh

# ---------------------------------------------------------------- sanitizers and fuzzing
# make SANITIZE=1: the extension with UBSan (-fno-sanitize-recover: the first undefined
# behaviour aborts the backend; `make SANITIZE=1 install` puts it in the server) and the
# shim with ASan+UBSan in $(SANITIZE_DIR)/leadintake-shim; shim/leadintake-shim is left as
# it is. Switching SANITIZE on or off rebuilds the extension's objects (build/.mode).
# make check-sanitize: install the UBSan extension, run test/e2e/sanitize.sh on a cluster
# of its own (pg_regress, the shim's suite under ASan, valgrind), reinstall the normal one.
# make fuzz: each libFuzzer harness of test/fuzz for FUZZ_SECONDS (600) -> TAP.
SANITIZE_DIR ?= build/sanitize
FUZZ_SECONDS ?= 600
SAN_UB = -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
BUILD_MODE := $(if $(SANITIZE),ubsan,normal)
$(shell mkdir -p build && { [ -f build/.gitignore ] || echo '*' >build/.gitignore; } && \
        { [ "$$(cat build/.mode 2>/dev/null)" = "$(BUILD_MODE)" ] || echo "$(BUILD_MODE)" >build/.mode; })
$(OBJS): build/.mode
ifdef SANITIZE
override CFLAGS += $(SAN_UB)
override CXXFLAGS += $(SAN_UB)
SHLIB_LINK += -fsanitize=undefined
all: sanitize-shim
endif

.PHONY: sanitize-shim check-sanitize fuzz
# (a copy of shim/'s sources, built there with its own Makefile: no object is shared)
sanitize-shim:
	mkdir -p $(SANITIZE_DIR) && echo '*' >$(SANITIZE_DIR)/.gitignore
	cp -u shim/*.c shim/*.h shim/Makefile $(SANITIZE_DIR)/ && cp -ru shim/console $(SANITIZE_DIR)/
	$(MAKE) -C $(SANITIZE_DIR) CFLAGS="-O1 -g $(SAN_UB) -fsanitize=address" \
		LDFLAGS="-fsanitize=address,undefined" leadintake-shim

check-sanitize:
	$(MAKE) SANITIZE=1 all
	$(MAKE) SANITIZE=1 install
	LEADINTAKE_SANITIZE_EXTENSION=1 LEADINTAKE_ASAN_SHIM=$(abspath $(SANITIZE_DIR))/leadintake-shim \
		bash test/e2e/sanitize.sh; rc=$$?; \
		$(MAKE) all install >/dev/null && echo "normal extension reinstalled"; exit $$rc

fuzz:
	$(MAKE) -C test/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_OUT=$(CURDIR)/test/fuzz/build/long

# ---------------------------------------------------------------- packages and HA
# make deb: postgresql-15-leadintake and leadintake-shim into dist/ (debhelper, pg_buildext,
# lintian without errors; debian/build-debs.sh). make test-deb: install, use, upgrade and
# purge them (test/package/run.sh; as root, on a throwaway machine: it installs packages).
# make test-ha: a pg_auto_failover formation on loopback, the shim under load while the
# primary is killed (test/ha/run.sh; as root; about two minutes).
.PHONY: deb test-deb test-ha
deb:
	bash debian/build-debs.sh

test-deb:
	bash test/package/run.sh

test-ha: all
	bash test/ha/run.sh
