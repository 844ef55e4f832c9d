"""Wire types: the JSON cairnd answers with, as typed dicts (keys as in the OpenAPI document)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"]
Filesystem = Literal["ext4", "xfs"]
ArchiveFormat = Literal["tar", "tar.gz", "zip"]
SandboxState = Literal["starting", "running", "hibernated", "stopped", "failed"]


class VolumeInfo(TypedDict, total=False):
    id: str
    name: str
    projectId: str
    region: str
    sizeBytes: int
    usedBytes: int
    filesystem: Filesystem
    accessMode: AccessMode
    status: str
    labels: Dict[str, str]
    createdAt: str
    updatedAt: str


class VolumeList(TypedDict):
    items: List[VolumeInfo]
    nextCursor: Optional[str]


class ResizeInfo(TypedDict):
    mode: Literal["online", "offline", "none"]
    previousSizeBytes: int


class WriteFileResult(TypedDict):
    path: str
    size: int
    etag: str
    created: bool


class FileEntry(TypedDict, total=False):
    path: str
    name: str
    type: str
    size: int
    mode: int
    mtime: str
    uid: int
    gid: int
    etag: str
    target: str
    created: bool


class FileList(TypedDict):
    items: List[FileEntry]
    nextCursor: Optional[str]


class EditResult(TypedDict):
    path: str
    replacements: int
    size: int
    etag: str


class BatchWriteResult(TypedDict):
    files: List[WriteFileResult]


class SearchMatch(TypedDict, total=False):
    path: str
    type: str
    line: int
    text: str


class SearchResult(TypedDict):
    matches: List[SearchMatch]
    truncated: bool


class ReplaceResult(TypedDict):
    dryRun: bool
    filesChanged: int
    replacements: int
    files: List[Dict[str, Any]]


class ExtractResult(TypedDict):
    path: str
    files: int
    directories: int
    symlinks: int
    bytes: int
    skipped: List[str]


class SignedUrl(TypedDict):
    url: str
    pathAndQuery: str
    method: Literal["GET", "PUT"]
    path: str
    expiresAt: str


class WatchMessage(TypedDict, total=False):
    """``type`` is ``create|modify|delete|rename`` (a change), ``ready`` or ``reset``
    (events were missed: list again). ``cursor`` resumes after this message."""

    type: str
    cursor: str
    path: str
    oldPath: str
    isDir: bool
    at: str
    reason: str


class Checkpoint(TypedDict, total=False):
    id: str
    name: str
    volumeId: str
    labels: Dict[str, str]
    sizeBytes: int
    allocatedBytes: int
    exclusiveBytes: int
    frozenMs: float
    createdAt: str


class MountRequest(TypedDict, total=False):
    volume: str
    mountPath: str
    mode: Literal["rw", "ro"]
    subpath: str
    checkpoint: str


class Attachment(TypedDict):
    id: str
    volume: str
    volumeName: str
    sandbox: str
    mountPath: str
    mode: Literal["rw", "ro"]
    subpath: str
    checkpoint: Optional[str]
    state: Literal["pending", "mounted", "suspended", "released", "failed"]
    error: Optional[str]
    createdAt: str
    updatedAt: str


class SandboxImage(TypedDict, total=False):
    """The OCI image a sandbox runs, pinned to the digest its tag named at create time."""

    ref: str
    digest: str
    exposedPorts: List[str]


class SandboxNetwork(TypedDict):
    """What a sandbox may reach; ``egress: False`` with an empty allow list is loopback only."""

    egress: bool
    allow: List[str]
    deny: List[str]
    address: Optional[str]


class ExposedPort(TypedDict):
    """A routed port: ``url`` carries the token of a private port; ``token`` is None when public."""

    port: int
    public: bool
    url: str
    token: Optional[str]


class SandboxInfo(TypedDict, total=False):
    id: str
    template: str
    image: Optional[SandboxImage]
    state: SandboxState
    cwd: str
    env: Dict[str, str]
    memoryMb: int
    pids: int
    cpus: float
    diskGb: float
    timeoutMs: Optional[int]
    network: SandboxNetwork
    error: Optional[str]
    attachments: List[Attachment]
    createdAt: str
    updatedAt: str


class ProcessInfo(TypedDict, total=False):
    id: str
    command: str
    state: Literal["running", "exited"]
    exitCode: Optional[int]
    stdout: str
    stderr: str


class ExecEvent(TypedDict, total=False):
    """One line of an exec stream: ``stdout``/``stderr`` with ``data``, last ``exit`` with ``exitCode``."""

    type: Literal["stdout", "stderr", "exit"]
    data: str
    exitCode: int


class Deployment(TypedDict, total=False):
    id: str
    app: str
    env: str
    version: int
    state: str
    sandbox: Optional[str]
    volume: str
    command: str
    url: str
    error: Optional[str]
    createdAt: str
    updatedAt: str


class DeploymentLogs(TypedDict):
    deployment: Deployment
    stdout: str
    stderr: str


class Project(TypedDict):
    id: str
    name: str
    createdAt: str


class ApiKey(TypedDict):
    id: str
    key: str
    projectId: str


class ApiKeyInfo(TypedDict):
    id: str
    name: str
    projectId: str
    createdAt: str


class CreateProjectResult(TypedDict):
    project: Project
    apiKey: ApiKey


class Health(TypedDict, total=False):
    status: str
    version: str
    region: str
    pid: int
    warmSandboxes: Dict[str, int]
    pool: Dict[str, Any]


class UploadStatus(TypedDict):
    id: str
    path: str
    length: Optional[int]
    offset: int
    state: str
    expiresAt: str


class BatchFile(TypedDict, total=False):
    """One file of ``write_many``: ``content`` is ``str`` (UTF-8) or ``bytes``."""

    path: str
    content: Union[str, bytes]
    mode: int
    if_match: str
    if_none_match: Literal["*"]


@dataclass
class ExecResult:
    """What a foreground ``exec`` gives back: all of its output and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = -1


@dataclass
class UploadResult:
    """A finished resumable upload: where the file is, its size, and the upload's URL."""

    path: str
    size: int
    upload_url: str = field(default="")
