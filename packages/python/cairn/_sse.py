"""Server-Sent Events, one line at a time (no I/O: both clients feed it lines)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class SseEvent:
    event: str
    id: Optional[str]
    data: str


class SseParser:
    """Feed it lines without their end; it returns an event at each blank line that ends one."""

    def __init__(self) -> None:
        self._event = "message"
        self._id: Optional[str] = None
        self._data: List[str] = []

    def feed(self, line: str) -> Optional[SseEvent]:
        line = line.rstrip("\r\n")
        if line == "":
            out = SseEvent(self._event, self._id, "\n".join(self._data)) if self._data else None
            self._event, self._data = "message", []
            return out
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None
