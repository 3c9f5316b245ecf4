"""review18: are copy replies bounded when sizes are mixed? The first find asks for one document;
the first getMore asks for ~4 MiB "of documents the size of the last batch's". When the first
document is tiny and the next ones are 2 MiB, that getMore asks for ~100k documents and the source
fills a 16 MiB reply (what the README says the change removed). The worker's RssAnon peak above
idle is compared with the uniform case's bound of test_big_documents (10 documents' worth)."""

import json
import threading

from pgcluster import wait_for
from river import create_river

MIB = 1024 * 1024
MAPPING = {"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "n": {"path": "n", "type": "bigint"},
                                   "blob": {"path": "blob", "type": "text"}}}


def rss_anon_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def worker_pid(pg, river):
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", ("mongo_river " + river,))


def run(pg, mongo, name, docs):
    client = mongo.client()
    client.drop_database(name)
    coll = client[name].c
    for d in docs:
        coll.insert_one(d)
    create_river(pg, name, mongo.uri, {"batch_size": 2000})
    wait_for(lambda: worker_pid(pg, name), 60, 0.05, "worker")
    pid = worker_pid(pg, name)
    idle = rss_anon_kb(pid)
    peak = [idle]
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], rss_anon_kb(pid))
            except OSError:
                return
            done.wait(0.005)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    pg.query("SELECT mongo_river.map_collection(%s, %s, %s, %s)", (name, f"{name}.c", name, json.dumps(MAPPING)))
    assert pg.scalar("SELECT mongo_river.wait_for_sync(%s, '300 s')", (name,))
    done.set()
    t.join()
    assert pg.scalar(f"SELECT count(*) FROM {name}") == len(docs)
    pg.query("SELECT mongo_river.drop_river(%s, true)", (name,))
    client.drop_database(name)
    return (peak[0] - idle) / 1024


def test_tiny_first_document_then_2mib_documents(river_pg, mongo):
    size = 2 * MIB
    uniform = run(river_pg, mongo, "bound_uniform", [{"_id": f"u{i:02d}", "n": i, "blob": chr(97 + i) * size}
                                                        for i in range(16)])
    mixed = run(river_pg, mongo, "bound_mixed", [{"_id": "a0", "n": 0, "blob": ""}] +
                [{"_id": f"b{i:02d}", "n": i, "blob": chr(97 + i) * size} for i in range(16)])
    print(f"copy peak above idle: uniform 2 MiB {uniform:.1f} MiB, tiny first then 2 MiB {mixed:.1f} MiB")
    assert mixed < 10 * size / MIB, f"the copy held {mixed:.1f} MiB above idle (a 16 MiB reply)"
