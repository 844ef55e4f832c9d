"""Sandboxes (``cairn.sandboxes``, ``Sandbox``): create with volumes, exec, files, attach and
detach, hibernate/resume/fork, kill."""
from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Sequence, Union, overload

from .._types import Attachment, ExecEvent, ExecResult, ExposedPort, MountRequest, ProcessInfo, SandboxInfo, SandboxState
from ._http import NO_READ_TIMEOUT, AsyncHttp, enc

if TYPE_CHECKING:
    from typing import Literal

    from .client import AsyncCairn

Volumes = Union[Sequence[MountRequest], Mapping[str, str]]


class AsyncSandboxProcess:
    """A command started with ``exec(..., background=True)``: it runs on while you do other things.

    Example::

        server = await sandbox.exec("python3 -m http.server", background=True)
        print((await server.output())["stdout"])
        done = await server.wait()   # {"state": "exited", "exitCode": ..., "stdout": ..., "stderr": ...}
    """

    def __init__(self, sandbox: "AsyncSandbox", info: ProcessInfo) -> None:
        self._sandbox = sandbox
        self.info = info

    def __repr__(self) -> str:
        return f"<AsyncSandboxProcess {self.info.get('id')!r} state={self.info.get('state')!r}>"

    @property
    def id(self) -> str:
        return self.info["id"]

    async def output(self) -> ProcessInfo:
        """Its state and output so far. Example: ``(await p.output())["stdout"]``"""
        self.info = await self._sandbox.process(self.id, logs=True)
        return self.info

    async def wait(self) -> ProcessInfo:
        """Wait until it exits: its exit code and output. Example: ``(await p.wait())["exitCode"]``"""
        self.info = await self._sandbox.process(self.id, wait=True, logs=True)
        return self.info


class AsyncSandboxFiles:
    """Files anywhere in a sandbox's filesystem (its volumes included), as the sandbox sees them.

    Example::

        await sandbox.files.write("/tmp/x.txt", "hi")
        print(await sandbox.files.read("/tmp/x.txt"))
    """

    def __init__(self, sandbox: "AsyncSandbox") -> None:
        self._sandbox = sandbox

    def __repr__(self) -> str:
        return f"<AsyncSandboxFiles sandbox={self._sandbox.id!r}>"

    def _base(self) -> str:
        return f"/v1/sandboxes/{enc(self._sandbox.id)}/files/content"

    async def write(self, path: str, data: Any) -> None:
        """Write ``str``, ``bytes``, a file object or an iterable of bytes (streamed)."""
        await self._sandbox._http.request(
            "PUT", self._base(), query={"path": self._sandbox._resolve(path)}, content=data, headers={"content-type": "application/octet-stream"}
        )

    async def read_stream(self, path: str) -> AsyncIterator[bytes]:
        """A file's bytes as they arrive."""
        http = self._sandbox._http
        res = await http.request("GET", self._base(), query={"path": self._sandbox._resolve(path)}, stream=True)
        try:
            async for piece in http.iter_body(res):
                yield piece
        finally:
            await res.aclose()

    async def read_bytes(self, path: str) -> bytes:
        """A whole file in memory."""
        parts = []
        async for piece in self.read_stream(path):
            parts.append(piece)
        return b"".join(parts)

    async def read(self, path: str, *, encoding: str = "utf-8") -> str:
        """A whole file as text. Example: ``(await sandbox.files.read("/etc/hostname")).strip()``"""
        return (await self.read_bytes(path)).decode(encoding)

    read_text = read


def _exec_body(command: str, cwd: Optional[str], env: Optional[Mapping[str, str]], timeout_ms: Optional[int]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"command": command}
    if cwd:
        body["cwd"] = cwd
    if env:
        body["env"] = dict(env)
    if timeout_ms:
        body["timeoutMs"] = timeout_ms
    return body


class AsyncSandbox:
    """A sandbox: a Linux container with volumes mounted. Use it as a context manager (killed on
    exit) or call ``kill()``.

    Example::

        async with await AsyncSandbox.create(volumes={"/workspace": "my_project"}) as sandbox:
            r = await sandbox.exec("ls /workspace")
    """

    def __init__(self, http: AsyncHttp, info: SandboxInfo) -> None:
        self._http = http
        self.info: SandboxInfo = info
        self._cwd: Optional[str] = None
        self.files = AsyncSandboxFiles(self)

    def __repr__(self) -> str:
        return f"<AsyncSandbox {self.info.get('id')!r} state={self.info.get('state')!r}>"

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.info.get("state") != "stopped":
            await self.kill()

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def state(self) -> SandboxState:
        return self.info["state"]

    @classmethod
    async def create(cls, *, client: Optional["AsyncCairn"] = None, **options: Any) -> "AsyncSandbox":
        """Create a sandbox with the client from the environment (or ``client``); the options are
        those of ``cairn.sandboxes.create``.

        Example::

            sandbox = await AsyncSandbox.create(volumes=[volume.mount("/workspace/shared")])
        """
        from .client import AsyncCairn

        return await (client or AsyncCairn.default()).sandboxes.create(**options)

    def _resolve(self, path: str) -> str:
        if path.startswith("/") or self._cwd is None:
            return path
        return self._cwd.rstrip("/") + "/" + path

    def cwd(self, path: str) -> "AsyncSandbox":
        """Working directory for later ``exec`` calls and relative file paths. Example: ``sandbox.cwd("/workspace")``"""
        self._cwd = path
        return self

    async def exec_stream(
        self, command: str, *, cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None, timeout_ms: Optional[int] = None
    ) -> AsyncIterator[ExecEvent]:
        """Run a shell command and yield its output as it comes: ``{"type": "stdout"|"stderr",
        "data": ...}`` events, the last ``{"type": "exit", "exitCode": n}``.

        Example::

            async for ev in sandbox.exec_stream("for i in 1 2 3; do echo $i; sleep 1; done"):
                print(ev)
        """
        body = _exec_body(command, cwd or self._cwd, env, timeout_ms)
        res = await self._http.request("POST", f"/v1/sandboxes/{enc(self.id)}/exec", json=body, stream=True, read_timeout=NO_READ_TIMEOUT)
        try:
            async for line in self._http.iter_lines(res):
                if line.strip():
                    yield jsonlib.loads(line)
        finally:
            await res.aclose()

    @overload
    async def exec(
        self,
        command: str,
        *,
        background: "Literal[True]",
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout_ms: Optional[int] = None,
    ) -> "AsyncSandboxProcess": ...

    @overload
    async def exec(
        self,
        command: str,
        *,
        background: "Literal[False]" = False,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout_ms: Optional[int] = None,
        on_stdout: Optional[Callable[[str], None]] = None,
        on_stderr: Optional[Callable[[str], None]] = None,
    ) -> ExecResult: ...

    async def exec(
        self,
        command: str,
        *,
        background: bool = False,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout_ms: Optional[int] = None,
        on_stdout: Optional[Callable[[str], None]] = None,
        on_stderr: Optional[Callable[[str], None]] = None,
    ) -> Union[ExecResult, "AsyncSandboxProcess"]:
        """Run a shell command (``/bin/sh -c``). Output streams to ``on_stdout``/``on_stderr`` as it
        comes and is returned whole with the exit code. With ``background=True`` it returns at once
        with an ``AsyncSandboxProcess`` to poll or wait for.

        Example::

            r = await sandbox.exec("echo $((1+1))")
            assert r.stdout == "2\\n" and r.exit_code == 0
        """
        if background:
            return AsyncSandboxProcess(self, await self.exec_background(command, cwd=cwd, env=env, timeout_ms=timeout_ms))
        result = ExecResult()
        out: List[str] = []
        err: List[str] = []
        async for ev in self.exec_stream(command, cwd=cwd, env=env, timeout_ms=timeout_ms):
            if ev["type"] == "stdout":
                out.append(ev["data"])
                if on_stdout is not None:
                    on_stdout(ev["data"])
            elif ev["type"] == "stderr":
                err.append(ev["data"])
                if on_stderr is not None:
                    on_stderr(ev["data"])
            elif ev["type"] == "exit":
                result.exit_code = ev["exitCode"]
        result.stdout = "".join(out)
        result.stderr = "".join(err)
        return result

    async def exec_background(
        self, command: str, *, cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None, timeout_ms: Optional[int] = None
    ) -> ProcessInfo:
        """Start a command in the background: its process record (poll it with ``process``)."""
        body = _exec_body(command, cwd or self._cwd, env, timeout_ms)
        body["background"] = True
        return await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/exec", json=body)  # type: ignore[no-any-return]

    async def process(self, process_id: str, *, wait: bool = False, logs: bool = False) -> ProcessInfo:
        """A background process; ``wait`` blocks until it exits, ``logs`` includes its output."""
        query = {"wait": wait, "logs": logs}
        read_timeout = NO_READ_TIMEOUT if wait else None
        return await self._http.json(  # type: ignore[no-any-return]
            "GET", f"/v1/sandboxes/{enc(self.id)}/processes/{enc(process_id)}", query=query, read_timeout=read_timeout
        )

    async def attach(self, mount: MountRequest) -> Attachment:
        """Hot-plug a volume. Example: ``await sandbox.attach(cache.mount("/cache"))``"""
        return await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/attachments", json=dict(mount))  # type: ignore[no-any-return]

    async def detach(self, mount_path: str, *, force: bool = False) -> Attachment:
        """Unmount by mount path; ``VOLUME_BUSY`` while in use unless ``force`` (kills its users).

        Example::

            await sandbox.detach("/cache")
        """
        body: Dict[str, Any] = {"mountPath": mount_path}
        if force:
            body["force"] = True
        return await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/detach", json=body)  # type: ignore[no-any-return]

    async def attachments(self) -> List[Attachment]:
        """The attachment records and their states."""
        return (await self._http.json("GET", f"/v1/sandboxes/{enc(self.id)}/attachments"))["items"]  # type: ignore[no-any-return]

    async def get_url(self, port: int, *, public: Optional[bool] = None) -> str:
        """A URL that reaches ``port`` inside the sandbox, routed by cairnd
        (``http://<port>-<sandbox>.<domain>:<port>/``): HTTP, streaming, websockets. Private unless
        ``public``: the URL carries the port's token; without it (or an API key of the project) the
        router answers 401. Asking again gives the same URL.

        Example::

            await sandbox.exec("python3 -m http.server 8000", background=True)
            url = await sandbox.get_url(8000)
        """
        return (await self.expose(port, public=public))["url"]

    async def expose(self, port: int, *, public: Optional[bool] = None) -> ExposedPort:
        """Route a port (see ``get_url``); the answer has its URL and token.
        Example: ``p = await sandbox.expose(3000, public=True)``"""
        body: Dict[str, Any] = {"port": port}
        if public is not None:
            body["public"] = public
        return await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/ports", json=body)  # type: ignore[no-any-return]

    async def ports(self) -> List[ExposedPort]:
        """The routed ports with their URLs. Example: ``for p in await sandbox.ports(): print(p["url"])``"""
        return (await self._http.json("GET", f"/v1/sandboxes/{enc(self.id)}/ports"))["items"]  # type: ignore[no-any-return]

    async def unexpose(self, port: int) -> ExposedPort:
        """Stop routing a port: its URL stops working at once (``PORT_NOT_FOUND`` if it was not routed).
        Example: ``await sandbox.unexpose(3000)``"""
        return await self._http.json("DELETE", f"/v1/sandboxes/{enc(self.id)}/ports/{int(port)}")  # type: ignore[no-any-return]

    async def hibernate(self) -> "AsyncSandbox":
        """Stop its processes, keep its filesystem, release its volumes. Example: ``await sandbox.hibernate()``"""
        self.info = await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/hibernate")
        return self

    async def resume(self) -> "AsyncSandbox":
        """Start it again and remount its volumes. Example: ``await sandbox.resume()``"""
        self.info = await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/resume")
        return self

    async def fork(self, *, keep_volumes: bool = False) -> "AsyncSandbox":
        """A new sandbox with the same filesystem state (ReadWriteOnce volumes are forked with it,
        deleted with the fork unless ``keep_volumes``). Example: ``copy = await sandbox.fork()``"""
        body = {"keepVolumes": True} if keep_volumes else {}
        return AsyncSandbox(self._http, await self._http.json("POST", f"/v1/sandboxes/{enc(self.id)}/fork", json=body))

    async def refresh(self) -> "AsyncSandbox":
        """Fetch its state again. Example: ``print((await sandbox.refresh()).state)``"""
        self.info = await self._http.json("GET", f"/v1/sandboxes/{enc(self.id)}")
        return self

    async def kill(self) -> None:
        """Kill it; its volumes are released for the next sandbox. Example: ``await sandbox.kill()``"""
        self.info = await self._http.json("DELETE", f"/v1/sandboxes/{enc(self.id)}")


_CREATE_KEYS = {
    "template": "template",
    "image": "image",
    "region": "region",
    "volumes": "volumes",
    "env": "env",
    "cwd": "cwd",
    "memory_mb": "memoryMb",
    "pids": "pids",
    "cpus": "cpus",
    "disk_gb": "diskGb",
    "timeout_ms": "timeoutMs",
    "network": "network",
}


class AsyncSandboxes:
    """Sandbox management: ``cairn.sandboxes``."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    def __repr__(self) -> str:
        return "<AsyncSandboxes>"

    async def create(
        self,
        *,
        template: Optional[str] = None,
        image: Optional[str] = None,
        region: Optional[str] = None,
        volumes: Optional[Volumes] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        memory_mb: Optional[int] = None,
        pids: Optional[int] = None,
        cpus: Optional[float] = None,
        disk_gb: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        network: Optional[Union[str, Mapping[str, Any]]] = None,
    ) -> AsyncSandbox:
        """Create and start a sandbox. ``volumes`` is a list of mounts (``volume.mount(...)``) or a
        ``{"/workspace": "name"}`` map (missing volumes are created). ``network``: ``"none"``
        (loopback only), ``"egress"`` (the internet through the host, with DNS), or
        ``{"egress": True, "allow": ["10.0.0.5/32:5432"], "deny": [...]}``; the host, link-local
        metadata and other sandboxes are never reachable. Default: the server's CAIRN_SANDBOX_NETWORK.

        Example::

            sb = await cairn.sandboxes.create(image="base", volumes={"/workspace": "my_project"})
        """
        options = dict(template=template, image=image, region=region, env=env, cwd=cwd, memory_mb=memory_mb, pids=pids, cpus=cpus, disk_gb=disk_gb, timeout_ms=timeout_ms, network=network)
        body: Dict[str, Any] = {_CREATE_KEYS[k]: (dict(v) if isinstance(v, Mapping) else v) for k, v in options.items() if v is not None}
        if volumes is not None:
            body["volumes"] = dict(volumes) if isinstance(volumes, Mapping) else [dict(m) for m in volumes]
        return AsyncSandbox(self._http, await self._http.json("POST", "/v1/sandboxes", json=body))

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        """Example: ``sb = await cairn.sandboxes.get("sbx_...")``"""
        return AsyncSandbox(self._http, await self._http.json("GET", f"/v1/sandboxes/{enc(sandbox_id)}"))

    async def list(self, *, state: Optional[SandboxState] = None) -> List[SandboxInfo]:
        """Sandboxes, newest first; ``state`` filters. Example: ``await cairn.sandboxes.list(state="running")``"""
        return (await self._http.json("GET", "/v1/sandboxes", query={"state": state}))["items"]  # type: ignore[no-any-return]
