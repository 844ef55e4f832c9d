"""The SDK against cairnd's OpenAPI document (GET /openapi.json of the running server):

- every public SDK method is driven here (sync and async) through a recording fake transport, and
  every (method, path) it sends must be an operation of the document — the one it is listed for;
- every operation of the document has a Python method, or is in DELIBERATELY_ABSENT with a reason;
- every request the rest of the suite sent to the real cairnd is an operation of the document, and
  every problem code cairnd answered it with is one the operation declares;
- the generated sync client is what tools/gen_sync.py makes from the async one (no drift).
"""
from __future__ import annotations

import asyncio
import inspect
import io
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import httpx
import pytest

import cairn

from conftest import HERE, Cairnd, RecordingTransport

DELIBERATELY_ABSENT: Dict[str, str] = {
    "openapi": "The API's own description; tools fetch it as a document (this test does), it is not an SDK call.",
    "readSignedFile": "A signed URL is for clients without a key (curl, a browser): files.sign() makes one; keyed code reads with files.read().",
    "writeSignedFile": "As readSignedFile: the URL from files.sign(method='PUT') is used by keyless clients; keyed code writes with files.write().",
    # Images: not in the Python SDK yet. A sandbox runs one all the same: sandboxes.create(image="node:20") pulls it.
    "pullImage": "Not in the Python SDK yet: sandboxes.create(image=...) pulls what it names; the TS SDK and `cairn image pull` pull ahead.",
    "importImage": "Not in the Python SDK yet: `cairn image import` or the TS SDK's images.import().",
    "listImages": "Not in the Python SDK yet: `cairn image list` or the TS SDK's images.list().",
    "getImage": "Not in the Python SDK yet: a sandbox's info['image'] names its image and digest.",
    "removeImage": "Not in the Python SDK yet: `cairn image rm` or the TS SDK's images.remove().",
}

# Methods that send nothing: they build values or manage the client itself.
LOCAL_ONLY = {"Volume.mount", "Sandbox.cwd", "Cairn.default", "Cairn.close"}

V = "vol_1"
S = "sbx_1"
Call = Callable[[Any, Any, Any], Any]

# (operationId, "Class.method", call(client, volume, sandbox)). Every public method appears.
CALLS: List[Tuple[str, str, Call]] = [
    ("health", "Cairn.health", lambda c, v, s: c.health()),
    ("createProject", "Projects.create", lambda c, v, s: c.projects.create("shop")),
    ("listProjects", "Projects.list", lambda c, v, s: c.projects.list()),
    ("createApiKey", "Projects.create_key", lambda c, v, s: c.projects.create_key("shop", name="ci")),
    ("listApiKeys", "Projects.list_keys", lambda c, v, s: c.projects.list_keys("shop")),
    ("revokeApiKey", "Projects.revoke_key", lambda c, v, s: c.projects.revoke_key("shop", "key_1")),
    ("createVolume", "Volumes.create", lambda c, v, s: c.volumes.create("team-data", size_gb=1, labels={"a": "b"})),
    ("createVolume", "Volumes.from_name", lambda c, v, s: c.volumes.from_name("team-data", create_if_missing=True)),
    ("getVolume", "Volumes.from_name", lambda c, v, s: c.volumes.from_name("team-data")),
    ("createVolume", "Volume.from_name", lambda c, v, s: type(v).from_name("team-data", create_if_missing=True, client=c)),
    ("listVolumes", "Volumes.list", lambda c, v, s: c.volumes.list(labels={"a": "b"}, fields=["name"], limit=1, cursor="x")),
    ("listVolumes", "Volumes.iterate", lambda c, v, s: c.volumes.iterate()),
    ("importVolume", "Volumes.import_", lambda c, v, s: c.volumes.import_("moved", b"tar bytes", format="tar")),
    ("getVolume", "Volumes.get", lambda c, v, s: c.volumes.get("team-data")),
    ("getVolume", "Volume.refresh", lambda c, v, s: v.refresh()),
    ("updateVolume", "Volumes.resize", lambda c, v, s: c.volumes.resize("team-data", size_gb=2)),
    ("updateVolume", "Volumes.update", lambda c, v, s: c.volumes.update("team-data", labels={"a": "b"})),
    ("updateVolume", "Volume.resize", lambda c, v, s: v.resize(size_bytes=2 << 30)),
    ("updateVolume", "Volume.update", lambda c, v, s: v.update(labels={})),
    ("deleteVolume", "Volumes.delete", lambda c, v, s: c.volumes.delete("team-data", keep_checkpoints=True)),
    ("deleteVolume", "Volume.delete", lambda c, v, s: v.delete()),
    ("writeFile", "VolumeFiles.write", lambda c, v, s: v.files.write("/a.txt", "x", if_none_match="*")),
    ("writeFile", "VolumeFiles.write_from_file", lambda c, v, s: v.files.write_from_file("/a.txt", __file__)),
    ("readFile", "VolumeFiles.read", lambda c, v, s: v.files.read("/a.txt")),
    ("readFile", "VolumeFiles.read_text", lambda c, v, s: v.files.read_text("/a.txt")),
    ("readFile", "VolumeFiles.read_bytes", lambda c, v, s: v.files.read_bytes("/a.txt", range=(0, 1))),
    ("readFile", "VolumeFiles.read_stream", lambda c, v, s: v.files.read_stream("/a.txt")),
    ("readFile", "VolumeFiles.download", lambda c, v, s: v.files.download("/a.txt", io.BytesIO())),
    ("statFile", "VolumeFiles.stat", lambda c, v, s: v.files.stat("/a.txt", follow=True)),
    ("statFile", "VolumeFiles.exists", lambda c, v, s: v.files.exists("/a.txt")),
    ("listFiles", "VolumeFiles.list", lambda c, v, s: v.files.list("/", recursive=True)),
    ("listFiles", "VolumeFiles.iterate", lambda c, v, s: v.files.iterate("/")),
    ("makeDirectory", "VolumeFiles.mkdir", lambda c, v, s: v.files.mkdir("/d", mode=0o755)),
    ("moveFile", "VolumeFiles.move", lambda c, v, s: v.files.move("/a", "/b")),
    ("removeFile", "VolumeFiles.remove", lambda c, v, s: v.files.remove("/a", recursive=True)),
    ("editFile", "VolumeFiles.edit", lambda c, v, s: v.files.edit("/a", "x", "y")),
    ("batchWrite", "VolumeFiles.write_many", lambda c, v, s: v.files.write_many([{"path": "/a", "content": b"x"}])),
    ("searchFiles", "VolumeFiles.search", lambda c, v, s: v.files.search(glob="*.py", query="x")),
    ("replaceInFiles", "VolumeFiles.replace", lambda c, v, s: v.files.replace("a", "b", dry_run=True)),
    ("downloadArchive", "VolumeFiles.download_archive", lambda c, v, s: v.files.download_archive("/", format="zip")),
    ("uploadArchive", "VolumeFiles.upload_archive", lambda c, v, s: v.files.upload_archive("/", b"tar")),
    ("signUrl", "VolumeFiles.sign", lambda c, v, s: v.files.sign("/a", method="PUT", expires_in=60)),
    ("createUpload", "VolumeFiles.upload", lambda c, v, s: v.files.upload("/u", b"abc")),
    ("patchUpload", "VolumeFiles.upload", lambda c, v, s: v.files.upload("/u", b"abc")),
    ("createUpload", "VolumeFiles.upload_from_file", lambda c, v, s: v.files.upload_from_file("/u", __file__)),
    ("getUpload", "VolumeFiles.upload_status", lambda c, v, s: v.files.upload_status(f"http://cairn.test/v1/volumes/{V}/uploads/up_1")),
    ("terminateUpload", "VolumeFiles.abort_upload", lambda c, v, s: v.files.abort_upload(f"http://cairn.test/v1/volumes/{V}/uploads/up_1")),
    ("watchFiles", "VolumeFiles.watch", lambda c, v, s: v.files.watch("/", reconnect=False)),
    ("createCheckpoint", "Checkpoints.create", lambda c, v, s: v.checkpoints.create(name="cp", keep=3)),
    ("listCheckpoints", "Checkpoints.list", lambda c, v, s: v.checkpoints.list()),
    ("getCheckpoint", "Checkpoints.get", lambda c, v, s: v.checkpoints.get("cp")),
    ("deleteCheckpoint", "Checkpoints.delete", lambda c, v, s: v.checkpoints.delete("cp")),
    ("exportCheckpoint", "Checkpoints.export", lambda c, v, s: v.checkpoints.export("cp", format="tar")),
    ("restoreCheckpoint", "Checkpoints.restore", lambda c, v, s: v.checkpoints.restore("cp", detach=True)),
    ("createSandbox", "Sandboxes.create", lambda c, v, s: c.sandboxes.create(volumes={"/workspace": "p"}, memory_mb=256)),
    ("createSandbox", "Sandbox.create", lambda c, v, s: type(s).create(client=c, volumes=[v.mount("/w")])),
    ("listSandboxes", "Sandboxes.list", lambda c, v, s: c.sandboxes.list(state="running")),
    ("getSandbox", "Sandboxes.get", lambda c, v, s: c.sandboxes.get(S)),
    ("getSandbox", "Sandbox.refresh", lambda c, v, s: s.refresh()),
    ("killSandbox", "Sandbox.kill", lambda c, v, s: s.kill()),
    ("exec", "Sandbox.exec", lambda c, v, s: s.exec("true")),
    ("exec", "Sandbox.exec", lambda c, v, s: s.exec("true", background=True)),
    ("exec", "Sandbox.exec_stream", lambda c, v, s: s.exec_stream("true")),
    ("exec", "Sandbox.exec_background", lambda c, v, s: s.exec_background("true")),
    ("getProcess", "Sandbox.process", lambda c, v, s: s.process("proc_1", wait=True, logs=True)),
    ("listAttachments", "Sandbox.attachments", lambda c, v, s: s.attachments()),
    ("attachVolume", "Sandbox.attach", lambda c, v, s: s.attach(v.mount("/cache"))),
    ("detachVolume", "Sandbox.detach", lambda c, v, s: s.detach("/cache", force=True)),
    ("hibernateSandbox", "Sandbox.hibernate", lambda c, v, s: s.hibernate()),
    ("resumeSandbox", "Sandbox.resume", lambda c, v, s: s.resume()),
    ("forkSandbox", "Sandbox.fork", lambda c, v, s: s.fork(keep_volumes=True)),
    ("createSandbox", "Sandboxes.create", lambda c, v, s: c.sandboxes.create(network={"egress": True, "allow": ["10.0.0.5/32:5432"]})),
    ("exposePort", "Sandbox.expose", lambda c, v, s: s.expose(3000, public=True)),
    ("exposePort", "Sandbox.get_url", lambda c, v, s: s.get_url(3000)),
    ("listPorts", "Sandbox.ports", lambda c, v, s: s.ports()),
    ("unexposePort", "Sandbox.unexpose", lambda c, v, s: s.unexpose(3000)),
    ("writeSandboxFile", "SandboxFiles.write", lambda c, v, s: s.files.write("/tmp/a", b"x")),
    ("readSandboxFile", "SandboxFiles.read", lambda c, v, s: s.files.read("/tmp/a")),
    ("readSandboxFile", "SandboxFiles.read_text", lambda c, v, s: s.files.read_text("/tmp/a")),
    ("readSandboxFile", "SandboxFiles.read_bytes", lambda c, v, s: s.files.read_bytes("/tmp/a")),
    ("readSandboxFile", "SandboxFiles.read_stream", lambda c, v, s: s.files.read_stream("/tmp/a")),
    ("getProcess", "SandboxProcess.output", lambda c, v, s: _process(s).output()),
    ("getProcess", "SandboxProcess.wait", lambda c, v, s: _process(s).wait()),
    ("deploy", "Deployments.deploy", lambda c, v, s: c.deployments.deploy("shop", b"tgz", env="beta", cmd="python3 main.py")),
    ("listDeployments", "Deployments.list", lambda c, v, s: c.deployments.list(app="shop")),
    ("deploymentLogs", "Deployments.logs", lambda c, v, s: c.deployments.logs("shop")),
    ("deleteDeployments", "Deployments.remove", lambda c, v, s: c.deployments.remove("shop", delete_filesystem=True)),
]


def _process(sandbox: Any) -> Any:
    cls = cairn.AsyncSandboxProcess if isinstance(sandbox, cairn.AsyncSandbox) else cairn.SandboxProcess
    return cls(sandbox, {"id": "proc_1", "state": "running"})


# One answer that every call can read what it needs from.
ANSWER = {
    "id": V, "name": "n", "state": "running", "type": "exit", "exitCode": 0, "items": [], "nextCursor": None,
    "volume": {"id": V, "name": "n", "sizeBytes": 1}, "resize": None, "deployments": 1, "pathAndQuery": "/p",
    "offset": 0, "length": 3, "path": "/p", "size": 3, "etag": "e", "url": "http://3000-sbx-1.localhost/",
}


def _respond(req: httpx.Request) -> httpx.Response:
    if req.method == "POST" and req.url.path.endswith("/uploads"):
        return httpx.Response(201, headers={"location": f"{req.url.path}/up_1", "upload-offset": "0"})
    if req.method == "PATCH" and "upload-offset" in req.headers:
        offset = int(req.headers["upload-offset"]) + len(req.read())
        return httpx.Response(204, headers={"upload-offset": str(offset)})
    return httpx.Response(200, json=ANSWER)


@pytest.fixture(scope="module")
def document(client: cairn.Cairn) -> Dict[str, Any]:
    return client._http.client.get(client.config.url + "/openapi.json").json()  # type: ignore[no-any-return]


def _operations(doc: Dict[str, Any]) -> List[Tuple[str, str, "re.Pattern[str]", str]]:
    out = []
    for path, item in doc["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        for method, op in item.items():
            if method in ("get", "put", "post", "patch", "delete", "head", "options"):
                out.append((method.upper(), path, pattern, op["operationId"]))
    return out


def _match(ops: List[Tuple[str, str, Any, str]], method: str, path: str) -> Optional[str]:
    for m, _p, pattern, op_id in ops:
        if m == method and pattern.match(path):
            return op_id
    return None


def _drive_sync(call: Call) -> List[Tuple[str, str]]:
    sent: List[Tuple[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append((req.method, req.url.path))
        return _respond(req)

    c = cairn.Cairn("http://cairn.test", api_key="k", transport=httpx.MockTransport(handler))
    v = cairn.Volume(c.volumes, {"id": V, "name": "n"})
    s = cairn.Sandbox(c._http, {"id": S, "state": "running"})
    result = call(c, v, s)
    if inspect.isgenerator(result):
        list(result)
    return sent


def _drive_async(call: Call) -> List[Tuple[str, str]]:
    sent: List[Tuple[str, str]] = []

    async def handler(req: httpx.Request) -> httpx.Response:
        await req.aread()
        sent.append((req.method, req.url.path))
        return _respond(req)

    async def main() -> None:
        async with cairn.AsyncCairn("http://cairn.test", api_key="k", transport=httpx.MockTransport(handler)) as c:
            v = cairn.AsyncVolume(c.volumes, {"id": V, "name": "n"})
            s = cairn.AsyncSandbox(c._http, {"id": S, "state": "running"})
            result = call(c, v, s)
            if inspect.isasyncgen(result):
                async for _ in result:
                    pass
            else:
                await result

    asyncio.run(main())
    return sent


@pytest.mark.parametrize("op_id,label,call", CALLS, ids=[f"{label}->{op}" for op, label, _ in CALLS])
def test_each_method_calls_its_documented_operation(document: Dict[str, Any], op_id: str, label: str, call: Call) -> None:
    ops = _operations(document)
    for drive in (_drive_sync, _drive_async):
        sent = drive(call)
        assert sent, f"{label} sent nothing"
        matched = [_match(ops, m, p) for m, p in sent]
        assert None not in matched, f"{label} ({drive.__name__}) sent requests not in the OpenAPI document: {sent}"
        assert op_id in matched, f"{label} was listed for {op_id} but sent {matched}"


def test_every_operation_has_a_python_method_or_a_reason(document: Dict[str, Any]) -> None:
    documented = {op_id for _m, _p, _re, op_id in _operations(document)}
    covered = {op for op, _label, _call in CALLS}
    assert not covered & set(DELIBERATELY_ABSENT), "listed as both covered and absent"
    missing = documented - covered - set(DELIBERATELY_ABSENT)
    assert not missing, f"operations without a Python method (add one, or a reason in DELIBERATELY_ABSENT): {sorted(missing)}"
    stale = (covered | set(DELIBERATELY_ABSENT)) - documented
    assert not stale, f"operations no longer in the document: {sorted(stale)}"
    assert all(reason.strip() for reason in DELIBERATELY_ABSENT.values())


def test_every_public_method_is_driven_here() -> None:
    classes = [cairn.Cairn, cairn.Volumes, cairn.Volume, cairn.VolumeFiles, cairn.Checkpoints, cairn.Sandboxes, cairn.Sandbox,
               cairn.SandboxFiles, cairn.SandboxProcess, cairn.Deployments, cairn.Projects]
    public = set()
    for cls in classes:
        for name, value in vars(cls).items():
            if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, classmethod)):
                public.add(f"{cls.__name__}.{name}")
    driven = {label for _op, label, _call in CALLS}
    assert public - driven - LOCAL_ONLY == set(), "public methods this contract test does not drive"
    assert driven - public == set()


def test_requests_of_the_whole_suite_are_documented(document: Dict[str, Any]) -> None:
    if not RecordingTransport.calls:
        pytest.skip("sees the requests of the other test files: run the whole suite")
    ops = _operations(document)
    strays = sorted((m, p) for m, p in RecordingTransport.calls if _match(ops, m, p) is None)
    assert not strays, f"requests to cairnd that its OpenAPI document does not describe: {strays}"


def test_problem_codes_of_the_whole_suite_are_declared(server: Cairnd) -> None:
    if not RecordingTransport.calls:
        pytest.skip("sees the answers to the other test files: run the whole suite")
    undeclared = [line for line in server.output if '"msg":"undeclared error code"' in line]
    assert not undeclared, f"cairnd answered with problem codes its OpenAPI operations do not declare: {undeclared}"


def test_sync_client_is_generated_from_the_async_one() -> None:
    tool = HERE.parent / "tools" / "gen_sync.py"
    r = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_sync_and_async_offer_the_same_methods() -> None:
    pairs = [(cairn.Cairn, cairn.AsyncCairn), (cairn.Volume, cairn.AsyncVolume), (cairn.VolumeFiles, cairn.AsyncVolumeFiles),
             (cairn.Sandbox, cairn.AsyncSandbox), (cairn.Checkpoints, cairn.AsyncCheckpoints), (cairn.Projects, cairn.AsyncProjects),
             (cairn.Deployments, cairn.AsyncDeployments), (cairn.Volumes, cairn.AsyncVolumes), (cairn.Sandboxes, cairn.AsyncSandboxes)]
    rename = {"aclose": "close"}
    for sync_cls, async_cls in pairs:
        s = {n for n in vars(sync_cls) if not n.startswith("_")}
        a = {rename.get(n, n) for n in vars(async_cls) if not n.startswith("_")}
        assert s == a, sync_cls.__name__


def test_package_exports_resolve() -> None:
    for name in cairn.__all__:
        assert getattr(cairn, name) is not None, name
    assert (HERE.parent / "cairn" / "py.typed").exists()
