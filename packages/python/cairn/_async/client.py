"""The client: ``AsyncCairn`` (and, generated from it, ``Cairn``)."""
from __future__ import annotations

import weakref
from typing import Any, Optional

import httpx

from .. import _io_async as io
from .._config import ClientConfig, resolve_config
from .._types import Health
from ._http import AsyncHttp
from .deployments import AsyncDeployments
from .projects import AsyncProjects
from .sandboxes import AsyncSandboxes
from .volumes import AsyncVolumes

_defaults: "weakref.WeakKeyDictionary[Any, AsyncCairn]" = weakref.WeakKeyDictionary()


class AsyncCairn:
    """The Cairn client. Settings fall back to ``CAIRN_URL``, ``CAIRN_API_KEY`` and
    ``CAIRN_PROJECT``; ``repr()`` shows the URL and project, never the key. Close it (or use it as
    a context manager) to free its connections.

    Example::

        async with AsyncCairn(url="http://127.0.0.1:7070") as cairn:
            volume = await cairn.volumes.create("team-data")
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        project: Optional[str] = None,
        timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self.config: ClientConfig = resolve_config(url, api_key, project, timeout, max_retries)
        self._http = AsyncHttp(self.config, transport)
        self.volumes = AsyncVolumes(self._http)
        self.sandboxes = AsyncSandboxes(self._http)
        self.deployments = AsyncDeployments(self._http)
        self.projects = AsyncProjects(self._http)
        """Projects and API keys (admin key only)."""

    def __repr__(self) -> str:
        return f"AsyncCairn(url={self.config.url!r}, project={self.config.project!r})"

    async def __aenter__(self) -> "AsyncCairn":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections. Example: ``await cairn.aclose()``"""
        await self._http.aclose()

    @classmethod
    def default(cls) -> "AsyncCairn":
        """A client from the environment, shared by helpers such as ``Volume.from_name``."""
        key = io.loop_key()
        client = _defaults.get(key)
        if client is None:
            client = _defaults[key] = cls()
        return client

    async def health(self) -> Health:
        """Example: ``print((await cairn.health())["version"])``"""
        return await self._http.json("GET", "/healthz")  # type: ignore[no-any-return]
