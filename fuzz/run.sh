#!/bin/sh
# run.sh SECONDS: run every libFuzzer target in fuzz/build/ for SECONDS (default 10) each, starting
# from the seed corpus in fuzz/corpus/<target>/ (new inputs go to a scratch copy, the seeds stay
# as committed). Exits non-zero as soon as a target crashes; the crashing input is kept in
# fuzz/build/artifacts/<target>/.
set -eu
seconds=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for target in fuzz_mapping fuzz_convert fuzz_source fuzz_reply fuzz_oplog; do
	binary="$here/build/$target"
	if [ ! -x "$binary" ]; then
		echo "run.sh: $binary is missing; run 'make fuzz' first" >&2
		exit 2
	fi
	work="$here/build/corpus/$target"
	artifacts="$here/build/artifacts/$target"
	mkdir -p "$work" "$artifacts"
	cp "$here/corpus/$target"/* "$work"/ 2>/dev/null || true
	echo "== $target for ${seconds}s"
	if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "$work" 2>"$here/build/$target.log"; then
		tail -n 60 "$here/build/$target.log" >&2
		echo "run.sh: $target FAILED (input kept in $artifacts/)" >&2
		status=1
		break
	fi
	grep -E '^stat::(number_of_executed_units|peak_rss_mb)|cov:' "$here/build/$target.log" | tail -n 3
done
exit $status
