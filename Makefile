# mongo_river: PGXS build of the extension, its PG-free core library, unit tests and fuzz targets.
EXTENSION = mongo_river
MODULE_big = mongo_river
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" mongo_river.control)

# PG-free code (no PostgreSQL headers): linked into the module, the unit tests and the fuzzers.
CORE_SRCS = $(sort $(wildcard src/mapping/*.cpp src/mongo/*.cpp src/convert/*.cpp)) src/error.cpp
# Code that talks to PostgreSQL.
PG_SRCS = src/mongo_river.cpp $(sort $(wildcard src/api/*.cpp src/catalog/*.cpp src/apply/*.cpp \
	src/worker/*.cpp src/pg/*.cpp))
OBJS = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# The 0.2.0 -> 0.3.0 upgrade script is built from one fragment per topic (sql/upgrade-0.3.0/NN_*.sql,
# applied in name order), so that independent changes never edit the same file.
UPGRADE_030 = sql/install/mongo_river--0.2.0--0.3.0.sql
DATA = $(filter-out $(UPGRADE_030),$(wildcard sql/install/mongo_river--*.sql))
DATA_built = $(UPGRADE_030)
REGRESS = extension boundary declare import database monitoring
REGRESS_OPTS = --temp-config=test/regress.conf --temp-instance=tmp_check

DEPS_CFLAGS := $(shell pkg-config --cflags libmongoc-1.0 jansson)
DEPS_LIBS := $(shell pkg-config --libs libmongoc-1.0 jansson)
SHLIB_LINK = $(DEPS_LIBS) -lstdc++
EXTRA_CLEAN = libmongo_river_core.a test/unit/unit_tests $(wildcard src/*/*.d src/*.d) tmp_check results \
	regression.diffs regression.out

# PGXS would compile .cpp to LLVM bitcode with clang and no -std=c++17 (STYLE.md).
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PostgreSQL's headers as system headers: their warnings are not ours; ours stay on.
override CPPFLAGS := -Iinclude $(patsubst -I$(includedir_server),-isystem $(includedir_server),$(CPPFLAGS)) \
	$(patsubst -I%,-isystem %,$(DEPS_CFLAGS))
WERROR ?=
override CXXFLAGS += -std=c++17 -Wextra -Wno-missing-field-initializers -fexceptions -MMD -MP $(WERROR)
# SANITIZE=address,undefined builds the module with sanitizers (the server must then preload the
# ASan runtime: scripts/sanitize.sh builds, installs into a relocated PostgreSQL and runs the tests).
ifdef SANITIZE
override CXXFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
SHLIB_LINK += -fsanitize=$(SANITIZE)
endif

-include $(OBJS:.o=.d)

$(UPGRADE_030): $(sort $(wildcard sql/upgrade-0.3.0/*.sql))
	@{ printf '%s\n' '-- mongo_river 0.2.0 -> 0.3.0 (built by make from sql/upgrade-0.3.0/*.sql: edit those).' \
	     '\echo Use "ALTER EXTENSION mongo_river UPDATE" to load this file. \quit'; \
	   for f in $^; do printf '\n-- ---- %s\n' "$$f"; cat "$$f"; done; } > $@
all: $(UPGRADE_030)
include mk/core.mk

# libmongo_river_core.a is the PG-free core, for unit tests and fuzz targets.
libmongo_river_core.a: $(CORE_SRCS:.cpp=.o)
	$(AR) rcs $@ $^

UNIT_SRCS = $(sort $(wildcard test/unit/*.cpp))
test/unit/unit_tests: $(UNIT_SRCS) libmongo_river_core.a
	$(CXX) -std=c++17 -g -O1 -Wall -Wextra $(WERROR) -Iinclude $(patsubst -I%,-isystem %,$(DEPS_CFLAGS)) \
		-o $@ $(UNIT_SRCS) libmongo_river_core.a $(DEPS_LIBS) -lgtest -lgtest_main -pthread

.PHONY: unit format format-check
unit: test/unit/unit_tests
	test/unit/unit_tests $(UNIT_ARGS)

FORMAT_FILES = $(shell git ls-files -co --exclude-standard '*.cpp' '*.hpp' '*.h' '*.c' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)
