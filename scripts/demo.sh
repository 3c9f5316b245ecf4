#!/usr/bin/env bash
# demo.sh: the main job. On a fresh Debian 12 machine: installs what is needed, builds and installs
# mongo_river, starts a PostgreSQL 15 cluster with it preloaded and a MongoDB source (MONGO_URI when
# set, else the repo's MongoDB peer, which it fills with a sample dataset), creates the extension,
# declares a river and a mapping, and shows the tables filling and then following live changes. Everything stays up for you to explore; `bash scripts/demo.sh stop` ends it.
#
# Environment: DEMO_DIR (default /tmp/mongo_river_demo), DEMO_PG_PORT (5499), DEMO_MONGO_PORT (27099),
# DEMO_SECONDS (10: how long it writes live changes).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/mongo_river_demo}
PG_PORT=${DEMO_PG_PORT:-5499}
MONGO_PORT=${DEMO_MONGO_PORT:-27099}
PGBIN=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PY=/usr/bin/python3

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_demo() {
    if [ -f "$DEMO_DIR/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$DEMO_DIR/data" -m fast -w stop >/dev/null || true
    fi
    if [ -f "$DEMO_DIR/peer.pid" ]; then
        kill "$(cat "$DEMO_DIR/peer.pid")" 2>/dev/null || true
        rm -f "$DEMO_DIR/peer.pid"
    fi
}

if [ "${1:-}" = stop ]; then
    stop_demo
    echo "demo: stopped (files are in $DEMO_DIR; remove it to start afresh)"
    exit 0
fi

bash scripts/install-deps.sh
bash scripts/build.sh
stop_demo
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DEMO_DIR"

echo "demo: starting PostgreSQL on port $PG_PORT (data in $DEMO_DIR/data)"
as_pg "$PGBIN/initdb" -D "$DEMO_DIR/data" -E UTF8 --locale=C -A trust -U postgres >/dev/null
cat >> "$DEMO_DIR/data/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO_DIR'
shared_preload_libraries = 'mongo_river,pg_cron'
mongo_river.database = 'postgres'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
CONF
as_pg "$PGBIN/pg_ctl" -D "$DEMO_DIR/data" -l "$DEMO_DIR/server.log" -w start >/dev/null
PSQL=(as_pg "$PGBIN/psql" -X -h "$DEMO_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)

MONGO_URI_DEMO=${MONGO_URI:-}
if [ -z "$MONGO_URI_DEMO" ]; then
    if [ -x test/mongo_peer/mongo-peer ]; then
        echo "demo: starting the MongoDB peer on port $MONGO_PORT"
        test/mongo_peer/mongo-peer --port "$MONGO_PORT" > "$DEMO_DIR/peer.log" 2>&1 &
        echo $! > "$DEMO_DIR/peer.pid"
        for _ in $(seq 100); do grep -q ready "$DEMO_DIR/peer.log" && break; sleep 0.1; done
        grep -q ready "$DEMO_DIR/peer.log" || { echo "demo: the peer did not start:"; cat "$DEMO_DIR/peer.log"; exit 1; }
        MONGO_URI_DEMO="mongodb://127.0.0.1:$MONGO_PORT/?replicaSet=rs0"
    else
        echo "demo: no MongoDB source (set MONGO_URI, or add the peer under test/mongo_peer)"
    fi
fi
if [ -n "$MONGO_URI_DEMO" ]; then
    echo "demo: loading the sample dataset into $MONGO_URI_DEMO (database demo)"
    $PY demo/load_sample.py "$MONGO_URI_DEMO"
fi

echo "demo: creating the extension"
"${PSQL[@]}" -c "CREATE EXTENSION mongo_river" >/dev/null
for _ in $(seq 100); do
    grep -q "mongo_river launcher: extension found" "$DEMO_DIR/server.log" && break
    sleep 0.1
done
"${PSQL[@]}" -c "SELECT extname, extversion FROM pg_extension WHERE extname = 'mongo_river'"

if [ -n "$MONGO_URI_DEMO" ]; then
    echo "demo: declaring a river and mapping demo.posts (nested author, tags, comments in a child table)"
    "${PSQL[@]}" -v uri="$MONGO_URI_DEMO" -f demo/river.sql
    echo "demo: writing changes to MongoDB for ${DEMO_SECONDS:-10} s; the river applies them as they come"
    $PY demo/write_changes.py "$MONGO_URI_DEMO" "${DEMO_SECONDS:-10}" &
    writer=$!
    for _ in $(seq "${DEMO_SECONDS:-10}"); do
        sleep 1
        "${PSQL[@]}" -At -c "SELECT format('  %s: phase %s, %s copied, %s changes applied, lag %s',
            source, phase, docs_copied, changes_applied, coalesce(lag::text, '-')) FROM mongo_river.status"
    done
    wait $writer
    "${PSQL[@]}" -c "SELECT mongo_river.wait_for_sync('demo', '30 s') AS in_sync" \
        -c "SELECT * FROM mongo_river.status" \
        -c "SELECT (SELECT count(*) FROM posts) AS posts, (SELECT count(*) FROM post_comments) AS comments" \
        -c "SELECT id, title, author_name, tags FROM posts ORDER BY id LIMIT 5"
    $PY demo/write_changes.py "$MONGO_URI_DEMO" count
fi

cat <<MSG
demo: running (the river keeps following MongoDB).
  PostgreSQL: psql -h $DEMO_DIR -p $PG_PORT -U postgres postgres   (server log: $DEMO_DIR/server.log)
              try: SELECT * FROM mongo_river.status;  SELECT * FROM posts LIMIT 5;
  MongoDB:    ${MONGO_URI_DEMO:-none}   (write with: /usr/bin/python3 -c "import pymongo; ...")
  stop:       bash scripts/demo.sh stop
MSG
