#!/usr/bin/env bash
# reliability.sh [--rounds N]: the reliability suites (test/reliability: source faults, hostile
# documents, hostile SQL, SQL fuzz, host safety, privileges, secrets) plus the crash test of test/integration/test_river.py with N
# crash rounds (default 3), then one figures block: rounds passed, faults injected, hostile inputs
# tried, rows lost, duplicates, crashes (the last three must be 0). Exit status 0 when all is well.
#
# The extension must be built and installed (scripts/build.sh). Run as root (the tests then run as
# user postgres from a copy of the tree it owns, like scripts/test.sh) or as a normal user.
# Environment: MONGO_URI (a real replica set instead of the repo's MongoDB peer; peer-only tests
# skip visibly), RELIABILITY_DOCS (documents per fault test, default 2000), RIVER_TEST_DOCS (the
# crash test loads a fifth of it, at least 5000; default 25000), RELIABILITY_SEED / RIVER_TEST_SEED
# (replay a printed seed), SQL_FUZZ_SECONDS (the SQL fuzz stage's length, default 60) and
# SQL_FUZZ_SEED, KEEP_TEST_DIRS.
set -uo pipefail
cd "$(dirname "$0")/.."

rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
        --rounds=*) rounds=${1#--rounds=}; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "reliability.sh: unknown argument $1 (usage: reliability.sh [--rounds N])" >&2; exit 2 ;;
    esac
done
case "$rounds" in ''|*[!0-9]*) echo "reliability.sh: --rounds takes a number" >&2; exit 2 ;; esac

if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: run from a copy the postgres user owns.
    work=$(mktemp -d /tmp/mongo_river_reliability.XXXXXX)
    tar --exclude=.git --exclude=.pytest_cache -cf - . | tar -xf - -C "$work"
    chown -R postgres: "$work"
    runuser -u postgres -- env HOME="$work" PATH="$PATH" MONGO_URI="${MONGO_URI:-}" \
        RELIABILITY_DOCS="${RELIABILITY_DOCS:-}" RIVER_TEST_DOCS="${RIVER_TEST_DOCS:-}" \
        RELIABILITY_SEED="${RELIABILITY_SEED:-}" RIVER_TEST_SEED="${RIVER_TEST_SEED:-}" \
        SQL_FUZZ_SECONDS="${SQL_FUZZ_SECONDS:-}" SQL_FUZZ_SEED="${SQL_FUZZ_SEED:-}" \
        KEEP_TEST_DIRS="${KEEP_TEST_DIRS:-}" bash "$work/scripts/reliability.sh" --rounds "$rounds"
    status=$?
    [ -n "${KEEP_TEST_DIRS:-}" ] || rm -rf "$work"
    exit $status
fi

# Empty values from the root branch mean "default".
for var in MONGO_URI RELIABILITY_DOCS RIVER_TEST_DOCS RELIABILITY_SEED RIVER_TEST_SEED KEEP_TEST_DIRS \
    SQL_FUZZ_SECONDS SQL_FUZZ_SEED; do
    [ -n "${!var:-}" ] || unset "$var"
done

PY=/usr/bin/python3
# RELIABILITY_REPORTS: where the JUnit reports go (test/run-tests.sh adds them to its total).
reports=${RELIABILITY_REPORTS:-$(mktemp -d /tmp/mongo_river_reliability_reports.XXXXXX)}
export RELIABILITY_FIGURES="$reports/figures.jsonl"
: > "$RELIABILITY_FIGURES"
start=$(date +%s)

echo "=== reliability suites (test/reliability)"
$PY -m pytest -q -rxXs -p no:cacheprovider --junitxml="$reports/reliability.xml" test/reliability

echo "=== crash test (test/integration/test_river.py, $rounds rounds)"
if [ "$rounds" -gt 0 ]; then
    RIVER_CRASH_ROUNDS="$rounds" RIVER_TEST_DOCS="${RIVER_TEST_DOCS:-25000}" \
        $PY -m pytest -q -s -p no:cacheprovider --junitxml="$reports/crash.xml" \
        test/integration/test_river.py -k test_crashes_during_copy_and_streaming | grep -E "seed|round|passed|failed|^E "
else
    echo "(skipped: --rounds 0)"
    printf '<testsuites><testsuite><testcase name="crash rounds: 0"/></testsuite></testsuites>\n' > "$reports/crash.xml"
fi

$PY test/reliability/summarize_figures.py "$RELIABILITY_FIGURES" "$reports/reliability.xml" \
    "$reports/crash.xml" "$rounds"
status=$?
echo "run time: $(( $(date +%s) - start )) s"
[ -n "${KEEP_TEST_DIRS:-}" ] || [ -n "${RELIABILITY_REPORTS:-}" ] || rm -rf "$reports"
exit $status
