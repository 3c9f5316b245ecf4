#!/usr/bin/env bash
# build.sh: builds mongo_river with warnings as errors and installs it into PostgreSQL 15.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
make -j"$(nproc)" WERROR=-Werror
"${SUDO[@]}" make install >/dev/null
echo "build: mongo_river $(sed -n "s/^default_version = '\(.*\)'/\1/p" mongo_river.control) installed into $(pg_config --pkglibdir)"
