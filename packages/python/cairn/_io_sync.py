"""Blocking twins of ``_io_async``: the generated sync code calls these under the same names."""
from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Optional, Union

CHUNK = 1024 * 1024

Body = Union[bytes, Iterator[bytes]]


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def loop_key() -> object:
    """Clients made by ``default()`` are shared per event loop in async code; here, by everyone."""
    return _ONE


class _Everyone:
    """A weakly referable key (the defaults table is a WeakKeyDictionary keyed by event loop)."""


_ONE = _Everyone()


def _to_bytes(piece: Any) -> bytes:
    if isinstance(piece, str):
        return piece.encode()
    return bytes(piece)


def is_file(data: Any) -> bool:
    return hasattr(data, "read") and not isinstance(data, (str, bytes, bytearray, memoryview))


def read_file(f: Any, n: int) -> bytes:
    return _to_bytes(f.read(n) or b"")


def iterate(data: Any) -> Iterator[bytes]:
    """The pieces of a file object or an iterable of ``bytes``/``str``, as they come."""
    if is_file(data):
        return _file_pieces(data)
    if hasattr(data, "__aiter__") and not hasattr(data, "__iter__"):
        raise TypeError("An async iterable needs the async client (AsyncCairn)")
    return (_to_bytes(p) for p in data if p)


def _file_pieces(f: Any) -> Iterator[bytes]:
    while True:
        piece = read_file(f, CHUNK)
        if not piece:
            return
        yield piece


def next_piece(it: Iterator[bytes]) -> Optional[bytes]:
    return next(it, None)


def body_of(data: Any) -> Body:
    """What httpx sends: ``bytes`` as they are, anything else streamed piece by piece."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return iterate(data)


def close_iterator(it: Iterable[bytes]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()
