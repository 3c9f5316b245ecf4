# core.mk: targets built from the PG-free core (offline tools, fuzz targets); included by Makefile.
#
#   make check-mapping   tools/mongo-river-check-mapping FILE [--connector]
#   make check-mapping-test  runs it on the reference files in fuzz/corpus/fuzz_mapping/
#   make fuzz            libFuzzer targets in fuzz/build/ (clang++, ASan + UBSan, own object dir)
#   make fuzz-run        fuzz/run.sh $(FUZZ_SECONDS) over each target (fails on any crash)

CHECK_MAPPING = tools/mongo-river-check-mapping
CORE_TOOL_FLAGS = -std=c++17 -g -O1 -Wall -Wextra $(WERROR) -Iinclude $(patsubst -I%,-isystem %,$(DEPS_CFLAGS))

$(CHECK_MAPPING): tools/mongo-river-check-mapping.cpp libmongo_river_core.a
	$(CXX) $(CORE_TOOL_FLAGS) -o $@ $< libmongo_river_core.a $(DEPS_LIBS)

# The fuzzers need only the PG-free code (mapping, conversion, source parsers); building them from
# their own object files keeps the g++ objects of the module untouched.
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 10
FUZZ_OBJDIR = fuzz/build/obj
FUZZ_CORE_SRCS = $(sort $(wildcard src/mapping/*.cpp src/convert/*.cpp src/mongo/*.cpp)) src/error.cpp
FUZZ_CORE_OBJS = $(patsubst %.cpp,$(FUZZ_OBJDIR)/%.o,$(FUZZ_CORE_SRCS))
FUZZ_TARGETS = fuzz/build/fuzz_mapping fuzz/build/fuzz_convert fuzz/build/fuzz_source fuzz/build/fuzz_reply fuzz/build/fuzz_oplog
FUZZ_FLAGS = -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Wno-align-mismatch \
	-Iinclude $(patsubst -I%,-isystem %,$(DEPS_CFLAGS))

$(FUZZ_OBJDIR)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

fuzz/build/%: fuzz/%.cpp $(FUZZ_CORE_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_CORE_OBJS) $(DEPS_LIBS)

-include $(FUZZ_CORE_OBJS:.o=.d)

.PHONY: check-mapping check-mapping-test fuzz fuzz-run
check-mapping: $(CHECK_MAPPING)

# check-mapping-test runs the checker on the reference files: one imports, one must be refused.
check-mapping-test: $(CHECK_MAPPING)
	$(CHECK_MAPPING) fuzz/corpus/fuzz_mapping/architecture-example.json >/dev/null
	$(CHECK_MAPPING) fuzz/corpus/fuzz_mapping/connector-posts-comments.json --connector >/dev/null
	! $(CHECK_MAPPING) fuzz/corpus/fuzz_mapping/connector-sample.json --connector >/dev/null
	! $(CHECK_MAPPING) fuzz/corpus/fuzz_mapping/index.txt >/dev/null
fuzz: $(FUZZ_TARGETS)
fuzz-run: fuzz
	fuzz/run.sh $(FUZZ_SECONDS)

EXTRA_CLEAN += $(CHECK_MAPPING) fuzz/build
