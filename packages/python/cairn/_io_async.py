"""The few calls that differ between async and sync I/O; ``_io_sync`` has the blocking twins
under the same names, so tools/gen_sync.py only has to swap the module."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Optional, Union

from ._io_sync import CHUNK, _to_bytes, is_file

Body = Union[bytes, AsyncIterator[bytes]]

__all__ = ["CHUNK", "Body", "sleep", "loop_key", "is_file", "read_file", "iterate", "next_piece", "body_of", "close_iterator"]


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def loop_key() -> object:
    """An httpx.AsyncClient belongs to the loop it was first used on: share defaults per loop."""
    return asyncio.get_running_loop()


async def read_file(f: Any, n: int) -> bytes:
    """Read from a (blocking) file object in a worker thread, so the event loop keeps running."""
    return _to_bytes(await asyncio.to_thread(f.read, n) or b"")


def iterate(data: Any) -> AsyncIterator[bytes]:
    """The pieces of a file object, an async iterable or a plain iterable, as they come."""
    if is_file(data):
        return _file_pieces(data)
    if hasattr(data, "__aiter__"):
        return _async_pieces(data)
    return _sync_pieces(data)


async def _file_pieces(f: Any) -> AsyncIterator[bytes]:
    while True:
        piece = await read_file(f, CHUNK)
        if not piece:
            return
        yield piece


async def _async_pieces(data: Any) -> AsyncIterator[bytes]:
    async for piece in data:
        if piece:
            yield _to_bytes(piece)


async def _sync_pieces(data: Any) -> AsyncIterator[bytes]:
    for piece in data:
        if piece:
            yield _to_bytes(piece)


async def next_piece(it: AsyncIterator[bytes]) -> Optional[bytes]:
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return None


def body_of(data: Any) -> Body:
    """What httpx sends: ``bytes`` as they are, anything else streamed piece by piece."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return iterate(data)


async def close_iterator(it: Any) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()
