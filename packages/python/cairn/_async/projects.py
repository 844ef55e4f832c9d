"""Projects and API keys (``cairn.projects``): admin key only."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .._types import ApiKey, ApiKeyInfo, CreateProjectResult, Project
from ._http import AsyncHttp, enc


class AsyncProjects:
    """A project's key sees that project alone; a new key's secret is shown once.

    Example::

        created = await cairn.projects.create("shop")      # created["apiKey"]["key"]: store it now
        key = await cairn.projects.create_key("shop", name="ci")
        await cairn.projects.revoke_key("shop", key["id"])
    """

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    def __repr__(self) -> str:
        return "<AsyncProjects>"

    async def create(self, name: str) -> CreateProjectResult:
        """A project and its first key."""
        return await self._http.json("POST", "/v1/projects", json={"name": name})  # type: ignore[no-any-return]

    async def list(self) -> List[Project]:
        """Every project, by name."""
        return (await self._http.json("GET", "/v1/projects"))["items"]  # type: ignore[no-any-return]

    async def create_key(self, project: str, *, name: Optional[str] = None) -> ApiKey:
        """Another key for a project."""
        body: Dict[str, Any] = {} if name is None else {"name": name}
        return await self._http.json("POST", f"/v1/projects/{enc(project)}/keys", json=body)  # type: ignore[no-any-return]

    async def list_keys(self, project: str) -> List[ApiKeyInfo]:
        """A project's keys, without their secrets."""
        return (await self._http.json("GET", f"/v1/projects/{enc(project)}/keys"))["items"]  # type: ignore[no-any-return]

    async def revoke_key(self, project: str, key_id: str) -> None:
        """Revoke a key: requests with it are ``UNAUTHORIZED`` from now on."""
        await self._http.json("DELETE", f"/v1/projects/{enc(project)}/keys/{enc(key_id)}")
