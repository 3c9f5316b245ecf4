"""Review 26: status.rejects under dry_run. README "dry_run": "Reads and converts everything, writes
only counters (and log lines): tables, rejects and the position stay untouched"; "Watching": status
shows "the rejects (count and time of the last): a rejected document or change is never counted as
copied or applied". A dry run is how an admin learns what a mapping would do: of 6 documents, 3
cannot be converted. status says docs_copied 3 and rejects 0 (last_reject_at NULL), and the reject
is logged at DEBUG1 only: the three documents vanish from every counter, so the dry run reports a
clean copy of half the collection."""

import json
import time

from pgcluster import wait_for
from river import create_river


def test_dry_run_counts_rejects(river_pg, mongo):
    pg = river_pg
    river, source = "r26dry", "r26dry.c"
    client = mongo.client()
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"k{i}", "n": i if i % 2 else "bad"} for i in range(6)])
    create_river(pg, river, mongo.uri, {"dry_run": True})
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "integer"}}}

    def status():
        return pg.query("SELECT phase, docs_copied, rejects, last_reject_at IS NOT NULL FROM mongo_river.status "
                        "WHERE river = %s", (river,))[0]
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(mapping)))
        wait_for(lambda: status()[:2] == ("streaming", 3), 60, 0.05, "the dry run's copy")
        time.sleep(1)
        assert pg.scalar("SELECT count(*) FROM mongo_river.rejects WHERE river = %s", (river,)) == 0  # untouched
        assert status() == ("streaming", 3, 3, True), status()
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
