"""worker_memory: a river's worker process and its anonymous memory (RssAnon), for the memory tests
and the bench."""

import threading


def worker_pid(pg, river):
    """worker_pid returns the pid of river's worker, or None while it has none."""
    return pg.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'mongo_river worker' "
                     "AND application_name = %s", ("mongo_river " + river,))


def rss_anon_kb(pid):
    """rss_anon_kb returns pid's RssAnon in KiB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """PeakRss samples pid's RssAnon (KiB) every 5 ms in a thread while in its with block (and once
    more at its end); peak is the highest seen."""

    def __init__(self, pid):
        self.pid, self.peak, self.done = pid, rss_anon_kb(pid) or 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self):
        self.peak = max(self.peak, rss_anon_kb(self.pid) or 0)

    def run(self):
        while not self.done.is_set():
            self.sample()
            self.done.wait(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.sample()
        return False
