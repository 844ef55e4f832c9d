"""Deployments (``cairn.deployments``): an app with a persistent filesystem that survives redeploys."""
from __future__ import annotations

from typing import Any, List, Optional

from .._types import Deployment, DeploymentLogs
from ._http import AsyncHttp


class AsyncDeployments:
    """Example::

        d = await cairn.deployments.deploy("shop", open("app.tar.gz", "rb"))
        print(d["url"])
    """

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    def __repr__(self) -> str:
        return "<AsyncDeployments>"

    async def deploy(self, app: str, data: Any, *, env: Optional[str] = None, cmd: Optional[str] = None, format: str = "tar.gz") -> Deployment:
        """Deploy a tar.gz (or ``format="tar"``) of the app's directory, streamed. Returns when the
        new version serves; ``DeployFailedError`` (the old version keeps serving) when it does not.

        Example::

            await cairn.deployments.deploy("shop", tar_gz_bytes, env="beta", cmd="python3 main.py")
        """
        query = {"app": app, "env": env, "cmd": cmd, "format": format}
        ctype = "application/x-tar" if format == "tar" else "application/gzip"
        res = await self._http.request("POST", "/v1/deployments", query=query, content=data, headers={"content-type": ctype})
        return res.json()  # type: ignore[no-any-return]

    async def list(self, *, app: Optional[str] = None, env: Optional[str] = None) -> List[Deployment]:
        """Newest first. Example: ``await cairn.deployments.list(app="shop")``"""
        return (await self._http.json("GET", "/v1/deployments", query={"app": app, "env": env}))["items"]  # type: ignore[no-any-return]

    async def logs(self, app: str, *, env: Optional[str] = None) -> DeploymentLogs:
        """The latest version's output. Example: ``(await cairn.deployments.logs("shop"))["stdout"]``"""
        return await self._http.json("GET", "/v1/deployments/logs", query={"app": app, "env": env})  # type: ignore[no-any-return]

    async def remove(self, app: str, *, env: Optional[str] = None, delete_filesystem: bool = False) -> int:
        """Stop an app (its filesystem stays unless ``delete_filesystem``); how many versions went.

        Example::

            await cairn.deployments.remove("shop")
        """
        query = {"app": app, "env": env, "deleteFilesystem": delete_filesystem}
        return int((await self._http.json("DELETE", "/v1/deployments", query=query))["deployments"])
