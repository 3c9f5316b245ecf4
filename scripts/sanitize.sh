#!/usr/bin/env bash
# sanitize.sh [PYTEST_ARGS...]: the integration suite (test/integration) against mongo_river built
# with ASan + UBSan, run by a relocated copy of PostgreSQL so the system install is never touched.
#
# 1. copies PostgreSQL's lib and share trees (pg_config --bindir/--sharedir; pg_cron comes along)
#    under $SANITIZE_DIR/root (PostgreSQL finds its share and lib dirs relative to its binary);
# 2. builds a copy of this tree (no .git) with `make SANITIZE=...` and installs it there (DESTDIR);
# 3. runs the suite as user postgres (when root) with the ASan runtime preloaded into the server
#    only (PG_LD_PRELOAD, PG_BINDIR: test/lib/pgcluster.py), cluster logs kept under $SANITIZE_DIR;
# 4. prints every sanitizer report found in the server logs (ASan/LSan "ERROR: ...Sanitizer", UBSan
#    "runtime error:", processes terminated by signal 6 or 11) and fails if there is any.
#
# Why a stub is preloaded after libasan: Debian's postgres links libgpg-error (libsystemd ->
# libgcrypt), whose constructor runs before libasan's and calls bindtextdomain(); its malloc() then
# initialises ASan inside glibc's gettext lock, ASan's init calls dlsym("swift_demangle") and
# dlerror(), dlerror() translates its message through gettext, the nested lock/unlock corrupts
# _nl_state_lock and the next bindtextdomain() waits forever (`postgres -V` hangs). The stub's
# swift_demangle (returns NULL: "not demangled") makes that dlsym succeed: nothing to translate.
# The stub also defines __ubsan_default_options: libubsan (loaded with the module) reads
# UBSAN_OPTIONS from /proc/self/environ at its first report, in a backend whose environ area
# PostgreSQL has overwritten with the process title, so the options are compiled into the stub.
#
# Environment: SANITIZE (default address,undefined; `undefined` is UBSan alone, no libasan),
# SANITIZE_DIR (default /tmp/mongo_river_asan; recreated on each run), RIVER_TEST_DOCS,
# RIVER_CRASH_ROUNDS (smaller/larger river tests), MONGO_URI, MONGO_RIVER_EXAMPLES, KEEP_TEST_DIRS
# (keep the clusters' data directories too, not only their logs), ASAN_OPTIONS / UBSAN_OPTIONS
# (added to the defaults below). Arguments go to pytest (test paths replace test/integration):
#   RIVER_TEST_DOCS=5000 RIVER_CRASH_ROUNDS=1 bash scripts/sanitize.sh -k 'not crashes'
#   bash scripts/sanitize.sh test/integration/test_status.py
set -uo pipefail
cd "$(dirname "$0")/.."
src_tree=$(pwd)
PY=/usr/bin/python3
SANITIZE=${SANITIZE:-address,undefined}
dir=${SANITIZE_DIR:-/tmp/mongo_river_asan}
marker=.mongo_river_sanitize
start=$(date +%s)

fail() { echo "sanitize.sh: $*" >&2; exit 2; }

if [ -e "$dir" ] && [ ! -e "$dir/$marker" ]; then
    fail "$dir exists and was not made by sanitize.sh; set SANITIZE_DIR or remove it"
fi
rm -rf "$dir"
mkdir -p "$dir/root" "$dir/src" "$dir/lib" "$dir/tmp" "$dir/reports" && touch "$dir/$marker" || fail "cannot create $dir"

bindir=$(pg_config --bindir) sharedir=$(pg_config --sharedir) pkglibdir=$(pg_config --pkglibdir)
pgtree=$(dirname "$bindir")   # /usr/lib/postgresql/15: bin/ and lib/
echo "=== relocated PostgreSQL: $dir/root$pgtree, $dir/root$sharedir"
mkdir -p "$dir/root$(dirname "$pgtree")" "$dir/root$(dirname "$sharedir")"
cp -a "$pgtree" "$dir/root$pgtree" && cp -a "$sharedir" "$dir/root$sharedir" || fail "cannot copy PostgreSQL"
rm -rf "$dir/root$pkglibdir/bitcode" "$dir/root$pkglibdir"/mongo_river* "$dir/root$sharedir/extension"/mongo_river*
relocated_share=$("$dir/root$bindir/pg_config" --sharedir)
[ "$relocated_share" = "$dir/root$sharedir" ] || fail "relocated pg_config reports $relocated_share"

echo "=== build (SANITIZE=$SANITIZE) in $dir/src"
tar --exclude=.git --exclude=.pytest_cache --exclude=tmp_check -cf - . | tar -xf - -C "$dir/src"
(
    cd "$dir/src" &&
    make --no-print-directory clean >/dev/null &&
    make --no-print-directory -j"$(nproc)" SANITIZE="$SANITIZE" >"$dir/build.log" 2>&1 &&
    make --no-print-directory install SANITIZE="$SANITIZE" DESTDIR="$dir/root" >>"$dir/build.log" 2>&1
) || { tail -40 "$dir/build.log"; fail "build failed (log: $dir/build.log)"; }
so="$dir/root$pkglibdir/mongo_river.so"
case ",$SANITIZE," in *,address,*) asan=1 ;; *) asan= ;; esac
needed=$(readelf -d "$so") || fail "cannot read $so"
runtime=libubsan
[ -n "$asan" ] && runtime=libasan
grep -q "NEEDED.*$runtime" <<<"$needed" || fail "$so is not linked with $runtime"

export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:print_summary=1:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:report_error_type=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
case "$UBSAN_OPTIONS" in *[\"\\]*) fail "UBSAN_OPTIONS must not contain quotes or backslashes" ;; esac
cat >"$dir/lib/sanitizer_stub.c" <<'STUB'
/* sanitizer_stub: preloaded into the server after libasan; see scripts/sanitize.sh. */
#include <stddef.h>
#include <stdint.h>

/* swift_demangle lets ASan's lazy init find the symbol, so it never calls dlerror() (and gettext)
 * from inside bindtextdomain(). NULL means "not demangled". */
char *swift_demangle(const char *name, size_t length, char *out, size_t *out_size, uint32_t flags)
{
	(void) name; (void) length; (void) out; (void) out_size; (void) flags;
	return NULL;
}

/* __ubsan_default_options gives libubsan its options in backends, where UBSAN_OPTIONS is unreadable. */
const char *__ubsan_default_options(void)
{
	return UBSAN_DEFAULTS;
}
STUB
cc -shared -fPIC -O2 -DUBSAN_DEFAULTS="\"$UBSAN_OPTIONS\"" -o "$dir/lib/libsanitizer_stub.so" \
    "$dir/lib/sanitizer_stub.c" || fail "stub build failed"
preload="$dir/lib/libsanitizer_stub.so"
[ -n "$asan" ] && preload="$(gcc -print-file-name=libasan.so) $preload"
version=$(LD_PRELOAD="$preload" timeout 60 "$dir/root$bindir/postgres" -V) || fail "postgres -V with $preload failed or hung"
echo "=== preloaded into the server: $preload ($version)"

[ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
run_env=(env HOME="$dir" PATH="$PATH" TMPDIR="$dir/tmp" KEEP_TEST_DIRS=1 PG_BINDIR="$dir/root$bindir"
    PG_LD_PRELOAD="$preload" ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS")
MONGO_RIVER_EXAMPLES=${MONGO_RIVER_EXAMPLES:-$(cd "$src_tree/.." && pwd)/shared/examples}
for var in MONGO_URI MONGO_RIVER_EXAMPLES RIVER_TEST_DOCS RIVER_CRASH_ROUNDS RIVER_TEST_SEED; do
    [ -n "${!var:-}" ] && run_env+=("$var=${!var}")
done
targets=(test/integration)
for arg in "$@"; do
    case "$arg" in test/*) targets=() ;; esac
done
echo "=== integration suite (${targets[*]} $*)"
pytest_cmd=("$PY" -m pytest -q -rfEs -p no:cacheprovider --durations=10 --junitxml="$dir/reports/integration.xml"
    "${targets[@]}" "$@")
if [ "$(id -u)" = 0 ]; then
    (cd "$dir/src" && runuser -u postgres -- "${run_env[@]}" "${pytest_cmd[@]}")
else
    (cd "$dir/src" && "${run_env[@]}" "${pytest_cmd[@]}")
fi
tests_status=$?

echo "=== sanitizer reports in the server logs ($dir/tmp/mongo_river_pg_*/server.log)"
findings=$dir/reports/sanitizer.txt
: >"$findings"
for log in "$dir"/tmp/mongo_river_pg_*/server.log; do
    [ -f "$log" ] || continue
    # An ASan report runs from its ERROR line to its SUMMARY line; a UBSan one (message, notes,
    # stack) until the next server log line or ASan banner.
    awk -v f="$log" '
        /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / || /^=+$/ { ub = 0 }
        /==[0-9]+==ERROR: [A-Za-z]+Sanitizer/ { block = 1; print "--- " f }
        /runtime error: / { print "--- " f; ub = 1 }
        ub || block { print }
        /^SUMMARY: [A-Za-z]+Sanitizer/ { block = 0 }
        /terminated by signal (6|11)[^0-9]/ { print "--- " f; print }
    ' "$log" >>"$findings"
    [ -n "${KEEP_TEST_DIRS:-}" ] || rm -rf "$(dirname "$log")/data"
done
count=$(grep -cE '==[0-9]+==ERROR: [A-Za-z]+Sanitizer|runtime error: |terminated by signal (6|11)[^0-9]' "$findings")
cat "$findings"
echo "=== sanitize.sh: SANITIZE=$SANITIZE, pytest exit $tests_status, sanitizer findings: $count," \
    "run time $(( $(date +%s) - start )) s (logs and reports kept in $dir)"
[ "$tests_status" = 0 ] && [ "$count" = 0 ]
