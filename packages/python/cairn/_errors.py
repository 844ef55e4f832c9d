"""Errors: the same string codes as cairnd (packages/protocol/src/errors.ts), one class per family.

Callers either catch a family (``except cairn.NotFoundError``) or branch on ``err.code``
(``if err.code == "VOLUME_ALREADY_ATTACHED"``). A test keeps this table equal to the protocol's
and to the code enum of the server's OpenAPI document.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple, Type


class CairnError(Exception):
    """An error with a stable ``code`` (e.g. ``"VOLUME_NOT_FOUND"``) and its HTTP ``status``.

    Example::

        try:
            cairn.volumes.get("nope")
        except cairn.CairnError as err:
            print(err.code, err.status, err.request_id)
    """

    code: str
    status: int
    message: str
    request_id: Optional[str]
    meta: Optional[Dict[str, Any]]

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        meta: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else status_of(code)
        self.request_id = request_id
        self.meta = meta

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


class InvalidArgumentError(CairnError):
    """400-class validation failures: bad names, sizes, paths, labels, patterns, archives, ranges."""


class AuthError(CairnError):
    """``UNAUTHORIZED`` (no or a revoked key) and ``FORBIDDEN`` (the key may not do this)."""


class NotFoundError(CairnError):
    """Something named does not exist (or belongs to another project): ``*_NOT_FOUND``."""


class ConflictError(CairnError):
    """The request clashes with the current state: already exists/attached, busy, not running…"""


class PreconditionFailedError(CairnError):
    """An ``If-Match``/``If-None-Match`` condition or an upload checksum did not hold."""


class CapacityError(CairnError):
    """No room: the volume is full (``QUOTA_EXCEEDED``) or the storage pool is (``POOL_FULL``)."""


class DeployFailedError(CairnError):
    """A deployment did not come up; the previous version keeps serving."""


class UnavailableError(CairnError):
    """cairnd cannot be reached or cannot serve this now (network errors, 503)."""


class CairnTimeoutError(UnavailableError, TimeoutError):
    """The client gave up waiting (connect, read or write timeout). Code ``UNAVAILABLE``."""


class InternalError(CairnError):
    """cairnd failed in a way it did not expect (``INTERNAL``); its logs have the cause."""


# code -> (status, title, family). Mirrors ERROR_CODES in packages/protocol/src/errors.ts.
ERROR_CODES: Mapping[str, Tuple[int, str, Type[CairnError]]] = {
    "INVALID_REQUEST": (400, "Invalid request", InvalidArgumentError),
    "INVALID_VOLUME_NAME": (400, "Invalid volume name", InvalidArgumentError),
    "INVALID_SIZE": (400, "Invalid size", InvalidArgumentError),
    "INVALID_LABEL": (400, "Invalid label", InvalidArgumentError),
    "INVALID_PATH": (400, "Invalid path", InvalidArgumentError),
    "INVALID_RANGE": (416, "Range not satisfiable", InvalidArgumentError),
    "INVALID_CHECKPOINT_NAME": (400, "Invalid checkpoint name", InvalidArgumentError),
    "INVALID_PROJECT_NAME": (400, "Invalid project name", InvalidArgumentError),
    "NOT_A_FILE": (400, "Not a regular file", InvalidArgumentError),
    "VOLUME_SHRINK_NOT_ALLOWED": (409, "Volumes cannot shrink", ConflictError),
    "INVALID_TEMPLATE": (400, "Unknown template", InvalidArgumentError),
    "INVALID_MOUNT": (400, "Invalid mount", InvalidArgumentError),
    "INVALID_NETWORK_POLICY": (400, "Invalid network policy", InvalidArgumentError),
    "UNAUTHORIZED": (401, "Unauthorized", AuthError),
    "FORBIDDEN": (403, "Forbidden", AuthError),
    "NOT_FOUND": (404, "Not found", NotFoundError),
    "PROJECT_NOT_FOUND": (404, "Project not found", NotFoundError),
    "API_KEY_NOT_FOUND": (404, "API key not found", NotFoundError),
    "VOLUME_NOT_FOUND": (404, "Volume not found", NotFoundError),
    "PATH_NOT_FOUND": (404, "Path not found", NotFoundError),
    "CHECKPOINT_NOT_FOUND": (404, "Checkpoint not found", NotFoundError),
    "SANDBOX_NOT_FOUND": (404, "Sandbox not found", NotFoundError),
    "ATTACHMENT_NOT_FOUND": (404, "Attachment not found", NotFoundError),
    "PROCESS_NOT_FOUND": (404, "Process not found", NotFoundError),
    "PORT_NOT_FOUND": (404, "Port not exposed", NotFoundError),
    "METHOD_NOT_ALLOWED": (405, "Method not allowed", InvalidArgumentError),
    "PROJECT_ALREADY_EXISTS": (409, "Project already exists", ConflictError),
    "VOLUME_ALREADY_EXISTS": (409, "Volume already exists", ConflictError),
    "CHECKPOINT_ALREADY_EXISTS": (409, "Checkpoint already exists", ConflictError),
    "CHECKPOINT_LIMIT_REACHED": (409, "Too many checkpoints", ConflictError),
    "VOLUME_ALREADY_ATTACHED": (409, "Volume already attached", ConflictError),
    "APP_NAME_TAKEN": (409, "App name taken", ConflictError),
    "DEPLOY_FAILED": (422, "Deploy failed", DeployFailedError),
    "DEPLOYMENT_NOT_FOUND": (404, "Deployment not found", NotFoundError),
    "APP_UNAVAILABLE": (502, "App not answering", UnavailableError),
    "SANDBOX_NOT_RUNNING": (409, "Sandbox not running", ConflictError),
    "TOO_MANY_VOLUMES": (409, "Too many volumes", ConflictError),
    "VOLUME_BUSY": (409, "Volume busy", ConflictError),
    "MOUNT_CHANGED": (409, "Mount changed inside the sandbox", ConflictError),
    "VOLUME_NOT_READY": (409, "Volume not ready", ConflictError),
    "REGION_MISMATCH": (409, "Wrong region", ConflictError),
    "PRECONDITION_FAILED": (412, "Precondition failed", PreconditionFailedError),
    "PAYLOAD_TOO_LARGE": (413, "Payload too large", InvalidArgumentError),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported media type", InvalidArgumentError),
    "QUOTA_EXCEEDED": (507, "Volume full", CapacityError),
    "POOL_FULL": (507, "Storage pool full", CapacityError),
    "VOLUME_DAMAGED": (503, "Volume read-only after a filesystem error", UnavailableError),
    "NOT_A_DIRECTORY": (400, "Not a directory", InvalidArgumentError),
    "INVALID_PATTERN": (400, "Invalid pattern", InvalidArgumentError),
    "INVALID_ARCHIVE": (400, "Invalid archive", InvalidArgumentError),
    "PATH_ALREADY_EXISTS": (409, "Path already exists", ConflictError),
    "DIRECTORY_NOT_EMPTY": (409, "Directory not empty", ConflictError),
    "EDIT_NO_MATCH": (409, "String not found", ConflictError),
    "EDIT_AMBIGUOUS": (409, "String not unique", ConflictError),
    "UPLOAD_NOT_FOUND": (404, "Upload not found", NotFoundError),
    "UPLOAD_OFFSET_MISMATCH": (409, "Upload offset mismatch", ConflictError),
    "CHECKSUM_MISMATCH": (460, "Checksum mismatch", PreconditionFailedError),
    "INVALID_IMAGE": (400, "Invalid image", InvalidArgumentError),
    "IMAGE_NOT_FOUND": (404, "Image not found", NotFoundError),
    "IMAGE_IN_USE": (409, "Image in use", ConflictError),
    "IMAGE_DIGEST_MISMATCH": (502, "Image content does not match its digest", UnavailableError),
    "REGISTRY_ERROR": (502, "Registry error", UnavailableError),
    "INTERNAL": (500, "Internal error", InternalError),
    "UNAVAILABLE": (503, "Service unavailable", UnavailableError),
    "NETWORK_UNAVAILABLE": (503, "Sandbox networking unavailable on this host", UnavailableError),
}


def status_of(code: str) -> int:
    entry = ERROR_CODES.get(code)
    return entry[0] if entry else 500


def make_error(code: str, message: str, **kwargs: Any) -> CairnError:
    """The error of ``code``'s family (``CairnError`` itself for a code this SDK does not know)."""
    entry = ERROR_CODES.get(code)
    cls = entry[2] if entry else CairnError
    return cls(code, message, **kwargs)


def error_from_problem(body: Any, status: int) -> CairnError:
    """Rebuild an error from a problem+json body; other shapes get a code from the status."""
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        code = body["code"]
        detail = body.get("detail")
        title = ERROR_CODES[code][1] if code in ERROR_CODES else code
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else None
        rid = body.get("requestId") if isinstance(body.get("requestId"), str) else None
        return make_error(code, detail if isinstance(detail, str) else title, status=status, request_id=rid, meta=meta)
    code = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
    text = body[:500] if isinstance(body, str) and body else f"HTTP {status}"
    return make_error(code, text, status=status)
