"""The examples in packages/python/examples run as written against the session's cairnd."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import HERE

EXAMPLES = sorted((HERE.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(server, path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, CAIRN_URL=server.url, CAIRN_API_KEY=server.admin_key, PYTHONPATH=str(HERE.parent))
    env.pop("CAIRN_PROJECT", None)
    r = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    if path.name in ("quickstart.py", "async_quickstart.py"):
        assert r.stdout.splitlines()[0] == "persistent"
