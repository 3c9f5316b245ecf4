"""summarize: adds up the test reports of run-tests.sh and prints the closing line.

Reads GoogleTest and pytest JUnit XML files and pg_regress's output from the reports folder; a
stage that failed without a report counts as one failed test. Exit status 1 if anything failed.
"""

import glob
import os
import re
import sys
import xml.etree.ElementTree as ET


def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = failed = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0)) + int(s.get("disabled", 0))
    return total - failed - skipped, failed, skipped


def regress_counts(path):
    with open(path, errors="replace") as f:
        text = f.read()
    ok = len(re.findall(r"^(?:ok|test) .*\.\.\. ok", text, re.M)) + len(re.findall(r"^ok \d+ ", text, re.M))
    bad = len(re.findall(r"\.\.\. FAILED", text)) + len(re.findall(r"^not ok \d+ ", text, re.M))
    return ok, bad, 0


def main():
    reports, failed_stages = sys.argv[1], set(sys.argv[2:])
    passed = failed = skipped = 0
    seen = set()
    for path in sorted(glob.glob(os.path.join(reports, "*.xml"))):
        name = os.path.splitext(os.path.basename(path))[0]
        seen.add(name)
        p, f, s = junit_counts(path)
        print(f"  {name}: {p} passed, {f} failed, {s} skipped")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    regress = os.path.join(reports, "regress.txt")
    if os.path.exists(regress):
        seen.add("regress")
        p, f, s = regress_counts(regress)
        print(f"  regress: {p} passed, {f} failed")
        passed, failed = passed + p, failed + f
    for stage in failed_stages - seen:
        print(f"  {stage}: stage failed")
        failed += 1
    if failed_stages and failed == 0:
        failed = len(failed_stages)
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or failed_stages else 0


if __name__ == "__main__":
    sys.exit(main())
