"""The one request helper: auth, problem+json errors, timeouts, and retries of idempotent
requests only (a streamed body is never retried: it cannot be sent twice)."""
from __future__ import annotations

import json as jsonlib
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import httpx

from .. import _io_async as io
from .._config import ClientConfig
from .._errors import CairnError, CairnTimeoutError, UnavailableError, error_from_problem

QueryValue = Union[str, int, float, bool, None, Sequence[str]]
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE")
# How long a call may wait for the next byte when the server is working, not stalled: exec and
# process waits run as long as the command does.
NO_READ_TIMEOUT = object()


def enc(segment: str) -> str:
    """One path segment, percent-encoded."""
    return quote(segment, safe="")


def _query(query: Optional[Mapping[str, QueryValue]]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for key, value in (query or {}).items():
        if value is None or value is False:
            continue
        if isinstance(value, bool):
            out.append((key, "true"))
        elif isinstance(value, (list, tuple)):
            out.extend((key, str(v)) for v in value)
        else:
            out.append((key, str(value)))
    return out


class AsyncHttp:
    """Carries every request of one client. Holds the API key; never prints it."""

    def __init__(self, config: ClientConfig, transport: Optional[httpx.AsyncBaseTransport] = None) -> None:
        self.config = config
        self._transport = transport
        self._client: Optional[httpx.AsyncClient] = None

    def __repr__(self) -> str:
        return f"<AsyncHttp url={self.config.url!r} project={self.config.project!r}>"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.config.timeout, connect=min(10.0, self.config.timeout))
            self._client = httpx.AsyncClient(timeout=timeout, transport=self._transport, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def url(self, path: str) -> str:
        return self.config.url + path

    def relative(self, url: str) -> str:
        """A URL cairnd gave (an upload's Location) as a path on this client's base URL."""
        if url.startswith(self.config.url + "/"):
            return url[len(self.config.url):]
        return httpx.URL(url).raw_path.decode()

    def headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        out: Dict[str, str] = dict(extra or {})
        if self.config.api_key:
            out["authorization"] = f"Bearer {self.config.api_key}"
        if self.config.project:
            out["x-cairn-project"] = self.config.project
        return out

    def _timeout(self, read_timeout: Any) -> Any:
        if read_timeout is None:
            return httpx.USE_CLIENT_DEFAULT
        t = self.config.timeout
        read = None if read_timeout is NO_READ_TIMEOUT else read_timeout
        return httpx.Timeout(t, connect=min(10.0, t), read=read)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, QueryValue]] = None,
        json: Any = None,
        content: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        stream: bool = False,
        read_timeout: Any = None,
    ) -> httpx.Response:
        """Send a request; a non-2xx answer raises its ``CairnError``. With ``stream`` the body is
        not read: the caller iterates it and closes the response."""
        hdrs = self.headers(headers)
        body: Any = None
        if json is not None:
            hdrs["content-type"] = "application/json"
            body = jsonlib.dumps(json).encode()
        elif content is not None:
            body = io.body_of(content)
        idempotent = content is None and method in IDEMPOTENT
        req = self.client.build_request(
            method, self.url(path), params=_query(query), content=body, headers=hdrs, timeout=self._timeout(read_timeout)
        )
        attempt = 0
        while True:
            try:
                res = await self.client.send(req, stream=True)
            except httpx.TimeoutException as err:
                if idempotent and isinstance(err, httpx.ConnectTimeout) and attempt < self.config.max_retries:
                    await io.sleep(0.1 * 2**attempt)
                    attempt += 1
                    continue
                raise CairnTimeoutError("UNAVAILABLE", f"Timed out talking to cairnd at {self.config.url}: {type(err).__name__}") from err
            except httpx.TransportError as err:
                if idempotent and attempt < self.config.max_retries:
                    await io.sleep(0.1 * 2**attempt)
                    attempt += 1
                    continue
                raise UnavailableError("UNAVAILABLE", f"Cannot reach cairnd at {self.config.url}: {err or type(err).__name__}") from err
            if 200 <= res.status_code < 300:
                if not stream:
                    try:
                        await res.aread()
                    except httpx.TransportError as err:
                        raise UnavailableError("UNAVAILABLE", f"The answer from cairnd was cut: {err or type(err).__name__}") from err
                    finally:
                        await res.aclose()
                return res
            if res.status_code == 503 and idempotent and attempt < self.config.max_retries:
                await res.aclose()
                await io.sleep(0.1 * 2**attempt)
                attempt += 1
                continue
            raise await self._error(res)

    async def _error(self, res: httpx.Response) -> CairnError:
        try:
            raw = await res.aread()
        except httpx.HTTPError:
            raw = b""
        finally:
            await res.aclose()
        text = raw.decode("utf-8", "replace")
        body: Any = text
        if "json" in res.headers.get("content-type", ""):
            try:
                body = jsonlib.loads(text)
            except ValueError:
                body = text
        err = error_from_problem(body, res.status_code)
        if err.request_id is None:
            err.request_id = res.headers.get("x-request-id")
        if res.headers.get("upload-offset") is not None:
            err.meta = dict(err.meta or {}, uploadOffset=int(res.headers["upload-offset"]))
        return err

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        res = await self.request(method, path, **kwargs)
        if res.status_code == 204 or not res.content:
            return None
        return res.json()

    async def iter_body(self, res: httpx.Response, chunk_size: Optional[int] = None) -> AsyncIterator[bytes]:
        """A streamed answer's bytes; always closes it, and a cut connection is ``UNAVAILABLE``."""
        try:
            async for piece in res.aiter_bytes(chunk_size):
                yield piece
        except httpx.TimeoutException as err:
            raise CairnTimeoutError("UNAVAILABLE", f"Timed out reading from cairnd: {type(err).__name__}") from err
        except httpx.TransportError as err:
            raise UnavailableError("UNAVAILABLE", f"The answer from cairnd was cut: {err or type(err).__name__}") from err
        finally:
            await res.aclose()

    async def iter_lines(self, res: httpx.Response) -> AsyncIterator[str]:
        """A streamed answer's lines (NDJSON, SSE), with the same errors and closing as ``iter_body``."""
        try:
            async for line in res.aiter_lines():
                yield line
        except httpx.TimeoutException as err:
            raise CairnTimeoutError("UNAVAILABLE", f"Timed out reading from cairnd: {type(err).__name__}") from err
        except httpx.TransportError as err:
            raise UnavailableError("UNAVAILABLE", f"The answer from cairnd was cut: {err or type(err).__name__}") from err
        finally:
            await res.aclose()
