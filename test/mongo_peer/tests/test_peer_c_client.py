"""Builds c_client/smoke.c against libmongoc and runs it (CRUD, change stream + resume,
oplog tailing, transaction).  The expectations are the libmongoc API contracts
([docs: mongoc.org/libmongoc/1.23/]) checked inside smoke.c."""
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_libmongoc_smoke(peer_uri, tmp_path):
    if shutil.which("pkg-config") is None or subprocess.run(
            ["pkg-config", "--exists", "libmongoc-1.0"]).returncode != 0:
        pytest.skip("libmongoc-dev (pkg-config libmongoc-1.0) is not installed")
    src = os.path.join(HERE, "c_client")
    out = tmp_path / "smoke"
    build = subprocess.run(["make", "-s", "-C", src, "OUT=%s" % out, str(out)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stdout + build.stderr
    run = subprocess.run([str(out), peer_uri], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "SMOKE OK" in run.stdout, run.stdout + run.stderr
