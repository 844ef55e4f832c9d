"""``volume.files``: everything inside a volume without a sandbox — read, write, batch-write,
stat, exists, list, mkdir, move, remove, edit, search, replace, archives, signed URLs, watch and
resumable (tus) uploads."""
from __future__ import annotations

import base64
import hashlib
import json as jsonlib
import os
from typing import Any, AsyncIterator, Callable, Dict, Iterable, List, Optional, Tuple, Union

from .. import _io_async as io
from .._errors import CairnError, InvalidArgumentError, InternalError, error_from_problem
from .._paths import normalize_volume_path
from .._sse import SseParser
from .._types import (
    ArchiveFormat,
    BatchFile,
    BatchWriteResult,
    EditResult,
    ExtractResult,
    FileEntry,
    FileList,
    ReplaceResult,
    SearchResult,
    SignedUrl,
    UploadResult,
    UploadStatus,
    WatchMessage,
    WriteFileResult,
)
from ._http import AsyncHttp, enc

TUS = {"tus-resumable": "1.0.0"}
DEFAULT_UPLOAD_CHUNK = 8 * 1024 * 1024
RETRIABLE_UPLOAD_CODES = ("UNAVAILABLE", "UPLOAD_OFFSET_MISMATCH", "CHECKSUM_MISMATCH", "INTERNAL")
ProgressCallback = Callable[[int, Optional[int]], None]
Range = Tuple[int, Optional[int]]


def _p(path: str) -> str:
    return normalize_volume_path(path)


def _write_headers(if_match: Optional[str], if_none_match: Optional[str]) -> Dict[str, str]:
    headers = {"content-type": "application/octet-stream"}
    if if_match:
        headers["if-match"] = if_match
    if if_none_match:
        headers["if-none-match"] = if_none_match
    return headers


class AsyncVolumeFiles:
    """Files of one volume, read and written directly: no sandbox needed.

    Example::

        await volume.files.write("/hello.txt", "persistent\\n")
        print(await volume.files.read("/hello.txt"))
    """

    def __init__(self, http: AsyncHttp, volume_ref: Callable[[], str]) -> None:
        self._http = http
        self._volume_ref = volume_ref

    def __repr__(self) -> str:
        return f"<AsyncVolumeFiles volume={self._volume_ref()!r}>"

    def _base(self, rest: str = "") -> str:
        return f"/v1/volumes/{enc(self._volume_ref())}/files{rest}"

    # -- whole files ------------------------------------------------------------------------

    async def write(
        self,
        path: str,
        data: Any,
        *,
        if_match: Optional[str] = None,
        if_none_match: Optional[str] = None,
    ) -> WriteFileResult:
        """Write a whole file atomically (readers see the old or the new content); missing parent
        directories are created. ``data`` is ``str`` (UTF-8), ``bytes``, a binary file object, or
        an iterable of ``bytes`` (async iterables too, in async code): streamed as it is read,
        never held whole. A stream that fails part way fails the write; the old content stays.
        ``if_match``/``if_none_match="*"`` make it a compare-and-swap (``PRECONDITION_FAILED``).

        Example::

            await volume.files.write("/data/report.csv", open("report.csv", "rb"))
        """
        res = await self._http.request(
            "PUT",
            self._base("/content"),
            query={"path": _p(path)},
            content=data,
            headers=_write_headers(if_match, if_none_match),
        )
        return res.json()  # type: ignore[no-any-return]

    async def write_from_file(self, path: str, local_path: Union[str, "os.PathLike[str]"], **options: Any) -> WriteFileResult:
        """Write a local file into the volume (streamed). Example: ``await files.write_from_file("/w.bin", "w.bin")``"""
        with open(local_path, "rb") as f:
            return await self.write(path, f, **options)

    async def _get_content(self, path: str, range: Optional[Range]) -> Any:
        headers: Dict[str, str] = {}
        if range is not None:
            start, end = range
            headers["range"] = f"bytes={start}-{'' if end is None else end}"
        return await self._http.request("GET", self._base("/content"), query={"path": _p(path)}, headers=headers, stream=True)

    async def read_stream(self, path: str, *, range: Optional[Range] = None, chunk_size: Optional[int] = None) -> AsyncIterator[bytes]:
        """A file's bytes as they arrive (or a byte range, ``end`` inclusive), never held whole.

        Example::

            async for piece in volume.files.read_stream("/big.bin", range=(0, 1023)):
                sink.write(piece)
        """
        res = await self._get_content(path, range)
        try:
            async for piece in self._http.iter_body(res, chunk_size):
                yield piece
        finally:
            await res.aclose()

    async def read_bytes(self, path: str, *, range: Optional[Range] = None) -> bytes:
        """A whole file (or a range) in memory. Example: ``data = await files.read_bytes("/logo.png")``"""
        parts = []
        async for piece in self.read_stream(path, range=range):
            parts.append(piece)
        return b"".join(parts)

    async def read(self, path: str, *, encoding: str = "utf-8") -> str:
        """A whole file as text. Example: ``print(await volume.files.read("/hello.txt"))``"""
        return (await self.read_bytes(path)).decode(encoding)

    read_text = read

    async def download(
        self,
        path: str,
        dest: Any,
        *,
        on_progress: Optional[Callable[[int], None]] = None,
    ) -> int:
        """Stream a file into ``dest``: a writable binary file object, or a local path (written to a
        temporary file beside it, synced, then renamed: never a partial file). Returns the bytes.

        Example::

            n = await volume.files.download("/big.bin", "./big.bin")
        """
        if io.is_file(dest) or hasattr(dest, "write"):
            return await self._download_into(path, dest, on_progress)
        target = os.fspath(dest)
        partial = os.path.join(os.path.dirname(target) or ".", f".{os.path.basename(target)}.cairn-partial-{os.getpid()}")
        try:
            with open(partial, "wb") as f:
                n = await self._download_into(path, f, on_progress)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, target)
            return n
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise

    async def _download_into(self, path: str, f: Any, on_progress: Optional[Callable[[int], None]]) -> int:
        n = 0
        async for piece in self.read_stream(path, chunk_size=io.CHUNK):
            f.write(piece)
            n += len(piece)
            if on_progress is not None:
                on_progress(n)
        return n

    # -- metadata and tree ------------------------------------------------------------------

    async def stat(self, path: str, *, follow: bool = False) -> FileEntry:
        """Type, size, mode, mtime, ETag (files) and target (symlinks); ``PATH_NOT_FOUND`` if absent.

        Example::

            entry = await volume.files.stat("/data/report.csv"); print(entry["size"], entry["etag"])
        """
        return await self._http.json("GET", self._base("/stat"), query={"path": _p(path), "follow": follow})  # type: ignore[no-any-return]

    async def exists(self, path: str) -> bool:
        """Whether anything is at ``path``. Example: ``if await volume.files.exists("/cache"): ...``"""
        try:
            await self.stat(path)
            return True
        except CairnError as err:
            if err.code == "PATH_NOT_FOUND":
                return False
            raise

    async def list(
        self,
        path: str = "/",
        *,
        recursive: bool = False,
        prefix: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> FileList:
        """One page of a directory listing, sorted by path (depth first when ``recursive``).

        Example::

            page = await volume.files.list("/data", recursive=True, limit=500)
            page["items"], page["nextCursor"]
        """
        query = {"path": _p(path), "recursive": recursive, "prefix": prefix, "limit": limit, "cursor": cursor}
        return await self._http.json("GET", self._base("/list"), query=query)  # type: ignore[no-any-return]

    async def iterate(
        self, path: str = "/", *, recursive: bool = False, prefix: Optional[str] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[FileEntry]:
        """Every entry below ``path``, page by page.

        Example::

            async for entry in volume.files.iterate("/", recursive=True):
                print(entry["path"])
        """
        cursor: Optional[str] = None
        while True:
            page = await self.list(path, recursive=recursive, prefix=prefix, limit=page_size, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page.get("nextCursor")
            if not cursor:
                return

    async def mkdir(self, path: str, *, mode: Optional[int] = None) -> FileEntry:
        """``mkdir -p``. Example: ``await volume.files.mkdir("/data/2026/11", mode=0o750)``"""
        body: Dict[str, Any] = {"path": _p(path)}
        if mode is not None:
            body["mode"] = mode
        return await self._http.json("POST", self._base("/mkdir"), json=body)  # type: ignore[no-any-return]

    async def move(self, src: str, dst: str, *, overwrite: bool = False) -> FileEntry:
        """Move or rename atomically; ``PATH_ALREADY_EXISTS`` if ``dst`` exists unless ``overwrite``.

        Example::

            await volume.files.move("/tmp/report.csv", "/reports/2026-11.csv")
        """
        body = {"from": _p(src), "to": _p(dst), "overwrite": overwrite}
        return await self._http.json("POST", self._base("/move"), json=body)  # type: ignore[no-any-return]

    async def remove(self, path: str, *, recursive: bool = False, if_match: Optional[str] = None) -> None:
        """Remove a file, symlink or directory (``recursive`` when not empty).

        Example::

            await volume.files.remove("/cache", recursive=True)
        """
        headers = {"if-match": if_match} if if_match else None
        await self._http.json("DELETE", self._base(), query={"path": _p(path), "recursive": recursive}, headers=headers)

    async def edit(
        self, path: str, old_string: str, new_string: str, *, replace_all: bool = False, if_match: Optional[str] = None
    ) -> EditResult:
        """Replace one exact occurrence (all with ``replace_all``); ``EDIT_NO_MATCH`` when absent,
        ``EDIT_AMBIGUOUS`` when it occurs more than once.

        Example::

            await volume.files.edit("/app/config.toml", "port = 8080", "port = 9090")
        """
        body: Dict[str, Any] = {"path": _p(path), "oldString": old_string, "newString": new_string}
        if replace_all:
            body["replaceAll"] = True
        if if_match:
            body["ifMatch"] = if_match
        return await self._http.json("POST", self._base("/edit"), json=body)  # type: ignore[no-any-return]

    async def write_many(self, files: Iterable[BatchFile]) -> BatchWriteResult:
        """Write many files in one request, all or nothing (up to 64 MiB; more: ``upload_archive``).

        Example::

            await volume.files.write_many([{"path": "/a.txt", "content": "A"},
                                           {"path": "/run.sh", "content": b"#!/bin/sh\\n", "mode": 0o755}])
        """
        out: List[Dict[str, Any]] = []
        for f in files:
            item: Dict[str, Any] = {"path": _p(f["path"])}
            content = f.get("content", "")
            if isinstance(content, str):
                item["content"] = content
            else:
                item["contentBase64"] = base64.b64encode(bytes(content)).decode()
            if "mode" in f:
                item["mode"] = f["mode"]
            if "if_match" in f:
                item["ifMatch"] = f["if_match"]
            if "if_none_match" in f:
                item["ifNoneMatch"] = f["if_none_match"]
            out.append(item)
        return await self._http.json("POST", self._base("/batch"), json={"files": out})  # type: ignore[no-any-return]

    async def search(
        self,
        *,
        path: Optional[str] = None,
        glob: Optional[str] = None,
        query: Optional[str] = None,
        regex: bool = False,
        ignore_case: bool = False,
        limit: Optional[int] = None,
    ) -> SearchResult:
        """Search names by glob, or contents by literal or regex (with line numbers).

        Example::

            r = await volume.files.search(path="/src", glob="*.py", query="TODO")
            for m in r["matches"]: print(m["path"], m["line"], m["text"])
        """
        q = {
            "path": None if path is None else _p(path),
            "glob": glob,
            "query": query,
            "regex": regex,
            "ignoreCase": ignore_case,
            "limit": limit,
        }
        return await self._http.json("GET", self._base("/search"), query=q)  # type: ignore[no-any-return]

    async def replace(
        self,
        search: str,
        replacement: str,
        *,
        path: Optional[str] = None,
        glob: Optional[str] = None,
        regex: bool = False,
        ignore_case: bool = False,
        dry_run: bool = False,
        max_files: Optional[int] = None,
    ) -> ReplaceResult:
        """Replace across files, all or nothing; ``dry_run`` shows the changes and changes nothing.

        Example::

            preview = await volume.files.replace("Cairn v1", "Cairn v2", glob="*.md", dry_run=True)
        """
        body: Dict[str, Any] = {"search": search, "replacement": replacement}
        if path is not None:
            body["path"] = _p(path)
        if glob is not None:
            body["glob"] = glob
        if regex:
            body["regex"] = True
        if ignore_case:
            body["ignoreCase"] = True
        if dry_run:
            body["dryRun"] = True
        if max_files is not None:
            body["maxFiles"] = max_files
        return await self._http.json("POST", self._base("/replace"), json=body)  # type: ignore[no-any-return]

    # -- archives and signed URLs -----------------------------------------------------------

    async def download_archive(self, path: str = "/", *, format: ArchiveFormat = "tar") -> AsyncIterator[bytes]:
        """A directory as an archive stream (``tar``, ``tar.gz`` or ``zip``).

        Example::

            with open("project.tar.gz", "wb") as out:
                async for piece in volume.files.download_archive("/project", format="tar.gz"):
                    out.write(piece)
        """
        res = await self._http.request("GET", self._base("/archive"), query={"path": _p(path), "format": format}, stream=True)
        try:
            async for piece in self._http.iter_body(res):
                yield piece
        finally:
            await res.aclose()

    async def upload_archive(self, path: str, data: Any, *, format: ArchiveFormat = "tar") -> ExtractResult:
        """Extract an archive (streamed) into a directory, created if missing, all or nothing.

        Example::

            await volume.files.upload_archive("/project", open("project.tar", "rb"))
        """
        ctype = {"zip": "application/zip", "tar.gz": "application/gzip"}.get(format, "application/x-tar")
        res = await self._http.request(
            "PUT", self._base("/archive"), query={"path": _p(path), "format": format}, content=data, headers={"content-type": ctype}
        )
        return res.json()  # type: ignore[no-any-return]

    async def sign(self, path: str, *, method: str = "GET", expires_in: Optional[int] = None) -> SignedUrl:
        """A URL that works without a key, for this path and method only, until it expires.

        Example::

            url = (await volume.files.sign("/report.pdf", expires_in=900))["url"]
        """
        body: Dict[str, Any] = {"path": _p(path), "method": method}
        if expires_in is not None:
            body["expiresIn"] = expires_in
        r = await self._http.json("POST", self._base("/sign"), json=body)
        # This client's base URL is how its caller reaches cairnd; the server only knows its Host.
        r["url"] = self._http.config.url + r["pathAndQuery"]
        return r  # type: ignore[no-any-return]

    # -- watch ------------------------------------------------------------------------------

    async def watch(self, path: str = "/", *, cursor: Optional[str] = None, reconnect: bool = True) -> AsyncIterator[WatchMessage]:
        """Change events below ``path`` (create, modify, delete, rename), for changes through the API
        and inside sandboxes. First a ``ready`` message; each message has a ``cursor``: pass it
        back as ``cursor=`` to resume after it. A dropped connection is reconnected from the last
        cursor (unless ``reconnect=False``); a ``reset`` message means events were missed.

        Example::

            async for m in volume.files.watch("/inbox"):
                if m["type"] == "create": print(m["path"])
        """
        p = _p(path)
        attempt = 0
        while True:
            headers = {"accept": "text/event-stream"}
            if cursor:
                headers["last-event-id"] = cursor
            try:
                res = await self._http.request("GET", self._base("/watch"), query={"path": p}, headers=headers, stream=True, read_timeout=60.0)
            except CairnError as err:
                if not reconnect or err.status < 500 or attempt >= 10:
                    raise
                await io.sleep(min(5.0, 0.2 * 2**attempt))
                attempt += 1
                continue
            parser = SseParser()
            try:
                async for line in self._http.iter_lines(res):
                    ev = parser.feed(line)
                    if ev is None:
                        continue
                    attempt = 0
                    if ev.id:
                        cursor = ev.id
                    if ev.event == "ready":
                        yield {"type": "ready", "cursor": ev.id or cursor or ""}
                    elif ev.event == "reset":
                        yield {"type": "reset", "cursor": ev.id or "", "reason": jsonlib.loads(ev.data).get("reason", "")}
                    elif ev.event == "error":
                        raise error_from_problem(jsonlib.loads(ev.data), 503)
                    elif ev.event == "message":
                        msg = jsonlib.loads(ev.data)
                        msg["cursor"] = ev.id or ""
                        yield msg
            except CairnError as err:
                if not reconnect or err.code != "UNAVAILABLE":
                    raise
            finally:
                await res.aclose()
            if not reconnect:
                return
            await io.sleep(min(5.0, 0.2 * 2**attempt))
            attempt += 1

    # -- resumable uploads (tus 1.0) --------------------------------------------------------

    async def upload_status(self, upload_url: str) -> UploadStatus:
        """Where an upload stands: ``offset`` bytes stored of ``length``.

        Example::

            print((await volume.files.upload_status(url))["offset"])
        """
        return await self._http.json("GET", self._http.relative(upload_url), headers=TUS)  # type: ignore[no-any-return]

    async def abort_upload(self, upload_url: str) -> None:
        """Abandon an unfinished upload and free its space. Example: ``await files.abort_upload(url)``"""
        await self._http.json("DELETE", self._http.relative(upload_url), headers=TUS)

    async def _begin_upload(
        self, target: str, size: Optional[int], upload_url: Optional[str], on_upload_url: Optional[Callable[[str], None]]
    ) -> Tuple[str, int]:
        if upload_url:
            status = await self.upload_status(upload_url)
            if size is not None and status.get("length") is not None and status["length"] != size:
                raise InvalidArgumentError(
                    "INVALID_REQUEST", f"The upload at {upload_url} is for {status['length']} bytes, this data is {size}; start a new upload"
                )
            return upload_url, int(status["offset"])
        headers = dict(TUS, **{"upload-metadata": "path " + base64.b64encode(target.encode()).decode()})
        if size is not None:
            headers["upload-length"] = str(size)
        else:
            headers["upload-defer-length"] = "1"
        res = await self._http.request("POST", f"/v1/volumes/{enc(self._volume_ref())}/uploads", headers=headers)
        location = res.headers.get("location")
        if not location:
            raise InternalError("INTERNAL", "cairnd did not return the upload's location")
        url = self._http.config.url + location if location.startswith("/") else location
        if on_upload_url is not None:
            on_upload_url(url)
        return url, 0

    async def upload(
        self,
        path: str,
        data: Any,
        *,
        chunk_size: int = DEFAULT_UPLOAD_CHUNK,
        on_progress: Optional[ProgressCallback] = None,
        upload_url: Optional[str] = None,
        on_upload_url: Optional[Callable[[str], None]] = None,
        retries: int = 5,
        length: Optional[int] = None,
    ) -> UploadResult:
        """A resumable upload (tus 1.0): sent in SHA-256-checksummed chunks, each stored durably
        before the next. Network errors are retried from the last stored byte; ``upload_url``
        (given to ``on_upload_url`` when the upload starts) resumes one interrupted in an earlier
        process. ``data``: ``bytes``/``str``, a seekable file (resumes from anywhere), or a stream
        (file object, iterable; its ``length`` may be unknown). One chunk is in memory at a time.

        Example::

            r = await volume.files.upload("/data/big.bin", open("big.bin", "rb"),
                                          on_upload_url=save_for_later,
                                          on_progress=lambda done, total: print(done, total))
        """
        target = _p(path)
        source = _Source(data, length)
        url, offset = await self._begin_upload(target, source.size, upload_url, on_upload_url)
        rel = self._http.relative(url)
        if on_progress is not None:
            on_progress(offset, source.size)
        while source.size is None or offset < source.size:
            start, chunk, last = await source.read(offset, chunk_size)
            sent = False
            attempt = 0
            while not sent:
                body = chunk[offset - start:]
                headers = dict(TUS)
                headers["content-type"] = "application/offset+octet-stream"
                headers["content-length"] = str(len(body))
                headers["upload-offset"] = str(offset)
                headers["upload-checksum"] = "sha256 " + base64.b64encode(hashlib.sha256(body).digest()).decode()
                if last and source.size is None:
                    headers["upload-length"] = str(offset + len(body))
                try:
                    res = await self._http.request("PATCH", rel, content=_slices(body), headers=headers)
                    offset = int(res.headers.get("upload-offset", offset + len(body)))
                    sent = True
                except CairnError as err:
                    if err.code not in RETRIABLE_UPLOAD_CODES or attempt >= retries:
                        raise
                    await io.sleep(min(10.0, 0.25 * 2**attempt))
                    attempt += 1
                    try:
                        status = await self.upload_status(url)
                    except CairnError:
                        continue
                    server = int(status["offset"])
                    outside = server < start or server > start + len(chunk)
                    if outside and not source.random_access:
                        raise InvalidArgumentError(
                            "INVALID_REQUEST",
                            f"The server has {server} bytes, outside the chunk in hand ({start}-{start + len(chunk)}); "
                            "a stream cannot be rewound. Upload again.",
                        ) from err
                    offset = server
                    if outside or offset >= start + len(chunk):
                        sent = True
            if on_progress is not None:
                on_progress(offset, source.size)
            if last and offset >= start + len(chunk):
                break
        return UploadResult(path=target, size=offset, upload_url=url)

    async def upload_from_file(self, path: str, local_path: Union[str, "os.PathLike[str]"], **options: Any) -> UploadResult:
        """``upload`` of a local file (seekable: a retry resumes from wherever the server is).

        Example::

            r = await volume.files.upload_from_file("/data/big.bin", "big.bin", on_progress=print)
        """
        with open(local_path, "rb") as f:
            return await self.upload(path, f, **options)


class _Source:
    """An upload's data, read one chunk at a time into one reused buffer (so memory stays at one
    chunk however big the upload). Bytes and seekable files can be read again from any offset;
    other streams only move forward (the chunk in hand can be resent)."""

    def __init__(self, data: Any, length: Optional[int]) -> None:
        self._bytes: Optional[memoryview] = None
        self._file: Any = None
        self._it: Any = None
        self._buf = bytearray()
        self._carry = b""
        self._ended = False
        self._position = 0
        self._current: Optional[Tuple[int, memoryview, bool]] = None
        if isinstance(data, str):
            data = data.encode()
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._bytes = memoryview(data).cast("B")
            self.size: Optional[int] = len(self._bytes)
            self.random_access = True
        elif io.is_file(data) and _seekable(data):
            self._file = data
            self._origin = data.tell()
            self.size = _size_by_seek(data)
            self.random_access = True
        else:
            self._it = io.iterate(data)
            self.size = length
            self.random_access = False

    def _buffer(self, limit: int) -> memoryview:
        if len(self._buf) != limit:
            self._buf = bytearray(limit)
        return memoryview(self._buf)

    async def read(self, offset: int, limit: int) -> Tuple[int, memoryview, bool]:
        """The chunk starting at ``offset``: (start, bytes, whether it is the last). The bytes are
        valid until the next call."""
        if self._bytes is not None:
            return offset, self._bytes[offset:offset + limit], offset + limit >= len(self._bytes)
        if self._file is not None:
            buf = self._buffer(limit)
            self._file.seek(self._origin + offset)
            n = 0
            while n < limit:
                piece = await io.read_file(self._file, limit - n)
                if not piece:
                    break
                buf[n:n + len(piece)] = piece
                n += len(piece)
            assert self.size is not None
            return offset, buf[:n], offset + n >= self.size
        cur = self._current
        if cur is not None and cur[0] <= offset < cur[0] + len(cur[1]):
            return cur
        # Resuming with a fresh stream of the same data: skip what the server already has.
        while self._position < offset:
            piece = await self._next()
            if piece is None:
                raise InvalidArgumentError("INVALID_REQUEST", f"The data ends at {self._position} bytes, before the upload's offset {offset}")
            take = min(len(piece), offset - self._position)
            if take < len(piece):
                self._carry = piece[take:]
            self._position += take
        buf = self._buffer(limit)
        n = 0
        while n < limit:
            piece = await self._next()
            if piece is None:
                break
            if n + len(piece) > limit:
                self._carry = piece[limit - n:]
                piece = piece[: limit - n]
            buf[n:n + len(piece)] = piece
            n += len(piece)
        if not self._carry and not self._ended:  # peek: is anything left after this chunk?
            nxt = await self._next()
            if nxt is not None:
                self._carry = nxt
        self._current = (self._position, buf[:n], self._ended and not self._carry)
        self._position += n
        return self._current

    async def _next(self) -> Optional[bytes]:
        if self._carry:
            piece, self._carry = self._carry, b""
            return piece
        if self._ended:
            return None
        piece = await io.next_piece(self._it)
        if piece is None:
            self._ended = True
        return piece


def _slices(view: memoryview) -> Iterable[bytes]:
    """A chunk as 1 MiB pieces: sent with its Content-Length, without another copy of all of it."""
    for at in range(0, len(view), io.CHUNK):
        yield bytes(view[at:at + io.CHUNK])


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable()) if hasattr(f, "seekable") else False
    except (OSError, ValueError):
        return False


def _size_by_seek(f: Any) -> int:
    here = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(here)
    return int(end - here)
