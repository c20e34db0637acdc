# cdcflow - build, test, demo.  `make help` lists the targets.
#
# Sources are found by wildcard: every src/**/*.c goes into build/cdcflow,
# every tests/unit/test_*.c becomes its own test executable linked against
# the same objects (minus src/cli/main.c).

CC      ?= cc
PKGS    := rdkafka libzstd snappy zlib jansson libpq libcurl libmicrohttpd libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Debian's snappy has no .pc file; link it by name when pkg-config fails.
ifeq ($(findstring snappy,$(PKG_LIBS)),)
PKG_CFLAGS := $(shell pkg-config --cflags rdkafka libzstd zlib jansson libpq libcurl libmicrohttpd libcrypto 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs rdkafka libzstd zlib jansson libpq libcurl libmicrohttpd libcrypto 2>/dev/null) -lsnappy
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lm -lpthread

# `make SAN=1 ...` (or `make asan`) builds everything with ASan+UBSan into build/asan.
ifeq ($(SAN),1)
BUILD   ?= build/asan
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

SRCS      := $(shell find src -name '*.c' | sort)
OBJS      := $(SRCS:%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/src/cli/main.o,$(OBJS))
TEST_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
# libFuzzer targets: clang, every lib source, -fsanitize=fuzzer.
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

# Short build lines; `make V=1` shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all asan unit unit-asan test demo demo-s3 setup stack-start stack-stop stack-status \
        integration test-readers bench bench-kafka fuzz clean help

all: $(BUILD)/cdcflow

$(BUILD)/cdcflow: $(OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) tests/unit/cf_test.h tests/unit/sink_util.h
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB_OBJS) tests/unit/sink_util.h bench/avro_events.h
	@mkdir -p $(dir $@)
	@echo "  BENCH   $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Ibench -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

build/fuzz/%: tests/fuzz/%.c $(filter-out src/cli/main.c,$(SRCS))
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ $< $(filter-out src/cli/main.c,$(SRCS)) $(LDLIBS)

-include $(OBJS:.o=.d)

asan:
	$(MAKE) SAN=1 all $(patsubst build/%,build/asan/%,$(TEST_BINS))

## unit: run every C unit test (plain build, then under ASan+UBSan)
unit: all $(TEST_BINS)
	@scripts/run_unit.sh $(BUILD)/tests
unit-asan:
	$(MAKE) SAN=1 unit

## setup: install Debian packages, pinned jars and the Python venvs (idempotent)
setup:
	@scripts/setup.sh

## test: install what is missing, then run all tests (unit, unit under ASan, a short fuzz run, integration, readers)
test: setup
	@$(MAKE) -j2 all || exit 1; rc=0; \
	$(MAKE) -j2 unit || rc=1; \
	$(MAKE) -j2 unit-asan || rc=1; \
	$(MAKE) -j2 fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-10} || rc=1; \
	$(MAKE) integration || rc=1; \
	$(MAKE) test-readers || rc=1; \
	[ $$rc -eq 0 ] && echo "test: all suites passed" || echo "test: some suite failed (see above)"; \
	exit $$rc

integration: all
	@scripts/run_integration.sh

## test-readers: read every kind of table cdcflow writes with the newest deltalake, DuckDB, pyiceberg and Spark 4.1 (no stack)
# Its own setup step (Debian packages, Spark 4.1's jars, .venv-newest) rather than all of `make setup`: `make test` ran that already.
test-readers:
	@scripts/setup.sh readers
	@$(MAKE) all
	@.venv-newest/bin/python -m pytest tests/readers -q

## demo: install, start the stack, register the connector, generate data, run the pipelines
# all is built by a sub-make: its pkg-config flags must be read after setup installed the libraries.
demo: setup
	@$(MAKE) all
	@scripts/demo.sh

## demo-s3: the same demo with the tables on the stack's S3 and Iceberg through its REST catalog
demo-s3: setup
	@$(MAKE) all
	@DEMO_STORAGE=s3 scripts/demo.sh

stack-start stack-stop stack-status:
	@scripts/stack.sh $(subst stack-,,$@)

## bench: print throughput and memory figures (never asserts on time)
bench: all $(BENCH_BINS)
	@scripts/bench.sh

## bench-kafka: cdcflow against a bare Kafka consumer on a 1M-message topic of stack-shaped events (BENCH_KAFKA_N; needs Kafka)
bench-kafka: all $(BUILD)/bench/bench_kafka
	@bench/kafka.sh

## fuzz: run each libFuzzer target for FUZZ_SECONDS (default 60)
fuzz: $(FUZZ_BINS)
	@scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build

help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'
