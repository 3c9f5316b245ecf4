"""check-meta: META.json is valid PGXN meta-spec 1.0.0 and agrees with mongo_river.control.

provides.<ext>.file must name the base install script present in sql/install
(mongo_river--BASE.sql), and a chain of upgrade scripts must lead from BASE to the control file's
default_version (the full install path): each step is sql/install/mongo_river--A--B.sql, or for
a step that `make` builds from fragments (DATA_built), a non-empty sql/upgrade-B/ directory.
"""

import json
import os
import re
import sys

with open("META.json") as f:
    meta = json.load(f)
with open("mongo_river.control") as f:
    version = re.search(r"^default_version = '([^']+)'", f.read(), re.M).group(1)

errors = []
for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    if key not in meta:
        errors.append(f"missing required key {key!r}")
if meta.get("meta-spec", {}).get("version") != "1.0.0":
    errors.append("meta-spec.version must be 1.0.0")
semver = re.compile(r"^\d+\.\d+\.\d+$")
if meta.get("version") != version:
    errors.append(f"version {meta.get('version')!r} differs from the control file's {version!r}")
for name, spec in meta.get("provides", {}).items():
    if spec.get("version") != version:
        errors.append(f"provides.{name}.version {spec.get('version')!r} differs from {version!r}")
    if not spec.get("file"):
        errors.append(f"provides.{name}.file is missing")
    if not semver.match(spec.get("version", "")):
        errors.append(f"provides.{name}.version is not semver")
    path = spec.get("file")
    if path:
        base = re.fullmatch(rf"sql/install/{re.escape(name)}--(\d+\.\d+\.\d+)\.sql", path)
        if not os.path.isfile(path):
            errors.append(f"provides.{name}.file {path!r} does not exist")
        elif not base:
            errors.append(f"provides.{name}.file {path!r} is not a base install script sql/install/{name}--X.Y.Z.sql")
        else:
            # Walk the upgrade chain from the base script's version to the default version.
            steps = {}
            for f in os.listdir("sql/install"):
                m = re.fullmatch(rf"{re.escape(name)}--(\d+\.\d+\.\d+)--(\d+\.\d+\.\d+)\.sql", f)
                if m:
                    steps[m.group(1)] = m.group(2)
            for d in os.listdir("sql"):
                m = re.fullmatch(r"upgrade-(\d+\.\d+\.\d+)", d)
                if m and any(f.endswith(".sql") for f in os.listdir(os.path.join("sql", d))):
                    # Built by make from fragments: the step from the previous version.
                    steps.setdefault(None, []).append(m.group(1))
            built = steps.pop(None, [])
            at, seen = base.group(1), set()
            while at != version and at not in seen:
                seen.add(at)
                if at in steps:
                    at = steps[at]
                    continue
                nxt = min((b for b in built if tuple(map(int, b.split("."))) > tuple(map(int, at.split(".")))),
                          key=lambda b: tuple(map(int, b.split("."))), default=None)
                if nxt is None:
                    break
                at = nxt
            if at != version:
                errors.append(f"no upgrade path in sql/install from {path!r} ({base.group(1)}) to {version}: stops at {at}")
if errors:
    print("META.json: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"META.json ok (version {version})")
