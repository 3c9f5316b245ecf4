#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages mongo_river needs to build, test and run its demo.
# Idempotent and non-interactive; runs apt-get only when something is missing.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config clang clang-format libclang-rt-14-dev
    postgresql-15 postgresql-server-dev-15 postgresql-15-cron
    libmongoc-dev libbson-dev libjansson-dev libgtest-dev
    python3-pymongo python3-pymongo-ext python3-bson-ext python3-pytest python3-psycopg2 python3-matplotlib
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root: apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
