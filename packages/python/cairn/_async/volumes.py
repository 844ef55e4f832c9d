"""Volumes (``cairn.volumes``, ``Volume``) and their checkpoints."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple

from .._types import AccessMode, Checkpoint, Filesystem, MountRequest, ResizeInfo, VolumeInfo, VolumeList
from ._http import AsyncHttp, enc
from .files import AsyncVolumeFiles

if TYPE_CHECKING:
    from .client import AsyncCairn


def _create_body(name: str, **options: Any) -> Dict[str, Any]:
    keys = {
        "size_gb": "sizeGb",
        "size_bytes": "sizeBytes",
        "access_mode": "accessMode",
        "filesystem": "filesystem",
        "labels": "labels",
        "region": "region",
        "from_checkpoint": "fromCheckpoint",
        "if_exists": "ifExists",
    }
    body: Dict[str, Any] = {"name": name}
    for key, value in options.items():
        if key not in keys:
            raise TypeError(f"unexpected option {key!r}")
        if value is not None:
            body[keys[key]] = value
    return body


class AsyncCheckpoints:
    """Checkpoints of one volume: instant copy-on-write restore points.

    Example::

        await volume.checkpoints.create(name="before-migration")
        await volume.checkpoints.restore("before-migration")
    """

    def __init__(self, http: AsyncHttp, volume_ref: Any) -> None:
        self._http = http
        self._volume_ref = volume_ref

    def __repr__(self) -> str:
        return f"<AsyncCheckpoints volume={self._volume_ref()!r}>"

    def _base(self) -> str:
        return f"/v1/volumes/{enc(self._volume_ref())}/checkpoints"

    async def create(self, *, name: Optional[str] = None, labels: Optional[Mapping[str, str]] = None, keep: Optional[int] = None) -> Checkpoint:
        """Take a checkpoint (writers pause for milliseconds); ``keep`` deletes the oldest beyond it.

        Example::

            await volume.checkpoints.create(name="nightly-2026-11-22", keep=7)
        """
        body: Dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if labels is not None:
            body["labels"] = dict(labels)
        if keep is not None:
            body["keep"] = keep
        return await self._http.json("POST", self._base(), json=body)  # type: ignore[no-any-return]

    async def list(self) -> List[Checkpoint]:
        """Oldest first. Example: ``[cp["name"] for cp in await volume.checkpoints.list()]``"""
        return (await self._http.json("GET", self._base()))["items"]  # type: ignore[no-any-return]

    async def get(self, ref: str) -> Checkpoint:
        """By id or name. Example: ``cp = await volume.checkpoints.get("before-migration")``"""
        return await self._http.json("GET", f"{self._base()}/{enc(ref)}")  # type: ignore[no-any-return]

    async def restore(self, ref: str, *, detach: bool = False) -> VolumeInfo:
        """Restore the volume in place; ``VOLUME_BUSY`` while a sandbox has it attached read-write,
        unless ``detach`` (which detaches it first).

        Example::

            await volume.checkpoints.restore("before-migration")
        """
        return await self._http.json("POST", f"{self._base()}/{enc(ref)}/restore", query={"detach": detach})  # type: ignore[no-any-return]

    async def export(self, ref: str, *, format: str = "image") -> AsyncIterator[bytes]:
        """A checkpoint as a stream: ``image`` (the raw filesystem image) or ``tar`` (its files);
        either imports with ``cairn.volumes.import_``.

        Example::

            with open("cp.tar", "wb") as out:
                async for piece in volume.checkpoints.export("before-migration", format="tar"):
                    out.write(piece)
        """
        res = await self._http.request("GET", f"{self._base()}/{enc(ref)}/export", query={"format": format}, stream=True)
        try:
            async for piece in self._http.iter_body(res):
                yield piece
        finally:
            await res.aclose()

    async def delete(self, ref: str) -> None:
        """Example: ``await volume.checkpoints.delete("before-migration")``"""
        await self._http.json("DELETE", f"{self._base()}/{enc(ref)}")


class AsyncVolume:
    """A volume: a durable, named filesystem that outlives sandboxes.

    Example::

        volume = await AsyncVolume.from_name("team-data", create_if_missing=True)
        await volume.files.write("/hello.txt", "persistent\\n")
    """

    def __init__(self, volumes: "AsyncVolumes", info: VolumeInfo) -> None:
        self._volumes = volumes
        self.info: VolumeInfo = info
        self.files = AsyncVolumeFiles(volumes._http, lambda: self.info["id"])
        self.checkpoints = AsyncCheckpoints(volumes._http, lambda: self.info["id"])

    def __repr__(self) -> str:
        return f"<AsyncVolume {self.info.get('name')!r} id={self.info.get('id')!r} size_bytes={self.info.get('sizeBytes')}>"

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def size_bytes(self) -> int:
        return self.info["sizeBytes"]

    @classmethod
    async def from_name(cls, name: str, *, create_if_missing: bool = False, client: Optional["AsyncCairn"] = None, **options: Any) -> "AsyncVolume":
        """Look a volume up by name, creating it when ``create_if_missing``. Uses the client from
        the environment (``CAIRN_URL``, ``CAIRN_API_KEY``) unless one is given.

        Example::

            volume = await AsyncVolume.from_name("team-data", create_if_missing=True, size_gb=2)
        """
        from .client import AsyncCairn

        volumes = (client or AsyncCairn.default()).volumes
        return await volumes.from_name(name, create_if_missing=create_if_missing, **options)

    def mount(self, mount_path: str, *, mode: Optional[str] = None, subpath: Optional[str] = None, checkpoint: Optional[str] = None) -> MountRequest:
        """A mount of this volume for ``Sandbox.create(volumes=[...])`` or ``sandbox.attach(...)``.

        Example::

            await AsyncSandbox.create(volumes=[volume.mount("/data", mode="ro"), volume.mount("/p1", subpath="projects/p1")])
        """
        m: MountRequest = {"volume": self.info["id"], "mountPath": mount_path}
        if mode is not None:
            m["mode"] = mode  # type: ignore[typeddict-item]
        if subpath is not None:
            m["subpath"] = subpath
        if checkpoint is not None:
            m["checkpoint"] = checkpoint
        return m

    async def refresh(self) -> "AsyncVolume":
        """Fetch the volume's fields again. Example: ``print((await volume.refresh()).info["usedBytes"])``"""
        self.info = (await self._volumes.get(self.info["id"])).info
        return self

    async def resize(self, *, size_gb: Optional[int] = None, size_bytes: Optional[int] = None) -> Optional[ResizeInfo]:
        """Grow the volume; ``VOLUME_SHRINK_NOT_ALLOWED`` for smaller. Example: ``await volume.resize(size_gb=2)``"""
        volume, resize = await self._volumes.resize(self.info["id"], size_gb=size_gb, size_bytes=size_bytes)
        self.info = volume.info
        return resize

    async def update(self, *, labels: Mapping[str, str]) -> "AsyncVolume":
        """Replace the labels. Example: ``await volume.update(labels={"team": "ml"})``"""
        self.info = (await self._volumes.update(self.info["id"], labels=labels)).info
        return self

    async def delete(self, *, keep_checkpoints: bool = False) -> None:
        """Delete the volume and its data. Example: ``await volume.delete()``"""
        await self._volumes.delete(self.info["id"], keep_checkpoints=keep_checkpoints)


class AsyncVolumes:
    """Volume management: ``cairn.volumes``."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    def __repr__(self) -> str:
        return "<AsyncVolumes>"

    def _wrap(self, info: VolumeInfo) -> AsyncVolume:
        return AsyncVolume(self, info)

    async def create(
        self,
        name: str,
        *,
        size_gb: Optional[int] = None,
        size_bytes: Optional[int] = None,
        access_mode: Optional[AccessMode] = None,
        filesystem: Optional[Filesystem] = None,
        labels: Optional[Mapping[str, str]] = None,
        region: Optional[str] = None,
        from_checkpoint: Optional[str] = None,
        if_exists: Optional[str] = None,
    ) -> AsyncVolume:
        """Create a volume (1 GiB ext4, ReadWriteOnce by default). ``from_checkpoint="vol:cp"`` forks
        one; ``if_exists="return"`` gives back an existing one of that name instead of a 409.

        Example::

            v = await cairn.volumes.create("big_vol", size_gb=10, access_mode="ReadWriteMany", labels={"team": "ml"})
        """
        body = _create_body(
            name,
            size_gb=size_gb,
            size_bytes=size_bytes,
            access_mode=access_mode,
            filesystem=filesystem,
            labels=dict(labels) if labels is not None else None,
            region=region,
            from_checkpoint=from_checkpoint,
            if_exists=if_exists,
        )
        return self._wrap(await self._http.json("POST", "/v1/volumes", json=body))

    async def from_name(self, name: str, *, create_if_missing: bool = False, **options: Any) -> AsyncVolume:
        """Get a volume by name, creating it (with ``options``) when ``create_if_missing``.

        Example::

            v = await cairn.volumes.from_name("team-data", create_if_missing=True)
        """
        if create_if_missing:
            return await self.create(name, if_exists="return", **options)
        return await self.get(name)

    async def get(self, ref: str) -> AsyncVolume:
        """By id or name. Example: ``v = await cairn.volumes.get("team-data")``"""
        return self._wrap(await self._http.json("GET", f"/v1/volumes/{enc(ref)}"))

    async def list(
        self,
        *,
        labels: Optional[Mapping[str, str]] = None,
        fields: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        deleted: bool = False,
    ) -> VolumeList:
        """One page of volumes, by name; ``labels`` filter (all must match), ``fields`` select.

        Example::

            page = await cairn.volumes.list(labels={"team": "ml"}, fields=["name", "sizeBytes"])
            page["items"], page["nextCursor"]
        """
        query = {
            "label": [f"{k}={v}" for k, v in (labels or {}).items()],
            "fields": ",".join(fields) if fields else None,
            "limit": limit,
            "cursor": cursor,
            "deleted": deleted,
        }
        return await self._http.json("GET", "/v1/volumes", query=query)  # type: ignore[no-any-return]

    async def iterate(
        self, *, labels: Optional[Mapping[str, str]] = None, fields: Optional[Sequence[str]] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[VolumeInfo]:
        """Every volume, page by page.

        Example::

            async for v in cairn.volumes.iterate(): print(v["name"])
        """
        cursor: Optional[str] = None
        while True:
            page = await self.list(labels=labels, fields=fields, limit=page_size, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page.get("nextCursor")
            if not cursor:
                return

    async def resize(self, ref: str, *, size_gb: Optional[int] = None, size_bytes: Optional[int] = None) -> Tuple[AsyncVolume, Optional[ResizeInfo]]:
        """Grow a volume; the second value says whether it grew ``online``, ``offline`` or ``none``.

        Example::

            volume, how = await cairn.volumes.resize("team-data", size_gb=2)
        """
        body: Dict[str, Any] = {}
        if size_gb is not None:
            body["sizeGb"] = size_gb
        if size_bytes is not None:
            body["sizeBytes"] = size_bytes
        r = await self._http.json("PATCH", f"/v1/volumes/{enc(ref)}", json=body)
        return self._wrap(r["volume"]), r["resize"]

    async def update(self, ref: str, *, labels: Mapping[str, str]) -> AsyncVolume:
        """Replace a volume's labels. Example: ``await cairn.volumes.update("team-data", labels={"team": "ml"})``"""
        r = await self._http.json("PATCH", f"/v1/volumes/{enc(ref)}", json={"labels": dict(labels)})
        return self._wrap(r["volume"])

    async def import_(
        self,
        name: str,
        data: Any,
        *,
        format: str = "image",
        size_gb: Optional[int] = None,
        size_bytes: Optional[int] = None,
        filesystem: Optional[Filesystem] = None,
        access_mode: Optional[AccessMode] = None,
    ) -> AsyncVolume:
        """Create a volume from an upload (streamed): a raw image (``format="image"``, e.g. a
        checkpoint export) or a tar of files (``format="tar"``).

        Example::

            copy = await cairn.volumes.import_("moved", open("team-data.img", "rb"), format="image")
        """
        query = {"name": name, "format": format, "sizeGb": size_gb, "sizeBytes": size_bytes, "filesystem": filesystem, "accessMode": access_mode}
        res = await self._http.request(
            "POST", "/v1/volumes/import", query=query, content=data, headers={"content-type": "application/octet-stream"}
        )
        return self._wrap(res.json())

    async def delete(self, ref: str, *, keep_checkpoints: bool = False) -> None:
        """Delete a volume and its data; with ``keep_checkpoints`` its checkpoints stay restorable.

        Example::

            await cairn.volumes.delete("team-data")
        """
        await self._http.json("DELETE", f"/v1/volumes/{enc(ref)}", query={"keepCheckpoints": keep_checkpoints})
