#!/usr/bin/env bash
# run-tests.sh: runs every test stage (as a non-root user, after the extension is installed) and
# prints one closing line with the total: "tests: N passed, N failed, N skipped".
# Stages: unit (GoogleTest), regress (pg_regress), integration (pytest, PostgreSQL + MongoDB source),
# peer (the MongoDB peer's conformance suite), reliability (faults, hostile input, privileges and
# RELIABILITY_ROUNDS crash rounds, with their figures), source (the PG-free MongoDB readers against
# a live MongoDB), fuzz (each libFuzzer target for FUZZ_SECONDS).
set -uo pipefail
cd "$(dirname "$0")/.."
reports=$(mktemp -d)
PY=/usr/bin/python3
failed_stages=()

stage() {
    local name=$1; shift
    echo "=== stage: $name"
    if "$@"; then echo "=== stage $name: ok"; else echo "=== stage $name: FAILED"; failed_stages+=("$name"); fi
}

stage unit make --no-print-directory unit UNIT_ARGS="--gtest_output=xml:$reports/unit.xml"
stage regress bash -c "make --no-print-directory installcheck > '$reports/regress.txt' 2>&1; rc=\$?; cat '$reports/regress.txt'; [ \$rc = 0 ] || cat regression.diffs 2>/dev/null | head -200; exit \$rc"
stage integration $PY -m pytest -q -p no:cacheprovider --junitxml="$reports/integration.xml" test/integration
if [ -d test/mongo_peer/tests ]; then
    stage peer $PY -m pytest -q -p no:cacheprovider --junitxml="$reports/peer.xml" test/mongo_peer/tests
else
    echo "=== stage peer: skipped (no test/mongo_peer/tests yet)"
fi
stage reliability env RELIABILITY_REPORTS="$reports" bash scripts/reliability.sh --rounds "${RELIABILITY_ROUNDS:-3}"
stage source $PY -m pytest -q -p no:cacheprovider --junitxml="$reports/source.xml" test/source
# The bench's whole pipeline at smoke sizes (its figures are not judged here, only that it runs and
# that every river table ends equal to its baseline's): bash bench/run.sh prints the real figures.
stage bench-smoke bash -c "$PY bench/river_bench.py --quick --results '$reports/bench' > '$reports/bench.txt' 2>&1; rc=\$?; tail -25 '$reports/bench.txt'; exit \$rc"
stage fuzz bash -c "make --no-print-directory fuzz >/dev/null && bash fuzz/run.sh '${FUZZ_SECONDS:-10}'"

$PY test/summarize.py "$reports" "${failed_stages[@]}"
