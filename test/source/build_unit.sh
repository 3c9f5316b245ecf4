#!/bin/sh
# build_unit.sh: build and run only the source stage's unit tests (test/unit/mongo_*_test.cpp and
# uri_test.cpp) against libmongo_river_core.a, independent of other in-progress unit tests.
set -e
cd "$(dirname "$0")/../.."
make -s libmongo_river_core.a WERROR=-Werror
FLAGS=$(pkg-config --cflags libmongoc-1.0 | sed 's/-I/-isystem /g')
g++ -std=c++17 -g -O1 -Wall -Wextra -Werror -Iinclude $FLAGS -o test/source/mongo_unit_tests \
	test/unit/mongo_*_test.cpp test/unit/uri_test.cpp libmongo_river_core.a \
	$(pkg-config --libs libmongoc-1.0 jansson) -lgtest -lgtest_main -pthread
exec test/source/mongo_unit_tests "$@"
