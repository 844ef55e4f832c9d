"""Big streams with bounded memory, resumable uploads after a cut connection or a crash, and
watch resuming from a cursor."""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import tempfile
from typing import Iterator, List
from urllib.parse import urlparse

import pytest

import cairn

from conftest import unique, wait_for
from proxy import CuttingProxy

MiB = 1024 * 1024


def pieces(total: int, seed: int, size: int = MiB) -> Iterator[bytes]:
    """Deterministic incompressible bytes, made as they are sent (never all in memory)."""
    rnd = random.Random(seed)
    left = total
    while left > 0:
        n = min(size, left)
        yield rnd.randbytes(n)
        left -= n


def digest_of(total: int, seed: int) -> str:
    h = hashlib.sha256()
    for p in pieces(total, seed):
        h.update(p)
    return h.hexdigest()


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def reset_peak() -> None:
    # Writing 5 resets VmHWM (peak RSS) to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def test_100_mib_streamed_both_ways_with_bounded_memory(client: cairn.Cairn, volume: cairn.Volume) -> None:
    total, seed = 100 * MiB, 7
    expected = digest_of(total, seed)
    reset_peak()
    before = status_kib("VmRSS")
    r = volume.files.write("/big.bin", pieces(total, seed))
    assert r["size"] == total
    h = hashlib.sha256()
    n = 0
    for piece in volume.files.read_stream("/big.bin", chunk_size=MiB):
        h.update(piece)
        n += len(piece)
    grown_mib = (status_kib("VmHWM") - before) / 1024
    assert n == total and h.hexdigest() == expected
    # Buffering either direction would need 100 MiB or more.
    assert grown_mib < 40, f"peak RSS grew {grown_mib:.0f} MiB during a 100 MiB round trip"


def test_100_mib_async_resumable_upload_and_download_to_file(aclient: cairn.AsyncCairn) -> None:
    total, seed = 100 * MiB, 11
    expected = digest_of(total, seed)
    progress: List[int] = []

    async def source():
        for p in pieces(total, seed):
            yield p

    async def main() -> None:
        async with aclient:
            v = await aclient.volumes.create(unique("big"))
            try:
                reset_peak()
                before = status_kib("VmRSS")
                r = await v.files.upload("/up.bin", source(), length=total, chunk_size=8 * MiB, on_progress=lambda done, _t: progress.append(done))
                assert r.size == total and r.path == "/up.bin"
                with tempfile.TemporaryDirectory(prefix="cairn-pytest-dl-") as d:
                    local = os.path.join(d, "down.bin")
                    assert await v.files.download("/up.bin", local) == total
                    grown_mib = (status_kib("VmHWM") - before) / 1024
                    h = hashlib.sha256()
                    with open(local, "rb") as f:
                        for block in iter(lambda: f.read(MiB), b""):
                            h.update(block)
                    assert h.hexdigest() == expected
                    assert not [x for x in os.listdir(d) if "partial" in x]
                assert grown_mib < 48, f"peak RSS grew {grown_mib:.0f} MiB"
            finally:
                await v.delete()

    asyncio.run(main())
    assert progress[0] == 0 and progress[-1] == total and progress == sorted(progress)


def test_resumable_upload_survives_a_cut_connection(server, volume: cairn.Volume) -> None:
    up = urlparse(server.url)
    proxy = CuttingProxy((up.hostname, up.port))
    total, seed = 24 * MiB, 3
    data = b"".join(pieces(total, seed))
    try:
        via = cairn.Cairn(proxy.url, api_key=server.admin_key)
        proxy.cut_after = 13 * MiB  # in the middle of the second 8 MiB chunk
        progress: List[int] = []
        r = via.volumes.get(volume.id).files.upload("/cut.bin", data, chunk_size=8 * MiB, on_progress=lambda d, t: progress.append(d))
        via.close()
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert r.size == total and progress[-1] == total
    assert hashlib.sha256(volume.files.read_bytes("/cut.bin")).digest() == hashlib.sha256(data).digest()


def test_resumable_upload_resumes_after_a_crash_from_its_url(volume: cairn.Volume) -> None:
    total, seed = 10 * MiB, 5
    saved: List[str] = []

    def crashing():
        for i, p in enumerate(pieces(total, seed)):
            if i == 6:
                raise RuntimeError("the process died here")
            yield p

    with pytest.raises(RuntimeError):
        volume.files.upload("/crash.bin", crashing(), length=total, chunk_size=4 * MiB, on_upload_url=saved.append)
    assert len(saved) == 1
    stored = volume.files.upload_status(saved[0])["offset"]
    assert 0 < stored < total and not volume.files.exists("/crash.bin")
    # A new process: the same data again from the start; what the server has is skipped.
    r = volume.files.upload("/crash.bin", pieces(total, seed), length=total, chunk_size=4 * MiB, upload_url=saved[0])
    assert r.size == total and r.upload_url == saved[0]
    assert hashlib.sha256(volume.files.read_bytes("/crash.bin")).hexdigest() == digest_of(total, seed)


def test_upload_of_unknown_length_and_abort(volume: cairn.Volume) -> None:
    r = volume.files.upload("/stream.txt", (f"line {i}\n".encode() for i in range(1000)), chunk_size=4096)
    assert volume.files.read("/stream.txt") == "".join(f"line {i}\n" for i in range(1000))
    assert r.size == len(volume.files.read_bytes("/stream.txt"))
    urls: List[str] = []
    with pytest.raises(RuntimeError):
        volume.files.upload("/never.bin", _fail_after_first(), length=10 * MiB, chunk_size=MiB, on_upload_url=urls.append)
    volume.files.abort_upload(urls[0])
    with pytest.raises(cairn.NotFoundError) as err:
        volume.files.upload_status(urls[0])
    assert err.value.code == "UPLOAD_NOT_FOUND"


def _fail_after_first():
    yield bytes(MiB)
    yield bytes(MiB)
    raise RuntimeError("stop")


def _changes(messages, want: int):  # type: ignore[no-untyped-def]
    out = []
    for m in messages:
        assert m["type"] != "reset", m
        if m["type"] != "ready":
            out.append(m)
        if len(out) >= want:
            break
    return out


def test_watch_resumes_from_a_cursor(volume: cairn.Volume) -> None:
    f = volume.files
    stream = f.watch("/")
    first = next(stream)
    assert first["type"] == "ready" and first["cursor"]
    f.write("/w1.txt", "1")
    (m1,) = _changes(stream, 1)
    assert m1["path"] == "/w1.txt" and m1["type"] in ("create", "modify") and m1["cursor"]
    stream.close()
    # Changes while nobody watches come back when resuming after the last cursor seen.
    f.write("/w2.txt", "2")
    f.mkdir("/wdir")
    resumed = f.watch("/", cursor=m1["cursor"])
    got = _changes(resumed, 2)
    resumed.close()
    assert [m["path"] for m in got] == ["/w2.txt", "/wdir"]
    assert got[1]["isDir"] is True


def test_watch_reconnects_by_itself_after_a_cut(server, aclient: cairn.AsyncCairn) -> None:
    up = urlparse(server.url)
    proxy = CuttingProxy((up.hostname, up.port))

    async def main() -> None:
        async with aclient:
            v = await aclient.volumes.create(unique("watch"))
            via = cairn.AsyncCairn(proxy.url, api_key=server.admin_key)
            try:
                seen: List[str] = []
                stream = (await via.volumes.get(v.id)).files.watch("/")
                async for m in stream:
                    assert m["type"] != "reset", m
                    if m["type"] == "ready" and not seen:
                        await v.files.write("/before-cut.txt", "x")
                    elif m["type"] != "ready":
                        seen.append(m["path"])
                        if m["path"] == "/before-cut.txt":
                            proxy.cut_all()
                            await v.files.write("/after-cut.txt", "y")
                        if m["path"] == "/after-cut.txt":
                            break
                await stream.aclose()
                assert seen == ["/before-cut.txt", "/after-cut.txt"]
            finally:
                await via.aclose()
                # A watched volume stays in use for a while after the watch ends (VOLUME_BUSY):
                # it goes with the session's cairnd.

    try:
        asyncio.run(main())
    finally:
        proxy.close()
    assert proxy.cuts >= 1
