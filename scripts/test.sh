#!/usr/bin/env bash
# test.sh: the one command that runs every test of mongo_river on a fresh Debian 12 machine.
#
# Installs the packages, builds (warnings are errors), installs the extension, then runs the test
# stages of test/run-tests.sh as a non-root user (PostgreSQL refuses to run as root).
# Environment: MONGO_URI=mongodb://... runs the MongoDB-facing tests against a real replica set
# instead of the repo's MongoDB peer; FUZZ_SECONDS (default 10) sets the fuzzers' run time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh

if [ "$(id -u)" = 0 ]; then
    # Run from a copy the postgres user owns: pg_regress and initdb write next to the sources.
    work=$(mktemp -d /tmp/mongo_river_tests.XXXXXX)
    tar --exclude=.git -cf - . | tar -xf - -C "$work"
    chown -R postgres: "$work"
    runuser -u postgres -- env HOME="$work" PATH="$PATH" MONGO_URI="${MONGO_URI:-}" \
        MONGO_RIVER_EXAMPLES="${MONGO_RIVER_EXAMPLES:-$(cd .. && pwd)/shared/examples}" \
        FUZZ_SECONDS="${FUZZ_SECONDS:-10}" KEEP_TEST_DIRS="${KEEP_TEST_DIRS:-}" bash "$work/test/run-tests.sh"
    status=$?
    [ -n "${KEEP_TEST_DIRS:-}" ] || rm -rf "$work"
    exit $status
fi
exec bash test/run-tests.sh
