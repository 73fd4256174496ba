# leadintake: the PostgreSQL extension (PGXS) and the HTTP shim.
# make && make install; make installcheck runs pg_regress; scripts/test.sh runs everything.

EXTENSION = leadintake
MODULE_big = leadintake
OBJS = extension/leadintake.o extension/fields.o extension/payload.o \
       extension/phone.o extension/agents.o extension/store.o extension/result.o
DATA = $(wildcard extension/leadintake--*.sql)

REGRESS = tables payload agents upsert results callers
REGRESS_OPTS = --inputdir=. --outputdir=test/results

PG_CONFIG ?= pg_config
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
            -Wno-sign-compare -Wno-missing-field-initializers
SHLIB_LINK =

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: every object depends on the shared one.
$(OBJS): extension/leadintake.h

all: shim
.PHONY: shim shim-clean
shim:
	$(MAKE) -C shim

clean: shim-clean
shim-clean:
	$(MAKE) -C shim clean
