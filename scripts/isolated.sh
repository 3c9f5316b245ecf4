#!/usr/bin/env bash
# isolated.sh [COMMAND...]: builds this tree and installs it into a private, relocated copy of
# PostgreSQL, so that several work trees (git worktrees) can be built and tested side by side
# without touching the system's PostgreSQL install. Then runs COMMAND (default: the integration
# suite) from a copy of the tree owned by user postgres, with PG_BINDIR/PG_CONFIG pointing at the
# private copy (test/lib/pgcluster.py and `make installcheck` honour them).
#
#   ISOLATED_DIR=/tmp/iso-a bash scripts/isolated.sh python3 -m pytest -q test/integration/test_river.py
#   ISOLATED_DIR=/tmp/iso-a bash scripts/isolated.sh make installcheck
#
# Environment: ISOLATED_DIR (default /tmp/mongo_river_iso-<tree name>), MONGO_URI, RIVER_* knobs.
set -uo pipefail
cd "$(dirname "$0")/.."
tree=$(pwd)
dir=${ISOLATED_DIR:-/tmp/mongo_river_iso-$(basename "$tree")}
bindir=$(pg_config --bindir) sharedir=$(pg_config --sharedir) pkglibdir=$(pg_config --pkglibdir)
pgtree=$(dirname "$bindir")
if [ ! -x "$dir/root$bindir/postgres" ]; then
    mkdir -p "$dir/root$(dirname "$pgtree")" "$dir/root$(dirname "$sharedir")" "$dir/tmp"
    cp -a "$pgtree" "$dir/root$pgtree" && cp -a "$sharedir" "$dir/root$sharedir" || exit 2
fi
make --no-print-directory -j"$(nproc)" WERROR=-Werror >"$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 2; }
make --no-print-directory install DESTDIR="$dir/root" >>"$dir/build.log" 2>&1 || { tail -20 "$dir/build.log"; exit 2; }
rm -rf "$dir/src" && mkdir -p "$dir/src"
tar --exclude=.git --exclude=.pytest_cache --exclude=tmp_check -cf - . | tar -xf - -C "$dir/src"
[ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
[ $# -gt 0 ] || set -- /usr/bin/python3 -m pytest -q -p no:cacheprovider test/integration
run_env=(env HOME="$dir" PATH="$dir/root$bindir:$PATH" TMPDIR="$dir/tmp" PG_BINDIR="$dir/root$bindir"
    PG_CONFIG="$dir/root$bindir/pg_config"
    MONGO_RIVER_EXAMPLES="${MONGO_RIVER_EXAMPLES:-$(cd "$tree/.." && pwd)/shared/examples}")
for var in MONGO_URI RIVER_TEST_DOCS RIVER_CRASH_ROUNDS RIVER_TEST_SEED KEEP_TEST_DIRS FUZZ_SECONDS RIVER_BENCH_SETTINGS; do
    [ -n "${!var:-}" ] && run_env+=("$var=${!var}")
done
if [ "$(id -u)" = 0 ]; then
    (cd "$dir/src" && runuser -u postgres -- "${run_env[@]}" "$@")
else
    (cd "$dir/src" && "${run_env[@]}" "$@")
fi
