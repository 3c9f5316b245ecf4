"""Review 26: a second resync of a collection, asked for after the first one ended, must run too
(README "Resync": `resync(river, source)` re-copies a collection). The worker notices a resync by
its catalog digest, which counts the mappings in phase 'resync' with no copy position yet; the
first resync's request and the second one's give the same count (1), so unless the worker reloaded
for another reason in between, the second request is never seen: the mapping stays in phase
'resync' with docs_copied 0, its copy never starts, and status.lag grows for good."""

import json

from pgcluster import wait_for
from river import create_river, wait_synced


def test_resync_twice(river_pg, mongo):
    pg = river_pg
    river, source = "r26twice", "r26twice.c"
    client = mongo.client()
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"k{i}", "n": i} for i in range(5)])
    create_river(pg, river, mongo.uri)
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}

    def ended(after):
        return pg.scalar("SELECT phase = 'streaming' AND copy_started_at > %s FROM mongo_river.mapping_state "
                         "WHERE river = %s", (after, river))
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(mapping)))
        wait_synced(pg, river)
        for attempt in (1, 2):
            started = pg.scalar("SELECT clock_timestamp()")
            pg.query(f'DELETE FROM "{river}" WHERE id = %s', (f"k{attempt}",))  # the resync puts it back
            pg.query("SELECT mongo_river.resync(%s, %s)", (river, source))
            try:
                wait_for(lambda: ended(started), 30, 0.05, f"resync {attempt} to end")
            except TimeoutError:
                pass
            status = pg.query("SELECT phase, docs_copied, lag FROM mongo_river.status WHERE river = %s", (river,))
            assert ended(started), (attempt, status)
            assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 5, (attempt, status)
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
