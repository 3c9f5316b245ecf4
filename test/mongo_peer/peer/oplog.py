"""The capped oplog (local.oplog.rs) in mongod 6.0's entry format."""
import bisect
import datetime
import time

from bson.int64 import Int64
from bson.timestamp import Timestamp

from .values import EPOCH, encode, decode


def ts_int(ts):
    """ts_int packs a bson Timestamp into the integer (time << 32 | inc) the oplog uses."""
    return (ts.time << 32) | ts.inc


def int_ts(v):
    """int_ts unpacks an integer timestamp into a bson Timestamp."""
    return Timestamp(v >> 32, v & 0xFFFFFFFF)


class Oplog:
    """Oplog keeps (ts, raw entry) pairs ordered by ts, capped at max_entries.

    Positions are physical list indices: entries before `head` were capped away (their bytes
    are released at once, the list slots in chunks), so capping costs O(1) per write.  Callers
    use positions only while they hold the store lock; live_raws() lists the kept entries."""

    def __init__(self, max_entries):
        """__init__ makes an empty oplog keeping at most max_entries entries."""
        self.max_entries = max(1, int(max_entries))
        self.tss = []
        self.raws = []
        self.evs = []  # per entry: a pre-encoded default change event (see fastlog) or None
        self.metas = []  # per entry: (op, ns), or None when unknown (loaded from --dbpath)
        self.head = 0  # position of the oldest kept entry
        self.last_ts = 0
        self.trimmed_max = 0  # highest ts ever removed by capping
        self.last_wall_ms = None

    @property
    def last_wall(self):
        """last_wall is the wall time of the newest entry (a datetime) or None."""
        if self.last_wall_ms is None:
            return None
        return EPOCH + datetime.timedelta(milliseconds=self.last_wall_ms)

    def next_ts(self):
        """next_ts returns a timestamp after every one given so far (wall-clock seconds)."""
        now = int(time.time())
        if now > (self.last_ts >> 32):
            self.last_ts = (now << 32) | 1
        else:
            self.last_ts += 1
        return self.last_ts

    def append(self, entry, ts=None):
        """append stamps ts/t/v/wall on entry (a dict in mongod field order) and stores it."""
        if ts is None:
            ts = self.next_ts()
        wall_ms = int(time.time() * 1000)
        wall = EPOCH + datetime.timedelta(milliseconds=wall_ms)
        doc = {}
        tail = {}
        for k, v in entry.items():
            if k in ("prevOpTime",):
                tail[k] = v
            else:
                doc[k] = v
        doc["ts"] = int_ts(ts)
        doc["t"] = Int64(1)
        doc["v"] = Int64(2)
        doc["wall"] = wall
        doc.update(tail)
        self._store(ts, encode(doc), None, wall_ms, (entry.get("op"), entry.get("ns")))
        return ts

    def append_bytes(self, head, tail, event=None, meta=None):
        """append_bytes stores an entry given as element bytes before ts/t/v/wall (head) and
        after them (tail); event(ts, wall_ms) may build its pre-encoded change event; meta is
        its (op, ns).  Returns ts."""
        from .fastlog import frame, oplog_tail
        ts = self.next_ts()
        wall_ms = int(time.time() * 1000)
        raw = frame(head + oplog_tail(ts, wall_ms) + tail)
        self._store(ts, raw, event(ts, wall_ms) if event is not None else None, wall_ms, meta)
        return ts

    def _store(self, ts, raw, ev, wall_ms, meta):
        """_store appends one entry and caps the oplog."""
        self.tss.append(ts)
        self.raws.append(raw)
        self.evs.append(ev)
        self.metas.append(meta)
        self.last_wall_ms = wall_ms
        self.trim()

    def trim(self):
        """trim caps the oplog at max_entries: O(1) per removed entry, compacting the lists
        when more than half of them is dead."""
        while len(self.tss) - self.head > self.max_entries:
            self.trimmed_max = self.tss[self.head]
            self.raws[self.head] = None
            self.evs[self.head] = None
            self.metas[self.head] = None
            self.head += 1
        if self.head > 1024 and 2 * self.head > len(self.tss):
            del self.tss[:self.head]
            del self.raws[:self.head]
            del self.evs[:self.head]
            del self.metas[:self.head]
            self.head = 0

    def live_raws(self):
        """live_raws returns the raw entries still in the oplog, oldest first."""
        return self.raws[self.head:]

    def count(self):
        """count returns the number of entries in the oplog."""
        return len(self.tss) - self.head

    def oldest(self):
        """oldest returns the ts of the oldest kept entry, or None."""
        return self.tss[self.head] if len(self.tss) > self.head else None

    def index_after(self, ts):
        """index_after returns the position of the first entry with ts > given ts."""
        return bisect.bisect_right(self.tss, ts, self.head)

    def index_at_or_after(self, ts):
        """index_at_or_after returns the position of the first entry with ts >= given ts."""
        return bisect.bisect_left(self.tss, ts, self.head)

    def entry(self, i):
        """entry returns (ts, raw bytes) of the entry at position i."""
        return self.tss[i], self.raws[i]

    def decoded(self, i):
        """decoded returns the entry at position i as a dict."""
        return decode(self.raws[i])

    def __len__(self):
        """__len__ returns the end position (one past the newest entry)."""
        return len(self.tss)
