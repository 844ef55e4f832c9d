/**
 * The Cairn SDK: persistent volumes for sandboxes.
 *
 * @example
 * import { Volume } from "@cairn/sdk";
 * const volume = await Volume.fromName("team-data", { createIfMissing: true });
 * await volume.files.write("/hello.txt", "persistent\n");
 * console.log((await volume.files.readText("/hello.txt")).trim());
 */
export { Cairn } from "./client.js";
export { Volume, Volumes, VolumeFiles, Checkpoints } from "./volume.js";
export type { CreateVolumeOptions, ListVolumesOptions, ResizeOptions, FileData, VolumeInfo, WriteFileResult, AccessMode, Filesystem, Checkpoint } from "./volume.js";
export { Sandbox, Sandboxes, SandboxProcess } from "./sandbox.js";
export { Deployments, type Deployment } from "./deployments.js";
export { Images, type Image, type PullEvent, type PullOptions } from "./images.js";
export { Projects, type ApiKey, type ApiKeyInfo, type CreateProjectResult, type Project } from "./projects.js";
export type { CreateSandboxOptions, ExecOptions, ExecResult, SandboxInfo, Attachment, MountRequest, ProcessInfo, ExposedPort, SandboxNetwork, SandboxNetworkRequest } from "./sandbox.js";
export type {
  BatchFileInput,
  WritePreconditions,
  SearchOptions,
  ReplaceOptions,
  WatchMessage,
  WatchOptions,
  UploadOptions,
  UploadResult,
  FileEntry,
  FileList,
  MkdirResult,
  EditResult,
  BatchWriteResult,
  SearchResult,
  ReplaceResult,
  ExtractResult,
  SignedUrl,
  WatchEvent,
  ArchiveFormat,
} from "./files/volume-files.js";
export { resolveClientOptions, type ClientOptions, type RequestOptions } from "./transport/http.js";
export { CairnError, ERROR_CODES, type ErrorCode, type Problem } from "@cairn/protocol";
export { LocalFileChangedError } from "@cairn/blockio/errors";
