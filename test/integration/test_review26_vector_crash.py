"""Review 26: a server crash (SIGSEGV, in a loop: the worker restarts and meets the change again) on
the insert and patch paths of a column typed int2vector or oidvector, or a domain over one.

PostgreSQL counts these as arrays (get_element_type gives int2 / oid), and since this change
LookupColumnType looks through domains for it, so ColumnType::element is set; the converter, which
does not know the names, classifies them as other scalar types and produces text ("1 2"). The copy
reads that text with the whole type's input (heap_writer's whole_input): fine. ToDatum (inserts,
patches, retry_rejects, verify repair) sends it to ScalarDatum, which runs column.input, the
*element's* input (int2in / oidin): "5" becomes the by-value Datum 5, used as a varlena pointer
when the row is formed. Kept apart from the other domain tests: every crash restarts the server's
processes."""

import pytest

from review_helpers import create_types, no_new_crashes, rejects
from river import synced_river, wait_synced


@pytest.mark.parametrize("type_name", ["public.r26_vec", "int2vector", "oidvector"])
def test_vector_types_on_insert_and_patch_paths_do_not_crash(river_pg, mongo, type_name):
    """int2vector and oidvector are arrays to PostgreSQL (get_element_type gives int2 / oid), so
    LookupColumnType sets ColumnType::element, but the converter classifies the name as a scalar type
    and produces text. The copy reads that text with the whole type's input; the insert and patch
    paths (ToDatum) read it with the element's input, giving a by-value int2/oid Datum for a varlena
    column. Nothing may crash the server, and the rows must be PostgreSQL's reading of the text."""
    pg = river_pg
    create_types(pg, "CREATE DOMAIN r26_vec AS int2vector;")
    river = "r26vec_" + type_name.split(".")[-1]
    mapping = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
                                       "v": {"path": "v", "type": type_name},
                                       "note": {"path": "note", "type": "text"}}}
    crashes_before = len(pg.crashes())
    with synced_river(pg, mongo, river, mapping, [f"{river}.c"], [{"_id": "a", "v": "1 2"}]) as coll:
        coll.insert_one({"_id": "b", "v": "5"})
        coll.update_one({"_id": "a"}, {"$set": {"v": "7"}})
        try:
            wait_synced(pg, river, 30)
        except Exception:  # noqa: BLE001 (reported below with the crashes)
            pass
        no_new_crashes(pg, crashes_before)
        rows = pg.query(f'SELECT id, v::text FROM "{river}" ORDER BY id')
        assert rows == [("a", "7"), ("b", "5")], (rows, rejects(pg, river))
