# tegula build. Sources are found by wildcard, so a new module needs no edit here:
#   common/*.c      -> build/libtegula.a (every process links it)
#   proto/*.proto   -> build/proto/*.pb-c.{c,h} (protobuf-c), compiled into the library
#   frontend/*.c    -> build/tegula-frontend   (likewise batcher/, sequencer/)
#   tools/*.c       -> build/tegula            (the CLI)
#   tests/unit/test_*.c -> build/tests/test_*  (one cmocka binary each)

BUILD    ?= build
CC       ?= cc
SAN      ?=
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Werror -Wno-format-zero-length -Wno-format-truncation
CPPFLAGS := -std=c11 -D_GNU_SOURCE -Icommon -I$(BUILD)/proto -MMD -MP
ALL_CFLAGS = $(CPPFLAGS) $(WARN) $(CFLAGS) $(SAN)
LDLIBS   := -lnng -lrocksdb -lcurl -lprotobuf-c -luv -lhttp_parser -ljansson -lyaml -lz \
            -lssl -lcrypto -lpthread -lm
TESTLIBS := -lcmocka

PROTO_SRC   := $(wildcard proto/*.proto)
PROTO_C     := $(PROTO_SRC:proto/%.proto=$(BUILD)/proto/%.pb-c.c)
COMMON_SRC  := $(wildcard common/*.c)
LIB_OBJ     := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(PROTO_C:%.c=%.o)
LIB         := $(BUILD)/libtegula.a

ROLE_DIRS   := frontend batcher sequencer
ROLE_BINS   := $(foreach d,$(ROLE_DIRS),$(if $(wildcard $(d)/*.c),$(BUILD)/tegula-$(d)))
TOOL_SRC    := $(wildcard tools/*.c)
TOOL_BIN    := $(if $(TOOL_SRC),$(BUILD)/tegula)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPER := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))
TEST_HELPER_OBJ := $(TEST_HELPER:%.c=$(BUILD)/%.o)

# Test objects are intermediates of a pattern chain; keep them so rebuilds stay incremental.
.SECONDARY:

.PHONY: all deps deps-system test unit integration system asan bench run clean check-tests
.DEFAULT_GOAL := all

all: $(LIB) $(ROLE_BINS) $(TOOL_BIN) $(UNIT_BINS)

deps:
	@./tools/deps.sh

# The base set plus a private Ceph RGW for tests/system (radosgw, ceph-mon, ceph-osd).
deps-system:
	@./tools/deps.sh system

# Generated headers must exist before anything that may include them compiles.
$(COMMON_SRC:%.c=$(BUILD)/%.o) $(TEST_HELPER_OBJ): | $(PROTO_C)
# Tests, processes and tools may include rpc.h, hence the generated protocol header too.
$(UNIT_SRC:%.c=$(BUILD)/%.o) $(TOOL_SRC:%.c=$(BUILD)/%.o) \
    $(foreach d,$(ROLE_DIRS),$(patsubst %.c,$(BUILD)/%.o,$(wildcard $(d)/*.c))): | $(PROTO_C)

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  PROTOC  $<")
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/proto/%.pb-c.o: $(BUILD)/proto/%.pb-c.c
	$(Q)$(CC) $(CPPFLAGS) -Wall -Wextra -Werror $(CFLAGS) $(SAN) -c $< -o $@

# V=1 shows the full command lines.
Q := $(if $(V),,@)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	@$(if $(V),,echo "  AR      $@")
	$(Q)ar rcs $@ $^

define role_rule
$(BUILD)/tegula-$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c)) $(LIB)
	@$$(if $$(V),,echo "  LD      $$@")
	$$(Q)$$(CC) $$(ALL_CFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(ROLE_DIRS),$(eval $(call role_rule,$(d))))

$(BUILD)/tegula: $(TOOL_SRC:%.c=$(BUILD)/%.o) $(LIB)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# A test named test_<role>_*.c also links that role's objects, all but its main.o.
role_objs = $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
test_role_objs = $(foreach d,$(ROLE_DIRS),$(if $(filter test_$(d)_%,$(1)),$(call role_objs,$(d))))

.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $$(call test_role_objs,%) $(TEST_HELPER_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TESTLIBS)

# Unit tests run from the repository root; they read ../shared/testdata (TEGULA_TESTDATA).
unit: all
	@./tests/run-unit.sh $(BUILD)

integration: all
	@./tests/integration/run.sh $(BUILD)

# System tests against a real S3 server (Ceph RGW on 127.0.0.1, started and stopped by
# tests/system/run.sh).
system: deps-system
	@$(MAKE) --no-print-directory all
	@./tests/system/run.sh $(BUILD)

test: deps-system
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit integration
	@./tests/system/run.sh $(BUILD)

# The same tests with AddressSanitizer and UndefinedBehaviorSanitizer, in build-asan/.
# tests/lsan.supp: only libnng's own allocations (a known NNG 1.5.2 reaper defect).
asan: export LSAN_OPTIONS = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
asan: deps-system
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	    all unit integration
	@./tests/system/run.sh build-asan

bench: deps
	@$(MAKE) --no-print-directory all
	@if [ -x tests/bench/run.sh ]; then ./tests/bench/run.sh $(BUILD); \
	 else echo "bench: no benchmarks yet (they arrive with the write path)"; fi

run: deps
	@$(MAKE) --no-print-directory all
	@if [ -x tools/run.sh ]; then ./tools/run.sh $(BUILD); \
	 else echo "run: built; starting a whole log arrives with the write path (issue 3)"; fi

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
