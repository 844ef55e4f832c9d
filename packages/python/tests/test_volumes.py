"""Volumes and checkpoints."""
from __future__ import annotations

import asyncio

import pytest

import cairn

from conftest import unique


def test_create_get_list_resize_update_delete(client: cairn.Cairn) -> None:
    team = unique("lbl")
    made = [client.volumes.create(unique("v"), labels={"team": team, "n": str(i)}) for i in range(3)]
    try:
        v = client.volumes.get(made[0].name)
        assert v.id == made[0].id and v.info["labels"] == {"team": team, "n": "0"}
        assert client.volumes.get(v.id).name == v.name
        page = client.volumes.list(labels={"team": team}, limit=2, fields=["name", "sizeBytes"])
        assert len(page["items"]) == 2 and page["nextCursor"]
        assert set(page["items"][0]) == {"name", "sizeBytes"}
        rest = client.volumes.list(labels={"team": team}, cursor=page["nextCursor"])
        assert len(rest["items"]) == 1 and rest["nextCursor"] is None
        assert sorted(x["name"] for x in client.volumes.iterate(labels={"team": team}, page_size=1)) == sorted(m.name for m in made)
        assert [x["name"] for x in client.volumes.iterate(labels={"team": team, "n": "1"})] == [made[1].name]
        how = v.resize(size_gb=2)
        assert how is not None and how["previousSizeBytes"] == 1 << 30 and v.size_bytes == 2 << 30
        with pytest.raises(cairn.ConflictError) as err:
            v.resize(size_gb=1)
        assert err.value.code == "VOLUME_SHRINK_NOT_ALLOWED"
        v.update(labels={"team": team, "renamed": "yes"})
        assert v.refresh().info["labels"]["renamed"] == "yes"
        again = client.volumes.from_name(v.name, create_if_missing=True)
        assert again.id == v.id
    finally:
        for m in made:
            m.delete()
    with pytest.raises(cairn.NotFoundError):
        client.volumes.get(made[0].id)


def test_checkpoints_restore_export_import_fork(client: cairn.Cairn, volume: cairn.Volume) -> None:
    volume.files.write("/state.txt", "before")
    cp = volume.checkpoints.create(name="before-change", labels={"why": "test"})
    assert cp["name"] == "before-change" and cp["volumeId"] == volume.id
    volume.files.write("/state.txt", "after")
    assert [c["name"] for c in volume.checkpoints.list()] == ["before-change"]
    assert volume.checkpoints.get("before-change")["id"] == cp["id"]
    volume.checkpoints.restore("before-change")
    assert volume.files.read("/state.txt") == "before"
    fork = client.volumes.create(unique("fork"), from_checkpoint=f"{volume.id}:before-change")
    imported = None
    try:
        assert fork.files.read("/state.txt") == "before"
        # Streamed both ways: the export's pieces go straight into the import.
        imported = client.volumes.import_(unique("imp"), volume.checkpoints.export("before-change", format="tar"), format="tar")
        assert imported.files.read("/state.txt") == "before"
    finally:
        fork.delete()
        if imported is not None:
            imported.delete()
    volume.checkpoints.delete("before-change")
    with pytest.raises(cairn.NotFoundError) as err:
        volume.checkpoints.get("before-change")
    assert err.value.code == "CHECKPOINT_NOT_FOUND"


def test_async_volumes(aclient: cairn.AsyncCairn) -> None:
    async def main() -> None:
        async with aclient:
            name = unique("av")
            v = await aclient.volumes.from_name(name, create_if_missing=True, size_gb=1)
            try:
                assert (await aclient.volumes.get(name)).id == v.id
                await v.checkpoints.create(name="one")
                assert [c["name"] for c in await v.checkpoints.list()] == ["one"]
                assert (await v.resize(size_gb=2))["mode"] in ("online", "offline")
                names = [x["name"] async for x in aclient.volumes.iterate()]
                assert name in names
                assert (await aclient.health())["status"] == "ok"
            finally:
                await v.delete()

    asyncio.run(main())
