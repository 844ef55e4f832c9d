"""Cairn: persistent volumes for sandboxes.

Blocking (``Cairn``, ``Volume``, ``Sandbox``…) and asyncio (``AsyncCairn``, ``AsyncVolume``,
``AsyncSandbox``…) clients with the same methods; the blocking one is generated from the async one.

Example::

    from cairn import Sandbox, Volume
    volume = Volume.from_name("team-data", create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\\n")
    with Sandbox.create(volumes=[volume.mount("/workspace/shared")]) as sandbox:
        print(sandbox.files.read("/workspace/shared/hello.txt").strip())
"""
from __future__ import annotations

from ._async.client import AsyncCairn
from ._async.deployments import AsyncDeployments
from ._async.files import AsyncVolumeFiles
from ._async.projects import AsyncProjects
from ._async.sandboxes import AsyncSandbox, AsyncSandboxes, AsyncSandboxFiles, AsyncSandboxProcess
from ._async.volumes import AsyncCheckpoints, AsyncVolume, AsyncVolumes
from ._config import ClientConfig
from ._errors import (
    ERROR_CODES,
    AuthError,
    CairnError,
    CairnTimeoutError,
    CapacityError,
    ConflictError,
    DeployFailedError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PreconditionFailedError,
    UnavailableError,
)
from ._paths import normalize_volume_path
from ._sync.client import Cairn
from ._sync.deployments import Deployments
from ._sync.files import VolumeFiles
from ._sync.projects import Projects
from ._sync.sandboxes import Sandbox, Sandboxes, SandboxFiles, SandboxProcess
from ._sync.volumes import Checkpoints, Volume, Volumes
from ._types import (
    AccessMode,
    ApiKey,
    ApiKeyInfo,
    ArchiveFormat,
    Attachment,
    BatchFile,
    BatchWriteResult,
    Checkpoint,
    CreateProjectResult,
    Deployment,
    EditResult,
    ExecEvent,
    ExecResult,
    ExtractResult,
    FileEntry,
    FileList,
    Filesystem,
    Health,
    MountRequest,
    ProcessInfo,
    Project,
    ReplaceResult,
    SandboxInfo,
    SandboxNetwork,
    ExposedPort,
    SearchResult,
    SignedUrl,
    UploadResult,
    UploadStatus,
    VolumeInfo,
    VolumeList,
    WatchMessage,
    WriteFileResult,
)

__version__ = "0.1.0"

__all__ = [
    "Cairn", "AsyncCairn", "ClientConfig",
    "Volume", "AsyncVolume", "Volumes", "AsyncVolumes", "VolumeFiles", "AsyncVolumeFiles",
    "Checkpoints", "AsyncCheckpoints",
    "Sandbox", "AsyncSandbox", "Sandboxes", "AsyncSandboxes", "SandboxFiles", "AsyncSandboxFiles",
    "SandboxProcess", "AsyncSandboxProcess",
    "Deployments", "AsyncDeployments", "Projects", "AsyncProjects",
    "CairnError", "InvalidArgumentError", "AuthError", "NotFoundError", "ConflictError",
    "PreconditionFailedError", "CapacityError", "DeployFailedError", "UnavailableError",
    "CairnTimeoutError", "InternalError", "ERROR_CODES",
    "normalize_volume_path",
    "AccessMode", "ApiKey", "ApiKeyInfo", "ArchiveFormat", "Attachment", "BatchFile", "BatchWriteResult",
    "Checkpoint", "CreateProjectResult", "Deployment", "EditResult", "ExecEvent", "ExecResult",
    "ExtractResult", "FileEntry", "FileList", "Filesystem", "Health", "MountRequest", "ProcessInfo",
    "Project", "ReplaceResult", "SandboxInfo", "SandboxNetwork", "ExposedPort", "SearchResult", "SignedUrl", "UploadResult",
    "UploadStatus", "VolumeInfo", "VolumeList", "WatchMessage", "WriteFileResult",
]
