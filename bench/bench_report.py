"""bench_report: river_bench's one closing table, its JSON and its chart."""

import json
import os

PEER_BOUND = 0.85  # peer CPU share (cores) at which the single-threaded peer bounds a run


MIN_TICKS_S = 0.05  # CPU seconds below which a share is too coarse to judge (/proc counts 10 ms ticks)


def _share(m):
    share = m.get("peer_share")
    if share is None:
        return "n/a"
    cpu = m.get("peer_cpu_s")
    if cpu is not None and cpu < MIN_TICKS_S:
        return f"{share:.2f} ?"
    return f"{share:.2f}{' PEER' if share >= PEER_BOUND else ''}"


def _wshare(m):
    share = m.get("worker_share")
    return "n/a" if share is None else f"{share:.2f}"


def _mib(kb):
    return f"{kb / 1024:.1f} MiB" if kb else "n/a"


def rows(results):
    """rows returns the table: (figure, mongo_river, baseline, ratio, peer CPU
    share, worker CPU share, chart label or None) each."""
    out = []
    for c in results["copy_flat"]:
        runs = c.get("runs") or []
        spread = f", median of {len(runs)}: {min(r['ratio'] for r in runs):.2f}–{max(r['ratio'] for r in runs):.2f}" \
            if runs else ""
        out.append((f"flat copy, {c['docs']:,} docs (docs/s vs COPY rows/s{spread})", f"{c['docs_s']:,.0f}",
                    f"{c['copy_rows_s']:,.0f}", f"{c['ratio']:.2f}", _share(c), _wshare(c), f"copy flat {c['docs']:,}"))
        if "oplog_capture" in c:
            o = c["oplog_capture"]
            out.append(("  same, by the oplog-capture river (one run, its own COPY)", f"{o['docs_s']:,.0f}",
                        f"{o['copy_rows_s']:,.0f}", f"{o['ratio']:.2f}", _share(o), _wshare(o), None))
    n = results.get("copy_nested")
    if n:
        out.append((f"nested copy + child table, {n['docs']:,} docs ({n['child_rows']:,} child rows)",
                    f"{n['docs_s']:,.0f}", f"{n['copy_docs_s']:,.0f}", f"{n['ratio']:.2f}", _share(n), _wshare(n), "copy nested"))
    for u in results["catch_up"]:
        for capture, label in (("change_stream", "change stream"), ("oplog", "oplog")):
            c = u["captures"][capture]
            same = "" if c["same_rows_as_baseline"] else " ROWS DIFFER FROM BASELINE"
            runs = c.get("runs") or []
            spread = f", median of {len(runs)}: {min(r['ratio'] for r in runs):.2f}–" \
                f"{max(r['ratio'] for r in runs):.2f}" if runs else ""
            out.append((f"catch-up, {label}, {u['changes']:,} changes on {u['docs']:,} docs (changes/s "
                        f"vs psql{spread}){same}", f"{c['changes_s']:,.0f}",
                        f"{c['psql_changes_s']:,.0f}",
                        f"{c['ratio']:.2f}", _share(c), _wshare(c), f"catch-up {label} {u['changes']:,}"))
    for lag in results["lag"]:
        figure = "n/a" if lag["p99_s"] is None else f"p99 {lag['p99_s']:.3f} s"
        out.append((f"lag at {lag['offered_s']:,}/s offered ({lag['achieved_s']:,.0f}/s made; p50 "
                    + ("n/a" if lag["p50_s"] is None else f"{lag['p50_s']:.3f} s") + ")", figure, "", "",
                    _share(lag), _wshare(lag), None))
    for c in results["copy_flat"][:1]:
        out.append((f"worker RssAnon, flat copy of {c['docs']:,} docs", _mib(c["rss_anon_kb"]), "", "", "", "", None))
    m = results.get("memory")
    if m:
        out.append((f"worker RssAnon, flat copy of {m['docs']:,} docs", _mib(m["rss_anon_kb"]), "", "",
                    _share(m), _wshare(m), None))
        out.append((f"  its rate (docs/s vs COPY rows/s)", f"{m['docs_s']:,.0f}", f"{m['copy_rows_s']:,.0f}",
                    f"{m['ratio']:.2f}", "", "", f"copy flat {m['docs']:,}"))
    b = results.get("big_docs")
    if b:
        out.append((f"worker RssAnon, {b['docs']} docs of 8 MiB: copy", _mib(b["copy"]["rss_anon_kb"]), "", "",
                    _share(b["copy"]), _wshare(b["copy"]), None))
        out.append((f"worker RssAnon, {b['docs']} docs of 8 MiB: their update events", _mib(b["stream"]["rss_anon_kb"]),
                    "", "", _share(b["stream"]), _wshare(b["stream"]), None))
        if "stream_full" in b:
            out.append((f"  {b['docs']} inserts + {b['docs']} replacements (events with the whole document)",
                        _mib(b["stream_full"]["rss_anon_kb"]), "", "", _share(b["stream_full"]),
                        _wshare(b["stream_full"]), None))
    return out


def report(results, out_dir):
    """report prints the table and writes river_bench.json and river_bench.png into out_dir."""
    table = rows(results)
    width = max(len(r[0]) for r in table)
    header = ("figure", "mongo_river", "baseline", "ratio", "peer CPU", "worker CPU")
    print()
    for r in [header] + table:
        print(f"{r[0]:<{width}} {r[1]:>14} {r[2]:>12} {r[3]:>6} {r[4]:>9} {r[5]:>10}")
    bound = [r[0].strip() for r in table if r[4].endswith("PEER")]
    print(f"\npeer CPU, worker CPU: the peer's, the river worker's CPU seconds / the run's wall seconds (1.00 ="
          f" one core); PEER marks a run where the peer's is {PEER_BOUND} or more: the peer, not mongo_river,"
          f" bounds it; ? marks a share from less than {MIN_TICKS_S} s of the peer's CPU (10 ms clock ticks): too"
          " coarse to judge.")
    print("peer-bound runs: " + ("; ".join(bound) if bound else "none"))
    if results.get("server_crashes"):
        print("SERVER CRASHES:\n" + "\n".join(results["server_crashes"]))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "river_bench.json"), "w") as f:
        json.dump(results, f, indent=2)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        bars = [(r[6], float(r[3])) for r in table if r[6]]
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(bars)), 3.8))
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color="#4c72b0")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel("mongo_river / same-run baseline")
        ax.set_title(f"mongo_river speed ({results['form']} form)")
        for i, (_, r) in enumerate(bars):
            ax.text(i, r, f"{r:.2f}", ha="center", va="bottom")
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "river_bench.png"), dpi=100)
        print(f"chart: {os.path.join(out_dir, 'river_bench.png')}")
    except ImportError:
        print("(no chart: python3-matplotlib is not installed)")
    print(f"figures: {os.path.join(out_dir, 'river_bench.json')}")
