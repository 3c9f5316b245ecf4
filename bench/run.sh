#!/usr/bin/env bash
# run.sh: the benchmark command. Installs what is needed, builds and installs mongo_river, then runs
# bench/peer_bench.py (the MongoDB peer's own speed) and bench/river_bench.py (mongo_river as ratios
# to same-run baselines) as a user PostgreSQL accepts. Arguments go to river_bench.py
# (e.g. --docs 1000000 --big). Results: bench/results/river_bench.{json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
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
run "/usr/bin/python3 bench/peer_bench.py"
run "/usr/bin/python3 bench/river_bench.py $*"
