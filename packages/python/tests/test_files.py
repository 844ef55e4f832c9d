"""volume.files: every call against the real cairnd, sync and async."""
from __future__ import annotations

import asyncio
import io
import tarfile

import httpx
import pytest

import cairn


def test_write_every_kind_of_data_and_read_back(volume: cairn.Volume) -> None:
    f = volume.files
    assert f.write("/s.txt", "text é\n")["created"] is True
    f.write("/b.bin", bytes(range(256)))
    f.write("/fobj.bin", io.BytesIO(b"from a file object"))
    f.write("/iter.bin", (bytes([i]) * 1000 for i in range(10)))
    f.write("/deep/er/x.txt", "parents made")
    assert f.read("/s.txt") == "text é\n"
    assert f.read_bytes("/b.bin") == bytes(range(256))
    assert f.read_bytes("/b.bin", range=(10, 19)) == bytes(range(10, 20))
    assert f.read_bytes("/b.bin", range=(250, None)) == bytes(range(250, 256))
    assert f.read_bytes("/fobj.bin") == b"from a file object"
    assert f.read_bytes("/iter.bin") == b"".join(bytes([i]) * 1000 for i in range(10))
    assert b"".join(f.read_stream("/iter.bin", chunk_size=777)) == f.read_bytes("/iter.bin")
    out = io.BytesIO()
    assert f.download("/b.bin", out) == 256 and out.getvalue() == bytes(range(256))
    assert f.read("/deep/er/x.txt") == "parents made"


def test_tree_calls(volume: cairn.Volume) -> None:
    f = volume.files
    assert f.mkdir("/a/b/c", mode=0o750)["type"] == "directory"
    for i in range(5):
        f.write(f"/a/f{i}.txt", f"file {i}\nTODO fix {i}\n")
    st = f.stat("/a/f1.txt")
    assert st["type"] == "file" and st["size"] == len("file 1\nTODO fix 1\n") and st["etag"]
    assert f.exists("/a/b/c") and not f.exists("/nope")
    page = f.list("/a", limit=2)
    assert len(page["items"]) == 2 and page["nextCursor"]
    names = [e["name"] for e in f.iterate("/a", page_size=2)]
    assert names == sorted(names) and set(names) == {"b", "f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt"}
    assert "/a/b/c" in [e["path"] for e in f.iterate("/a", recursive=True)]
    assert f.move("/a/f0.txt", "/a/b/moved.txt")["path"] == "/a/b/moved.txt"
    assert not f.exists("/a/f0.txt")
    with pytest.raises(cairn.ConflictError) as err:
        f.move("/a/f1.txt", "/a/b/moved.txt")
    assert err.value.code == "PATH_ALREADY_EXISTS"
    f.move("/a/f1.txt", "/a/b/moved.txt", overwrite=True)
    assert f.read("/a/b/moved.txt").startswith("file 1")
    assert f.edit("/a/f2.txt", "file 2", "FILE 2")["replacements"] == 1
    assert f.read("/a/f2.txt").startswith("FILE 2")
    found = f.search(path="/a", query="TODO")
    assert {m["path"] for m in found["matches"]} == {"/a/f2.txt", "/a/f3.txt", "/a/f4.txt", "/a/b/moved.txt"}
    assert {m["path"] for m in f.search(glob="f*.txt")["matches"]} == {"/a/f2.txt", "/a/f3.txt", "/a/f4.txt"}
    dry = f.replace("TODO", "DONE", path="/a", dry_run=True)
    assert dry["dryRun"] and dry["filesChanged"] == 4 and "TODO" in f.read("/a/f3.txt")
    assert f.replace("TODO", "DONE", path="/a")["replacements"] == 4
    assert "DONE fix 3" in f.read("/a/f3.txt")
    r = f.write_many([{"path": "/m/a.txt", "content": "A"}, {"path": "/m/run.sh", "content": b"#!/bin/sh\n", "mode": 0o755}])
    assert [x["path"] for x in r["files"]] == ["/m/a.txt", "/m/run.sh"]
    assert f.stat("/m/run.sh")["mode"] == 0o755
    with pytest.raises(cairn.ConflictError) as not_empty:
        f.remove("/m")
    assert not_empty.value.code == "DIRECTORY_NOT_EMPTY"
    f.remove("/m", recursive=True)
    assert not f.exists("/m")


def test_compare_and_swap(volume: cairn.Volume) -> None:
    f = volume.files
    etag = f.write("/cas.txt", "v1", if_none_match="*")["etag"]
    with pytest.raises(cairn.PreconditionFailedError) as err:
        f.write("/cas.txt", "again", if_none_match="*")
    assert err.value.code == "PRECONDITION_FAILED" and err.value.status == 412
    f.write("/cas.txt", "v2", if_match=etag)
    with pytest.raises(cairn.PreconditionFailedError):
        f.write("/cas.txt", "v3", if_match=etag)
    assert f.read("/cas.txt") == "v2"


def test_archives_both_ways_and_signed_urls(volume: cairn.Volume) -> None:
    f = volume.files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("proj/a.txt", b"alpha"), ("proj/sub/b.bin", bytes(1000))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    r = f.upload_archive("/up", buf)
    assert r["files"] == 2
    assert f.read("/up/proj/a.txt") == "alpha"
    got = b"".join(f.download_archive("/up/proj", format="tar.gz"))
    with tarfile.open(fileobj=io.BytesIO(got), mode="r:gz") as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
        assert names == {"a.txt", "sub/b.bin"}
    signed = f.sign("/up/proj/a.txt", expires_in=60)
    assert signed["method"] == "GET"
    assert httpx.get(signed["url"]).content == b"alpha"  # no key needed
    put = f.sign("/signed-put.txt", method="PUT")
    assert httpx.put(put["url"], content=b"via signed url").status_code in (200, 201)
    assert f.read("/signed-put.txt") == "via signed url"


def test_async_files(aclient: cairn.AsyncCairn) -> None:
    async def chunks():
        for i in range(4):
            await asyncio.sleep(0)
            yield f"piece {i};".encode()

    async def main() -> None:
        async with aclient:
            v = await aclient.volumes.create(f"async-{id(aclient) % 100000}")
            try:
                await v.files.write("/a.txt", chunks())
                assert await v.files.read("/a.txt") == "piece 0;piece 1;piece 2;piece 3;"
                await v.files.write("/b.txt", io.BytesIO(b"file object, read in a thread"))
                assert await v.files.read_bytes("/b.txt", range=(0, 3)) == b"file"
                assert [e["name"] async for e in v.files.iterate("/")] == ["a.txt", "b.txt"]
                await v.files.edit("/a.txt", "piece", "part", replace_all=True)
                assert (await v.files.read("/a.txt")).count("part") == 4
                assert await v.files.exists("/b.txt")
                await v.files.remove("/b.txt")
                assert not await v.files.exists("/b.txt")
            finally:
                await v.delete()

    asyncio.run(main())
