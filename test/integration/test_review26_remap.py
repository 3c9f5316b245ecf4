"""Review 26: unmap_collection then map_collection again of the same collection (same target, same
mapping, copy: true) while the river runs. The new mapping starts in phase 'pending' (its
mapping_state row is new) and must be copied: "a collection mapped into a running river is copied
while the rest keeps streaming". The worker notices catalog changes by a digest of the river's
mappings (source, target, mapping, options): the same mapping declared again has the same digest,
so when the worker did not look in between (both calls in one transaction, or within one naptime)
it never reloads: the mapping stays 'pending' with docs_copied 0 for good, and a copy rejects'
bookkeeping that depends on the new copy (status.rejects) never happens."""

import json

from pgcluster import wait_for
from review_helpers import KEY_N_INTEGER as MAPPING
from river import create_river, wait_synced


def test_unmap_and_map_again_in_one_transaction_copies_again(river_pg, mongo):
    pg = river_pg
    river, source = "r26remapt", "r26remapt.c"
    client = mongo.client()
    client.drop_database(river)
    client[river].c.insert_many([{"_id": f"k{i}", "n": i} for i in range(5)])
    create_river(pg, river, mongo.uri)
    try:
        pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (river, source, river, json.dumps(MAPPING)))
        wait_synced(pg, river)
        pg.query(f'DELETE FROM "{river}"')  # so that the new copy shows
        pg.query("SELECT mongo_river.unmap_collection(%s, %s); SELECT mongo_river.map_collection(%s, %s, %s, %s)",
                 (river, source, river, source, river, json.dumps(MAPPING)))

        def state():
            return pg.query("SELECT phase, docs_copied FROM mongo_river.status WHERE river = %s", (river,))[0]
        try:
            wait_for(lambda: state() == ("streaming", 5), 30, 0.1, "the new mapping's copy")
        except TimeoutError:
            pass
        assert state() == ("streaming", 5), (state(), pg.scalar(f'SELECT count(*) FROM "{river}"'))
        assert pg.scalar(f'SELECT count(*) FROM "{river}"') == 5
    finally:
        pg.query("SELECT mongo_river.drop_river(%s, true)", (river,))
