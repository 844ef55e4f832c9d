"""Every error family, from the real cairnd where it can produce it; the code table against the
protocol's and the OpenAPI document's; retries, timeouts and secrets, with a fake transport."""
from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import tarfile
import threading
from pathlib import Path
from typing import List

import httpx
import pytest

import cairn
from cairn._errors import ERROR_CODES

from conftest import REPO, unique


def code_of(fn) -> str:  # type: ignore[no-untyped-def]
    try:
        fn()
    except cairn.CairnError as err:
        return err.code
    return "ok"


def test_invalid_argument(client: cairn.Cairn, volume: cairn.Volume) -> None:
    with pytest.raises(cairn.InvalidArgumentError) as err:
        client.volumes.create("Not A Valid Name")
    assert err.value.code == "INVALID_VOLUME_NAME" and err.value.status == 400 and err.value.request_id
    assert "lowercase" in str(err.value)
    # Checked before any request, with the same code the server uses.
    with pytest.raises(cairn.InvalidArgumentError) as local:
        volume.files.read("/../etc/passwd")
    assert local.value.code == "INVALID_PATH"
    with pytest.raises(cairn.InvalidArgumentError):
        client.volumes.create(unique("v"), size_gb=1000)


def test_auth_and_project_isolation(server, client: cairn.Cairn, volume: cairn.Volume) -> None:
    bad = cairn.Cairn(server.url, api_key="cairn_wrong_key")
    with pytest.raises(cairn.AuthError) as err:
        bad.volumes.list()
    assert err.value.code == "UNAUTHORIZED" and err.value.status == 401
    created = client.projects.create(unique("proj"))
    project = created["project"]["name"]
    key = created["apiKey"]["key"]
    other = cairn.Cairn(server.url, api_key=key)
    try:
        with pytest.raises(cairn.AuthError) as forbidden:
            other.projects.list()
        assert forbidden.value.code == "FORBIDDEN" and forbidden.value.status == 403
        # Another project's volume does not exist for this key.
        assert code_of(lambda: other.volumes.get(volume.id)) == "VOLUME_NOT_FOUND"
        mine = other.volumes.create(unique("mine"))
        assert code_of(lambda: client.volumes.get(mine.id)) == "VOLUME_NOT_FOUND"
        # The admin key acts on that project with CAIRN_PROJECT / project=.
        as_admin = cairn.Cairn(server.url, api_key=server.admin_key, project=project)
        assert as_admin.volumes.get(mine.id).name == mine.name
        second = client.projects.create_key(project, name="ci")
        assert [k["name"] for k in client.projects.list_keys(project)].count("ci") == 1
        assert project in [p["name"] for p in client.projects.list()]
        client.projects.revoke_key(project, second["id"])
        assert code_of(lambda: cairn.Cairn(server.url, api_key=second["key"]).volumes.list()) == "UNAUTHORIZED"
        mine.delete()
    finally:
        other.close()


def test_not_found_and_conflict(client: cairn.Cairn, volume: cairn.Volume) -> None:
    with pytest.raises(cairn.NotFoundError) as err:
        client.volumes.get(unique("missing"))
    assert err.value.code == "VOLUME_NOT_FOUND" and err.value.status == 404
    assert code_of(lambda: volume.files.stat("/nope")) == "PATH_NOT_FOUND"
    assert code_of(lambda: client.sandboxes.get("sbx_00000000000000000000")) == "SANDBOX_NOT_FOUND"
    with pytest.raises(cairn.ConflictError) as exists:
        client.volumes.create(volume.name)
    assert exists.value.code == "VOLUME_ALREADY_EXISTS" and exists.value.status == 409
    volume.files.write("/e.txt", "a a")
    assert code_of(lambda: volume.files.edit("/e.txt", "zzz", "y")) == "EDIT_NO_MATCH"
    assert code_of(lambda: volume.files.edit("/e.txt", "a", "b")) == "EDIT_AMBIGUOUS"
    with client.sandboxes.create(volumes=[volume.mount("/data")]):
        with pytest.raises(cairn.ConflictError) as attached:
            client.sandboxes.create(volumes=[volume.mount("/data")])
        assert attached.value.code == "VOLUME_ALREADY_ATTACHED"
        assert f'"{volume.name}" is already attached' in attached.value.message


def test_precondition_and_capacity(client: cairn.Cairn) -> None:
    small = client.volumes.create(unique("small"), size_bytes=32 * 1024 * 1024)
    try:
        small.files.write("/p.txt", "x")
        with pytest.raises(cairn.PreconditionFailedError) as pre:
            small.files.write("/p.txt", "y", if_match='"not-the-etag"')
        assert pre.value.code == "PRECONDITION_FAILED"
        with pytest.raises(cairn.CapacityError) as full:
            small.files.write("/too-big.bin", (bytes(1024 * 1024) for _ in range(64)))
        assert full.value.code == "QUOTA_EXCEEDED" and full.value.status == 507
        assert small.files.read("/p.txt") == "x" and not small.files.exists("/too-big.bin")
    finally:
        small.delete()


def _tar_gz(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_deployments_and_deploy_failed(client: cairn.Cairn) -> None:
    app = unique("app")[:30]
    with pytest.raises(cairn.DeployFailedError) as failed:
        client.deployments.deploy(app, _tar_gz({"README.md": "no entrypoint here\n"}))
    assert failed.value.code == "DEPLOY_FAILED" and failed.value.status == 422
    main_py = (
        "import http.server, os\n"
        "open(os.environ['CAIRN_LOCAL_FS'] + '/boots', 'a').write('x')\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'hello')\n"
        "print('serving', flush=True)\n"
        "http.server.HTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    )
    d = client.deployments.deploy(app, io.BytesIO(_tar_gz({"main.py": main_py})))
    try:
        assert d["state"] == "running" and d["app"] == app
        assert [x["id"] for x in client.deployments.list(app=app)][0] == d["id"]
        logs = client.deployments.logs(app)
        assert logs["deployment"]["id"] == d["id"]
    finally:
        assert client.deployments.remove(app, delete_filesystem=True) >= 1


def test_unavailable_and_timeout() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(cairn.UnavailableError) as err:
        cairn.Cairn(f"http://127.0.0.1:{port}", api_key="k", max_retries=1).volumes.list()
    assert err.value.code == "UNAVAILABLE"
    # A server that accepts and never answers: the client's timeout ends the wait.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: List[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        while not stop.is_set():
            try:
                conn, _ = silent.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=hold, daemon=True).start()
    try:
        slow = cairn.Cairn(f"http://127.0.0.1:{silent.getsockname()[1]}", api_key="k", timeout=0.3, max_retries=0)
        with pytest.raises(cairn.CairnTimeoutError) as timed_out:
            slow.volumes.list()
        assert timed_out.value.code == "UNAVAILABLE" and isinstance(timed_out.value, TimeoutError)

        async def async_timeout() -> str:
            async with cairn.AsyncCairn(f"http://127.0.0.1:{silent.getsockname()[1]}", api_key="k", timeout=0.3) as c:
                try:
                    await c.health()
                except cairn.CairnTimeoutError as e:
                    return e.code
            return "ok"

        assert asyncio.run(async_timeout()) == "UNAVAILABLE"
    finally:
        stop.set()
        silent.close()
        for c in held:
            c.close()


def fake(handler) -> cairn.Cairn:  # type: ignore[no-untyped-def]
    return cairn.Cairn("http://cairn.invalid", api_key="sk_secret_value", transport=httpx.MockTransport(handler), max_retries=2)


def test_internal_and_unknown_shapes() -> None:
    c = fake(lambda req: httpx.Response(500, text="boom"))
    with pytest.raises(cairn.InternalError) as err:
        c.health()
    assert err.value.code == "INTERNAL" and err.value.message == "boom"
    problem = {"type": "x", "code": "SOME_FUTURE_CODE", "title": "t", "status": 418, "detail": "new"}
    c = fake(lambda req: httpx.Response(418, json=problem, headers={"content-type": "application/problem+json"}))
    with pytest.raises(cairn.CairnError) as future:
        c.health()
    assert type(future.value) is cairn.CairnError and future.value.code == "SOME_FUTURE_CODE" and future.value.status == 418


def test_only_idempotent_requests_are_retried() -> None:
    calls: List[str] = []

    def flaky(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        if len(calls) % 3 != 0:
            return httpx.Response(503, json={"code": "UNAVAILABLE", "detail": "busy"})
        return httpx.Response(200, json={"items": [], "nextCursor": None})

    c = fake(flaky)
    assert c.volumes.list()["items"] == []
    assert calls == ["GET", "GET", "GET"]
    calls.clear()
    with pytest.raises(cairn.UnavailableError):
        c.volumes.create("x")  # a POST is sent once
    assert calls == ["POST"]
    calls.clear()

    def busy(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        return httpx.Response(503, json={"code": "UNAVAILABLE", "detail": "busy"})

    files = cairn.VolumeFiles(fake(busy)._http, lambda: "vol_1")
    with pytest.raises(cairn.UnavailableError):
        files.write("/a", iter([b"streamed"]))  # a body that cannot be sent twice
    assert calls == ["PUT"]
    calls.clear()
    with pytest.raises(cairn.UnavailableError):
        files.read_bytes("/a")
    assert calls == ["GET"] * 3
    calls.clear()

    def down(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        raise httpx.ConnectError("refused", request=req)

    c = fake(down)
    with pytest.raises(cairn.UnavailableError):
        c.volumes.delete("x")
    assert calls == ["DELETE"] * 3
    calls.clear()
    with pytest.raises(cairn.UnavailableError):
        c.sandboxes.create()
    assert calls == ["POST"]


def test_no_credential_in_repr_or_errors() -> None:
    def answer(req: httpx.Request) -> httpx.Response:
        assert req.headers["authorization"] == "Bearer sk_secret_value"
        if req.url.path == "/v1/volumes/v":
            return httpx.Response(200, json={"id": "vol_1", "name": "v", "sizeBytes": 1})
        return httpx.Response(404, json={"code": "PATH_NOT_FOUND", "detail": "no"})

    c = fake(answer)
    v = c.volumes.get("v")
    with pytest.raises(cairn.NotFoundError) as err:
        v.files.stat("/x")
    shown = " ".join([repr(c), str(c), repr(c.config), repr(v), repr(v.files), repr(c._http), repr(err.value), str(err.value)])
    assert "sk_secret_value" not in shown
    a = cairn.AsyncCairn("http://x", api_key="sk_secret_value")
    assert "sk_secret_value" not in repr(a) + repr(a.config)


def test_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_URL", "http://example.test:7070/")
    monkeypatch.setenv("CAIRN_API_KEY", "k1")
    monkeypatch.setenv("CAIRN_PROJECT", "shop")
    c = cairn.Cairn()
    assert (c.config.url, c.config.api_key, c.config.project) == ("http://example.test:7070", "k1", "shop")
    assert cairn.Cairn("http://other:1", api_key="k2", project="p").config.project == "p"


def test_error_table_matches_protocol_and_openapi(client: cairn.Cairn) -> None:
    source = (REPO / "packages" / "protocol" / "src" / "errors.ts").read_text()
    protocol = {m[0]: (int(m[1]), m[2]) for m in re.findall(r'(\w+): \{ status: (\d+), title: "([^"]+)" \}', source)}
    assert len(protocol) > 40
    ours = {code: (status, title) for code, (status, title, _family) in ERROR_CODES.items()}
    assert ours == protocol
    doc = client._http.client.get(client.config.url + "/openapi.json").json()
    enum = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    assert enum == set(ERROR_CODES)
    # Families follow the status.
    by_status = {400: cairn.InvalidArgumentError, 401: cairn.AuthError, 403: cairn.AuthError, 404: cairn.NotFoundError,
                 409: cairn.ConflictError, 412: cairn.PreconditionFailedError, 507: cairn.CapacityError, 500: cairn.InternalError}
    for code, (status, _t, family) in ERROR_CODES.items():
        if status in by_status:
            assert family is by_status[status], code
