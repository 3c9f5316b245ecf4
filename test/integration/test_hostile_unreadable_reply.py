"""Review 20: a well-formed reply libmongoc cannot use must be 08P01, as README promises.

README ("A malformed reply"): "A reply libmongoc itself cannot read is 08P01 as well ("unreadable
reply from the MongoDB server")". A reply to infer_mapping's $sample aggregate that is valid BSON but
holds no cursor ({ok: 1}) passes the structural check; libmongoc refuses it ("Invalid reply to
aggregate command.") with its cursor error domain (MONGOC_ERROR_CURSOR), which errors.cpp does not
count as an unreadable reply: the error comes out as 58000 "MongoDB reported an error", blaming the
server for an error it never reported. The same for a cursor whose firstBatch is not an array.
"""

import psycopg2
import pytest

from hostile_lib import DocRewrite, drop_river, infer, proxied_river, session


def no_cursor(name, doc):
    if name == "aggregate":
        doc.clear()
        doc["ok"] = 1.0
        return True
    return False


def batch_not_array(name, doc):
    if name == "aggregate" and isinstance(doc.get("cursor"), dict):
        doc["cursor"]["firstBatch"] = "not an array"
        return True
    return False


@pytest.mark.parametrize("change", [no_cursor, batch_not_array], ids=["no_cursor", "batch_not_array"])
def test_unusable_cursor_reply_is_08P01(river_pg, auth_source, change):
    pg, river = river_pg, f"r20u_{change.__name__}"
    rewrite = DocRewrite(change)
    proxy = proxied_river(pg, river, auth_source, rewrite)
    try:
        rewrite.on = True
        conn = session(pg)
        try:
            with pytest.raises(psycopg2.Error) as failed:
                infer(conn, river)
        finally:
            conn.close()
        assert rewrite.fired, "no aggregate reply went through the proxy"
        assert failed.value.pgcode == "08P01", (
            f"an unreadable cursor reply was reported as SQLSTATE {failed.value.pgcode}: {str(failed.value).strip()}")
    finally:
        drop_river(pg, river, proxy)
