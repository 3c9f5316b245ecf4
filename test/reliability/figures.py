"""figures: the reliability suites' counters, one JSON line per record in the file named by the
environment variable RELIABILITY_FIGURES (nothing is written when it is unset).

Keys: faults (source faults injected), hostile (hostile inputs tried), attacks (attacks of the
secrets suite refused: test_secrets.py), lost (rows lost),
duplicates (duplicate rows), crashes (server processes terminated by signal 6/11), rounds (crash
rounds passed). scripts/reliability.sh adds them up."""

import json
import os
import random
import time


def record(test, **counts):
    path = os.environ.get("RELIABILITY_FIGURES")
    if not path:
        return
    line = json.dumps({"test": test, "time": time.time(), **counts})
    with open(path, "a") as f:
        f.write(line + "\n")


def seed_for(name):
    """seed_for returns the seed of a randomised test (RELIABILITY_SEED replays it) and prints it."""
    seed = int(os.environ.get("RELIABILITY_SEED", random.randrange(10**9)))
    print(f"{name}: seed {seed} (RELIABILITY_SEED={seed} replays it)")
    return seed
