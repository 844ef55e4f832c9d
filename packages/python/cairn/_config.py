"""Client configuration: an argument, else the environment, else the default; resolved once."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

DEFAULT_URL = "http://127.0.0.1:7070"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class ClientConfig:
    """Resolved settings of a client. ``api_key`` never shows in ``repr()``.

    - ``url``: ``CAIRN_URL``, default ``http://127.0.0.1:7070``
    - ``api_key``: ``CAIRN_API_KEY``
    - ``project``: ``CAIRN_PROJECT`` (an admin key acting on a project)
    - ``timeout``: seconds to connect, and between bytes of an answer (default 60); long calls
      (exec, waiting for a process, watch, transfers) wait as long as data keeps coming
    - ``max_retries``: retries of idempotent requests after network errors and 503 (default 2)
    """

    url: str = DEFAULT_URL
    api_key: Optional[str] = field(default=None, repr=False, compare=False)
    project: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name)
    return value if value else None


def resolve_config(
    url: Optional[str] = None,
    api_key: Optional[str] = None,
    project: Optional[str] = None,
    timeout: Optional[float] = None,
    max_retries: Optional[int] = None,
) -> ClientConfig:
    return ClientConfig(
        url=(url or _env("CAIRN_URL") or DEFAULT_URL).rstrip("/"),
        api_key=api_key if api_key is not None else _env("CAIRN_API_KEY"),
        project=project if project is not None else _env("CAIRN_PROJECT"),
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
    )
