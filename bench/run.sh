#!/usr/bin/env bash
# run.sh [--quick | --big] [river_bench.py options]: the benchmark command. Installs what is needed,
# builds and installs mongo_river, then runs bench/peer_bench.py (the MongoDB peer's own speed) and
# bench/river_bench.py (mongo_river as ratios to same-run baselines, one table at the end) as a user
# PostgreSQL accepts. Arguments go to river_bench.py: none = the short form (a few minutes on 2
# cores), --quick = a smoke test of the whole pipeline (under 2 minutes), --big = the README's sizes.
# Results: bench/results/river_bench.{json,png}.
# With PG_BINDIR set (scripts/isolated.sh: a private PostgreSQL with this tree installed), nothing is
# installed or built and both scripts run as the current user against that PostgreSQL:
#   ISOLATED_DIR=/tmp/iso-bench bash scripts/isolated.sh bash bench/run.sh --quick
set -euo pipefail
cd "$(dirname "$0")/.."
peer_args="--docs 100000 --reps 2"
for arg in "$@"; do
    case $arg in
        --quick) peer_args="--docs 5000 --reps 1" ;;
        --big) peer_args="" ;;  # its default: 200,000 documents, best of 3
    esac
done
run() {
    if [ "$(id -u)" = 0 ]; then
        work=$(mktemp -d /tmp/mongo_river_bench.XXXXXX)
        tar --exclude=.git -cf - . | tar -xf - -C "$work"
        chown -R postgres: "$work"
        runuser -u postgres -- env HOME="$work" MONGO_URI="${MONGO_URI:-}" bash -c "cd '$work' && $*"
        mkdir -p bench/results
        cp "$work"/bench/results/* bench/results/ 2>/dev/null || true
        rm -rf "$work"
    else
        bash -c "$*"
    fi
}
if [ -z "${PG_BINDIR:-}" ]; then
    bash scripts/install-deps.sh
    bash scripts/build.sh
else
    echo "run.sh: PG_BINDIR=$PG_BINDIR: using the PostgreSQL and mongo_river installed there"
    run() { bash -c "$*"; }
fi
run "/usr/bin/python3 bench/peer_bench.py $peer_args"
run "/usr/bin/python3 bench/river_bench.py $*"
