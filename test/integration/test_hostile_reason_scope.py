"""Review 20: a refused reply's reason belongs to its client, and goes when the source recovers.

README ("A malformed reply"): a refused reply's reason explains that client's later errors (08P01);
(brief) it "is kept per client until one of that client's connections reads a good reply". So: a
backend that met a refused reply through river A's source must not show it for river B's healthy
source, and A's next error-free call after the source recovered must not be blamed on it; two
workers likewise. The refused reply here: a hello agreeing to zlib compression, which the river did
not offer.
"""

import pytest

import psycopg2

from pgcluster import wait_for
from hostile_lib import DocRewrite, drop_river, infer, proxied_river, session


def agree_to_zlib(name, doc):
    if "maxWireVersion" in doc:
        doc["compression"] = ["zlib"]
        return True
    return False


def test_reason_stays_with_its_client(river_pg, auth_source):
    pg = river_pg
    bad = DocRewrite(agree_to_zlib)
    good = DocRewrite(lambda name, doc: False)
    proxy_a = proxied_river(pg, "r20c_a", auth_source, bad)
    proxy_b = proxied_river(pg, "r20c_b", auth_source, good)
    try:
        bad.on = True
        conn = session(pg)
        try:
            with pytest.raises(psycopg2.Error) as failed:
                infer(conn, "r20c_a")
            assert failed.value.pgcode == "08P01" and "compression" in str(failed.value), failed.value
            assert infer(conn, "r20c_b"), "river B's healthy source failed after river A's refused reply"
            with pytest.raises(psycopg2.Error) as again:
                infer(conn, "r20c_a")
            assert again.value.pgcode == "08P01" and "compression" in str(again.value), again.value
            bad.on = False
            assert infer(conn, "r20c_a"), "river A failed after its source recovered"
        finally:
            conn.close()
        # Workers: A refused (its last_error says why), B unaffected; A recovers once the source does.
        bad.on = True
        pg.query("SELECT mongo_river.start('r20c_a')")
        pg.query("SELECT mongo_river.start('r20c_b')")
        error = wait_for(lambda: pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = 'r20c_a'"),
                         30, 0.1, "river A's error")
        assert "compression" in error, error
        assert pg.scalar("SELECT mongo_river.wait_for_sync('r20c_b', '30 s')")
        assert pg.scalar("SELECT last_error FROM mongo_river.status WHERE river = 'r20c_b'") is None
        assert pg.scalar("SELECT count(*) FROM r20c_b") == 10
        bad.on = False
        assert pg.scalar("SELECT mongo_river.wait_for_sync('r20c_a', '60 s')")
        wait_for(lambda: pg.scalar("SELECT last_error IS NULL AND phase = 'streaming' FROM mongo_river.status "
                                   "WHERE river = 'r20c_a'"), 30, 0.1, "river A streaming without an error")
        assert pg.scalar("SELECT count(*) FROM r20c_a") == 10
    finally:
        bad.on = False
        drop_river(pg, "r20c_a", proxy_a)
        drop_river(pg, "r20c_b", proxy_b)
