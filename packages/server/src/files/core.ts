/**
 * Whole-file write and read on a mounted volume. Writes stream into a temp file in the target's
 * directory, are fsynced and renamed over the target: a reader sees the old or the new content,
 * never a mix, and a write that does not fit leaves the old content as it was.
 */
import { constants as fsc, type Stats } from "node:fs";
import { mkdir, open, readdir, rename, rm, statfs, lstat, readlink, type FileHandle } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { randomBytes } from "node:crypto";
import {
  CairnError,
  RESERVED_DIR,
  normalizeVolumePath,
  formatSize,
  type FileEntry,
  type FileType,
  type WriteFileResult,
} from "@cairn/protocol";
import { quick, readSmallFile } from "./quick-fs.js";
import { resolveInVolume, type Resolved } from "./resolve.js";
import { FileWriter } from "@cairn/blockio";
import { bodyBytesRead } from "./body-gc.js";


export function etagOf(st: Stats): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${Math.floor(st.mtimeMs * 1000).toString(16)}"`;
}

/**
 * Iterate a body without destroying it when the loop stops early (a full volume, a failed
 * precondition): the route then drains the rest, so the client reads the error instead of a reset.
 * The bytes of a request body are counted, so its dead socket buffers are collected young
 * (body-gc.ts).
 */
export function chunksOf<T extends AsyncIterable<Uint8Array> | Iterable<Uint8Array>>(body: T): AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  const it = (body as { iterator?: (o: { destroyOnReturn: boolean }) => AsyncIterable<Uint8Array> }).iterator;
  return typeof it === "function" ? counted(it.call(body, { destroyOnReturn: false })) : body;
}
async function* counted(chunks: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of chunks) {
    bodyBytesRead(chunk.byteLength);
    yield chunk;
  }
}

/**
 * The one rule for modes written through the file API (writes, batches, uploads, edits, archives):
 * permission and sticky bits only. setuid/setgid never survive, asked for or kept from an older
 * file: a sandbox must not find a privilege-raising program that cairnd made for it.
 */
export function safeMode(mode: number): number {
  return mode & 0o1777;
}

export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

export function mapFsError(err: unknown, path: string): never {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") throw new CairnError("PATH_NOT_FOUND", `${path} does not exist`);
  if (code === "ELOOP") throw new CairnError("INVALID_PATH", `${path} changed while it was being resolved; retry`);
  if (code === "EISDIR") throw new CairnError("NOT_A_FILE", `${path} is a directory`);
  if (code === "ENAMETOOLONG") throw new CairnError("INVALID_PATH", `${path} is too long`);
  throw err;
}

const isReserved = (volumePath: string) => volumePath === `/${RESERVED_DIR}` || volumePath.startsWith(`/${RESERVED_DIR}/`);

/**
 * Normalise a path from a request and resolve it inside the volume. `/.cairn` (in-flight uploads
 * and staged writes) is not reachable through the API, also not through a symlink.
 */
export async function resolvePath(root: string, rawPath: string, options: { followLast: boolean }): Promise<Resolved> {
  const path = normalizeVolumePath(rawPath);
  if (isReserved(path)) throw new CairnError("INVALID_PATH", `${path} is reserved for cairnd's in-flight uploads; use another path`);
  const resolved = await resolveInVolume(root, path, options);
  if (isReserved(resolved.volumePath)) {
    throw new CairnError("INVALID_PATH", `${path} leads to ${resolved.volumePath}, which is reserved for cairnd; use another path`);
  }
  return resolved;
}

export function fileTypeOf(st: Stats): FileType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isBlockDevice()) return "block-device";
  return "char-device";
}

/** The wire form of an lstat result. `hostPath` is only read for a symlink's target. */
export async function entryOf(volumePath: string, hostPath: string, st: Stats): Promise<FileEntry> {
  const entry: FileEntry = {
    path: volumePath,
    name: volumePath === "/" ? "" : basename(volumePath),
    type: fileTypeOf(st),
    size: st.size,
    mode: st.mode & 0o7777,
    mtime: st.mtime.toISOString(),
    uid: st.uid,
    gid: st.gid,
  };
  if (st.isFile()) entry.etag = etagOf(st);
  if (st.isSymbolicLink()) entry.target = await readlink(hostPath).catch(() => "");
  return entry;
}

export interface WriteOptions {
  /** Declared body length, if known: a body larger than the free space is refused before any byte lands. */
  contentLength?: number | undefined;
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
  volumeName: string;
  /** Mode of a new file (default 0644); a replaced file keeps its mode and owner. */
  mode?: number;
  /** Called with the volume path right before the rename makes the write visible (watch events). */
  onCommit?: (volumePath: string, created: boolean) => void;
}

export async function writeFile(
  root: string,
  rawPath: string,
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: WriteOptions,
): Promise<WriteFileResult> {
  const path = normalizeVolumePath(rawPath);
  if (path === "/") throw new CairnError("NOT_A_FILE", "Cannot write to the volume root; give a file path such as /hello.txt");
  const target = await resolvePath(root, path, { followLast: true });
  const dir = dirname(target.hostPath);
  let existing: Stats | undefined;
  try {
    existing = await lstat(target.hostPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") mapFsError(err, path);
  }
  if (existing && !existing.isFile()) throw new CairnError("NOT_A_FILE", `${path} exists and is not a regular file`);
  checkPreconditions(path, existing, options);
  if (options.contentLength !== undefined) {
    const f = await statfs(root);
    // The old file stays until the rename, so its space does not count as free.
    const free = f.bavail * f.bsize;
    if (options.contentLength > free) {
      throw new CairnError(
        "QUOTA_EXCEEDED",
        `Volume "${options.volumeName}" has ${formatSize(free)} free; this write needs ${formatSize(options.contentLength)}. Grow the volume or free space.`,
      );
    }
  }
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    if (isNoSpace(err)) throw quotaError(options.volumeName, err);
    mapFsError(err, path);
  }
  let tmp: string;
  try {
    tmp = await tempPath(root);
  } catch (err) {
    if (isNoSpace(err)) throw quotaError(options.volumeName, err);
    throw err;
  }
  liveTemps.add(tmp);
  let fh: FileHandle | undefined;
  let writer: FileWriter | undefined;
  let size = 0;
  try {
    fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, safeMode(options.mode ?? 0o644));
    // Replacing content keeps who may use the file: a sandbox user's file stays theirs.
    if (existing) {
      await fh.chown(existing.uid, existing.gid);
      await fh.chmod(safeMode(existing.mode));
    } else if (options.mode !== undefined) await fh.chmod(safeMode(options.mode));
    writer = new FileWriter(fh, tmp, 0);
    for await (const chunk of chunksOf(body)) await writer.write(chunk);
    await writer.flush();
    size = writer.position;
    await writer.close();
    writer = undefined;
    await fh.datasync();
    await fh.close();
    fh = undefined;
    // Compare-and-swap: re-check right before the rename so a concurrent writer is not overwritten silently.
    let current: Stats | undefined;
    try {
      current = await lstat(target.hostPath);
    } catch {
      current = undefined;
    }
    checkPreconditions(path, current, options);
    options.onCommit?.(target.volumePath, current === undefined);
    await rename(tmp, target.hostPath);
    await syncDir(dir);
  } catch (err) {
    await writer?.close();
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    if (isNoSpace(err)) throw quotaError(options.volumeName, err);
    if (err instanceof CairnError) throw err;
    mapFsError(err, path);
  } finally {
    liveTemps.delete(tmp);
  }
  const st = await lstat(target.hostPath);
  return { path: target.volumePath, size, etag: etagOf(st), created: existing === undefined };
}

/**
 * Where a single-file write is assembled: `/.cairn/tmp` of the same filesystem, so the rename into
 * place stays atomic, and an upload in progress (or one cut short by a crash) never shows in the
 * user's directories, to a listing or to a sandbox. Leftovers of a crash are swept once they are
 * an hour old (looked for at most every ten minutes per volume).
 */
const TEMP_STALE_MS = 60 * 60 * 1000;
const TEMP_SWEEP_EVERY_MS = 10 * 60 * 1000;
const liveTemps = new Set<string>();
const lastSweep = new Map<string, number>();

async function tempPath(root: string): Promise<string> {
  const dir = join(root, RESERVED_DIR, "tmp");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  if (now - (lastSweep.get(dir) ?? 0) > TEMP_SWEEP_EVERY_MS) {
    lastSweep.set(dir, now);
    void sweepTemps(dir, now).catch(() => undefined);
  }
  return join(dir, `${now.toString(36)}-${randomBytes(8).toString("hex")}`);
}

async function sweepTemps(dir: string, now: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const born = parseInt(name.split("-")[0] ?? "", 36);
    if (liveTemps.has(path) || !(now - born > TEMP_STALE_MS)) continue;
    await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}

export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export function quotaError(volumeName: string, cause: unknown): CairnError {
  return new CairnError(
    "QUOTA_EXCEEDED",
    `Volume "${volumeName}" is full; nothing was changed. Grow the volume (cairn volume resize) or free space.`,
    { cause },
  );
}

export function checkPreconditions(path: string, st: Stats | undefined, options: Pick<WriteOptions, "ifMatch" | "ifNoneMatch">): void {
  const etag = st ? etagOf(st) : undefined;
  if (options.ifNoneMatch !== undefined) {
    const tags = options.ifNoneMatch.split(",").map((t) => t.trim());
    if (st && (tags.includes("*") || (etag && tags.includes(etag)))) {
      throw new CairnError("PRECONDITION_FAILED", `${path} already exists (If-None-Match)`);
    }
  }
  if (options.ifMatch !== undefined) {
    const tags = options.ifMatch.split(",").map((t) => t.trim());
    if (!st || !(tags.includes("*") || (etag && tags.includes(etag)))) {
      throw new CairnError("PRECONDITION_FAILED", `${path} has changed since you read it (If-Match); read it again and retry`);
    }
  }
}

export interface OpenedFile {
  fh: FileHandle;
  stat: Stats;
  path: string;
  etag: string;
}

async function regularFile(root: string, path: string): Promise<{ hostPath: string; volumePath: string; st: Stats }> {
  const target = await resolvePath(root, path, { followLast: true });
  let st: Stats;
  try {
    st = target.stat ?? (await lstat(target.hostPath));
  } catch (err) {
    mapFsError(err, path);
  }
  if (st.isDirectory()) throw new CairnError("NOT_A_FILE", `${path} is a directory; list it instead`);
  if (!st.isFile()) throw new CairnError("NOT_A_FILE", `${path} is not a regular file`);
  return { hostPath: target.hostPath, volumePath: target.volumePath, st };
}

/**
 * A small regular file's whole content in one go (quick-fs.ts), or undefined: then `openForRead`
 * and stream it. Errors are those of `openForRead`.
 */
export async function readSmall(root: string, rawPath: string, maxBytes: number): Promise<{ data: Buffer; stat: Stats; etag: string } | undefined> {
  if (!quick()) return undefined;
  const path = normalizeVolumePath(rawPath);
  const { hostPath, st } = await regularFile(root, path);
  if (st.size > maxBytes) return undefined;
  const got = readSmallFile(hostPath, st.ino, maxBytes);
  return got && { ...got, etag: etagOf(got.stat) };
}

/** Open a regular file for reading. Special files (fifos, devices, sockets) are never opened. */
export async function openForRead(root: string, rawPath: string): Promise<OpenedFile> {
  const path = normalizeVolumePath(rawPath);
  const target = await regularFile(root, path);
  const st = target.st;
  let fh: FileHandle;
  try {
    fh = await open(target.hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    mapFsError(err, path);
  }
  const fst = await fh.stat();
  if (!fst.isFile() || fst.ino !== st.ino) {
    await fh.close();
    throw new CairnError("INVALID_PATH", `${path} changed while it was being opened; retry`);
  }
  return { fh, stat: fst, path: target.volumePath, etag: etagOf(fst) };
}

/** Parse a single `Range: bytes=a-b` header against a size. Multiple ranges are not supported (the whole file is sent). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) {
    if (header.includes(",")) return undefined;
    throw new CairnError("INVALID_RANGE", `Range ${header} is not of the form bytes=start-end`, { meta: { size } });
  }
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) {
    throw new CairnError("INVALID_RANGE", `Range ${header} is outside the file (size ${size})`, { meta: { size } });
  }
  return { start, end };
}
