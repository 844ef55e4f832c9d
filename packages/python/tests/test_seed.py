"""The flows of issue 17, as a user writes them: the default client from CAIRN_URL/CAIRN_API_KEY."""
from __future__ import annotations

import asyncio

import cairn
from cairn import AsyncSandbox, AsyncVolume, Sandbox, Volume

from conftest import unique


def test_seed_flow_sync(server) -> None:
    name = unique("team-data")
    volume = Volume.from_name(name, create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\n")
    with Sandbox.create(volumes=[volume.mount("/workspace/shared")]) as sandbox:
        assert sandbox.files.read("/workspace/shared/hello.txt").strip() == "persistent"
        sandbox.exec("echo from-sandbox > /workspace/shared/back.txt")
    assert sandbox.state == "stopped"
    # The volume outlives the sandbox, and from_name finds the same one again.
    again = Volume.from_name(name, create_if_missing=True)
    assert again.id == volume.id
    assert again.files.read("/back.txt") == "from-sandbox\n"
    again.delete()


def test_seed_flow_async(server) -> None:
    async def main() -> None:
        client = cairn.AsyncCairn()
        try:
            volume = await AsyncVolume.from_name(unique("team-data"), create_if_missing=True, client=client)
            await volume.files.write("/hello.txt", "persistent\n")
            async with await AsyncSandbox.create(volumes=[volume.mount("/workspace/shared")], client=client) as sandbox:
                assert (await sandbox.files.read("/workspace/shared/hello.txt")).strip() == "persistent"
            assert sandbox.state == "stopped"
            await volume.delete()
        finally:
            await client.aclose()

    asyncio.run(main())


def test_volumes_map_shorthand_creates_the_volume(client: cairn.Cairn) -> None:
    name = unique("my_project")
    with client.sandboxes.create(volumes={"/workspace": name}) as sandbox:
        r = sandbox.exec("printf made-inside > /workspace/inside.txt && ls /workspace")
        assert r.exit_code == 0 and "inside.txt" in r.stdout
    volume = client.volumes.get(name)
    assert volume.files.read("/inside.txt") == "made-inside"
    volume.delete()


def test_exec_streams_and_background(client: cairn.Cairn, volume: cairn.Volume) -> None:
    with client.sandboxes.create(volumes=[volume.mount("/data")], env={"GREETING": "hi"}) as sandbox:
        seen: list = []
        r = sandbox.exec("echo $GREETING; echo oops >&2; exit 3", on_stdout=seen.append)
        assert (r.stdout, r.stderr, r.exit_code) == ("hi\n", "oops\n", 3)
        assert "".join(seen) == "hi\n"
        events = list(sandbox.exec_stream("echo a; echo b >&2"))
        assert events[-1] == {"type": "exit", "exitCode": 0}
        assert {"type": "stdout", "data": "a\n"} in events
        proc = sandbox.exec("echo started; read x < /dev/null; echo done > /data/bg.txt", background=True)
        assert isinstance(proc, cairn.SandboxProcess)
        done = proc.wait()
        assert done["state"] == "exited" and done["exitCode"] == 0 and "started" in done["stdout"]
        assert volume.files.read("/bg.txt") == "done\n"
        # Files of the sandbox itself, relative to its cwd.
        sandbox.cwd("/tmp")
        sandbox.files.write("note.txt", iter([b"one ", b"two"]))
        assert sandbox.files.read("/tmp/note.txt") == "one two"
        assert sandbox.exec("cat note.txt").stdout == "one two"


def test_attach_detach_hibernate_resume_fork(client: cairn.Cairn, volume: cairn.Volume) -> None:
    cache = client.volumes.create(unique("cache"), access_mode="ReadWriteMany")
    try:
        with client.sandboxes.create() as sandbox:
            att = sandbox.attach(cache.mount("/cache"))
            assert att["state"] == "mounted" and att["mountPath"] == "/cache"
            sandbox.exec("echo hot > /cache/plugged.txt")
            assert cache.files.read("/plugged.txt") == "hot\n"
            assert [a["mountPath"] for a in sandbox.attachments() if a["state"] == "mounted"] == ["/cache"]
            assert sandbox.detach("/cache")["state"] == "released"
            sandbox.attach(volume.mount("/work"))
            sandbox.exec("echo kept > /work/state.txt; echo overlay > /root-note.txt")
            assert sandbox.hibernate().state == "hibernated"
            assert sandbox.resume().state == "running"
            assert sandbox.exec("cat /work/state.txt /root-note.txt").stdout == "kept\noverlay\n"
            with sandbox.fork() as copy:
                assert copy.id != sandbox.id
                assert copy.exec("cat /root-note.txt").stdout == "overlay\n"
                # A ReadWriteOnce volume mounted read-write is forked: the fork's writes stay its own.
                copy.exec("echo fork > /work/state.txt")
                assert sandbox.exec("cat /work/state.txt").stdout == "kept\n"
            assert sandbox.refresh().state == "running"
            assert any(s["id"] == sandbox.id for s in client.sandboxes.list(state="running"))
    finally:
        cache.delete()
