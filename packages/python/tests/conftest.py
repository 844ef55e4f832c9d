"""One real cairnd for the whole session (built by scripts/setup.sh), always cleaned up: the
process stopped, its mount namespace released (every mount and loop device it held goes with
it), its data dir (named cairn-pytest-*, easy to spot in `findmnt | grep cairn`) removed."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package from this tree, installed or not

import cairn  # noqa: E402

REPO = HERE.parent.parent.parent
SERVER_MAIN = REPO / "packages" / "server" / "dist" / "src" / "main.js"


class Cairnd:
    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None or not SERVER_MAIN.exists():
            raise RuntimeError(f"need node and a built cairnd at {SERVER_MAIN}: run scripts/setup.sh")
        self.node = node
        self.data_dir = tempfile.mkdtemp(prefix="cairn-pytest-")
        env = dict(os.environ)
        env.update(
            CAIRN_LOG_LEVEL="warn",
            CAIRN_POOL_SIZE="200GiB",
            CAIRN_IDLE_UNMOUNT_MS="200",
            CAIRN_ADMIN_KEY="",
            CAIRN_NAMESPACE_ID="",
            # Logs every problem code a route answers that its OpenAPI operation does not declare (test_contract.py).
            CAIRN_CHECK_ERROR_CODES="1",
        )
        self.output: List[str] = []
        self.proc = subprocess.Popen(
            [node, str(SERVER_MAIN), "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if "CAIRN_API_KEY=" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        try:
            if not ready.wait(30) or self.proc.poll() is not None:
                raise RuntimeError("cairnd did not start:\n" + "".join(self.output))
            text = "".join(self.output)
            self.url = re.search(r"CAIRN_URL=(\S+)", text).group(1)  # type: ignore[union-attr]
            self.admin_key = re.search(r"CAIRN_API_KEY=(\S+)", text).group(1)  # type: ignore[union-attr]
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Release the data dir's pinned mount namespace: whatever it still holds is unmounted.
        subprocess.run(
            [self.node, str(SERVER_MAIN), "--data-dir", self.data_dir, "--release"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.data_dir, ignore_errors=True)


class RecordingTransport(httpx.HTTPTransport):
    """Notes every (method, path) the SDK sends (the contract test checks them against OpenAPI)."""

    calls: Set[Tuple[str, str]] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        RecordingTransport.calls.add((request.method, request.url.path))
        return super().handle_request(request)


@pytest.fixture(scope="session")
def server() -> Iterator[Cairnd]:
    srv = Cairnd()
    saved = {k: os.environ.get(k) for k in ("CAIRN_URL", "CAIRN_API_KEY", "CAIRN_PROJECT")}
    os.environ["CAIRN_URL"] = srv.url
    os.environ["CAIRN_API_KEY"] = srv.admin_key
    os.environ.pop("CAIRN_PROJECT", None)
    try:
        yield srv
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        srv.destroy()


@pytest.fixture(scope="session")
def client(server: Cairnd) -> Iterator[cairn.Cairn]:
    c = cairn.Cairn(server.url, api_key=server.admin_key, transport=RecordingTransport())
    yield c
    c.close()


@pytest.fixture
def aclient(server: Cairnd) -> cairn.AsyncCairn:
    """A fresh async client per test: each test runs its own event loop (asyncio.run)."""
    return cairn.AsyncCairn(server.url, api_key=server.admin_key)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def volume(client: cairn.Cairn) -> Iterator[cairn.Volume]:
    v = client.volumes.create(unique("vol"))
    yield v
    try:
        v.delete()
    except cairn.CairnError:
        pass


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll until ``predicate()`` is truthy (behaviour, not timing: the deadline is only a guard)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """The contract tests run last: one of them checks every request the suite sent to cairnd."""
    items.sort(key=lambda item: item.fspath.basename == "test_contract.py")
