"""Volume-relative POSIX paths, normalised as cairnd does (packages/protocol/src/paths.ts)."""
from __future__ import annotations

from ._errors import InvalidArgumentError

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def normalize_volume_path(path: str) -> str:
    """``"a//b/./c/../d"`` -> ``"/a/b/d"``. Raises ``INVALID_PATH`` for NUL, escapes above the root
    and over-long names, before any request is made.

    Example::

        assert normalize_volume_path("data/../x.txt") == "/x.txt"
    """
    if not isinstance(path, str) or path == "":
        raise InvalidArgumentError("INVALID_PATH", "Path is empty; give a path inside the volume such as /hello.txt")
    if "\0" in path:
        raise InvalidArgumentError("INVALID_PATH", "Path contains a NUL byte")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise InvalidArgumentError("INVALID_PATH", f"Path is longer than {MAX_PATH_BYTES} bytes")
    out: list = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                raise InvalidArgumentError("INVALID_PATH", f"Path {path!r} escapes the volume root")
            out.pop()
            continue
        if len(part.encode()) > MAX_NAME_BYTES:
            raise InvalidArgumentError("INVALID_PATH", f"A name in the path is longer than {MAX_NAME_BYTES} bytes")
        out.append(part)
    return "/" + "/".join(out)
