"""check-meta: META.json is valid PGXN meta-spec 1.0.0 and agrees with mongo_river.control."""

import json
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
if errors:
    print("META.json: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"META.json ok (version {version})")
