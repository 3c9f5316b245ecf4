"""summarize_figures: adds up the reliability figures for scripts/reliability.sh.

usage: summarize_figures.py FIGURES.jsonl RELIABILITY.xml CRASH.xml ROUNDS

FIGURES.jsonl holds the JSON lines the suites appended (see figures.py); the two JUnit XML files are
pytest's reports of test/reliability and of the crash test of test/integration/test_river.py. Prints
one figures block and exits 1 when a test failed or a row was lost, duplicated, or a process crashed.
"""

import json
import re
import sys
import xml.etree.ElementTree as ET


def junit(path):
    """junit returns (counts, failure texts) of a pytest JUnit XML report (missing file: nothing ran)."""
    counts = {"passed": 0, "failed": 0, "xfailed": 0, "skipped": 0}
    texts = []
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        counts["failed"] += 1
        texts.append(f"no report {path}")
        return counts, texts
    for case in root.iter("testcase"):
        bad = [c for c in case if c.tag in ("failure", "error")]
        skipped = [c for c in case if c.tag == "skipped"]
        if bad:
            counts["failed"] += 1
            texts += [(c.get("message") or "") + "\n" + (c.text or "") for c in bad]
        elif skipped:
            if (skipped[0].get("type") or "") == "pytest.xfail":
                counts["xfailed"] += 1
            else:
                counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, texts


def main():
    figures_path, reliability_xml, crash_xml, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    totals = {"faults": 0, "hostile": 0, "attacks": 0, "lost": 0, "duplicates": 0, "crashes": 0, "sql_fuzz_calls": 0,
              "sql_fuzz_internal": 0, "sql_fuzz_seconds": 0}
    try:
        with open(figures_path) as f:
            for line in f:
                line = line.strip()
                if line:
                    record = json.loads(line)
                    for key in totals:
                        totals[key] += int(record.get(key, 0))
    except FileNotFoundError:
        pass
    rel, rel_texts = junit(reliability_xml)
    crash, crash_texts = junit(crash_xml)
    crash_failed = crash["failed"] > 0 or crash["passed"] == 0
    # The crash test's own findings (its comparison names missing rows and duplicates; its fixture
    # names crashed processes).
    for text in crash_texts:
        totals["lost"] += len(re.findall(r"\bmissing p\d+", text))
        totals["duplicates"] += len(re.findall(r"duplicate rows", text))
        totals["crashes"] += len(re.findall(r"terminated by signal (?:6|11)\b", text))
    totals["faults"] += rounds  # each crash round is a SIGKILL or an immediate shutdown
    passed_rounds = 0 if crash_failed else rounds
    print("=== reliability figures")
    print(f"reliability tests:   {rel['passed']} passed, {rel['failed']} failed, "
          f"{rel['xfailed']} xfailed (known bugs), {rel['skipped']} skipped")
    print(f"crash test:          {'passed' if not crash_failed else 'FAILED'}")
    print(f"rounds passed:       {passed_rounds} of {rounds}")
    print(f"faults injected:     {totals['faults']}")
    print(f"hostile inputs tried: {totals['hostile']}")
    print(f"secrets attacks refused: {totals['attacks']} (test/reliability/test_secrets.py)")
    print(f"SQL fuzz:            {totals['sql_fuzz_calls']} calls in {totals['sql_fuzz_seconds']} s, "
          f"{totals['sql_fuzz_internal']} internal errors (XX000)")
    print(f"rows lost:           {totals['lost']}")
    print(f"duplicates:          {totals['duplicates']}")
    print(f"crashes:             {totals['crashes']}")
    bad = rel["failed"] or crash_failed or totals["lost"] or totals["duplicates"] or totals["crashes"]
    print("=== reliability: " + ("FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
