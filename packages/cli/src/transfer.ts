/**
 * Moving files between this machine and a volume: the local tar that packs and unpacks
 * directories (it keeps modes, mtimes and symlinks), the walk that sizes a directory for the
 * progress bar, and the record of unfinished resumable uploads so a second `cairn volume put`
 * continues where the first one stopped.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import type { Dirent, Stats } from "node:fs";
import { lstat, mkdir, open, opendir, readFile, readlink, rename, rm, writeFile, type FileHandle } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { UsageError } from "./errors.js";

/**
 * The exact size of `tar -c -f - -C dir .` (GNU tar's default format), for a progress bar that
 * ends at 100%: a 512-byte header per entry (plus a long-name entry for a name or link target over
 * 100 bytes), each file's data padded to 512 bytes (a hard link's second name has none),
 * two zero blocks at the end, the whole padded to tar's records (10 KiB unless `tar -b` says).
 */
export async function treeSize(dir: string, options: { recordBytes?: number } = {}): Promise<{ bytes: number; files: number }> {
  const record = options.recordBytes ?? 10240;
  const BLOCK = 512;
  const pad = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
  const longName = (name: string) => (Buffer.byteLength(name) > 100 ? BLOCK + pad(Buffer.byteLength(name) + 1) : 0);
  const seenInodes = new Set<string>();
  let bytes = 0;
  let files = 0;
  const entry = async (path: string, name: string): Promise<void> => {
    const st = await lstat(path);
    if (st.isDirectory()) {
      bytes += BLOCK + longName(name + "/");
      const handle = await opendir(path);
      const names: string[] = [];
      for await (const e of handle as AsyncIterable<Dirent>) names.push(e.name);
      for (const n of names) await entry(join(path, n), `${name}/${n}`);
      return;
    }
    bytes += BLOCK + longName(name);
    if (st.isSymbolicLink()) {
      bytes += longName(await readlink(path));
      return;
    }
    if (!st.isFile()) return; // fifos, devices, sockets: a header only
    const inode = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && seenInodes.has(inode)) {
      bytes += longName(name); // a hard link names the first path as its target
      return;
    }
    if (st.nlink > 1) seenInodes.add(inode);
    files++;
    bytes += pad(st.size);
  };
  await entry(dir, ".");
  bytes += 2 * BLOCK;
  return { bytes: Math.ceil(bytes / record) * record, files };
}

export interface Tar {
  child: ChildProcess;
  /** Resolves when tar exited successfully; rejects with its message otherwise. */
  done: Promise<void>;
}

function tar(args: string[], stdio: ["ignore", "pipe", "pipe"] | ["pipe", "ignore", "pipe"]): Tar {
  const child = spawn("tar", args, { stdio });
  let stderr = "";
  child.stderr!.on("data", (d) => {
    if (stderr.length < 4000) stderr += d;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => reject(new UsageError(`Cannot run tar (needed to move directories): ${err.message}`)));
    child.on("close", (code) => {
      // 1: "file changed as we read it" — the archive is still complete.
      if (code === 0 || (code === 1 && args[0] === "-c")) resolve();
      else reject(new Error(`tar exited with ${code}: ${stderr.trim().split("\n").slice(0, 3).join("; ")}`));
    });
  });
  return { child, done };
}

/** `tar -c` of a directory's contents, streamed from stdout. */
export function packDirectory(dir: string): Tar & { stream: Readable } {
  const t = tar(["-c", "-f", "-", "-C", dir, "."], ["ignore", "pipe", "pipe"]);
  return { ...t, stream: t.child.stdout! };
}

/** `tar -x` into a directory, fed through stdin. */
export function unpackInto(dir: string): Tar & { stdin: Writable } {
  const t = tar(["-x", "-f", "-", "-C", dir], ["pipe", "ignore", "pipe"]);
  return { ...t, stdin: t.child.stdin! };
}

export async function ensureDirectory(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st && !st.isDirectory()) throw new UsageError(`${path} exists and is not a directory`);
  if (!st) await mkdir(path, { recursive: true });
}

// ---------------------------------------------------------------------------------------------
// Unfinished resumable uploads: ~/.cache/cairn/uploads.json

const stateFile = () => join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "cairn", "uploads.json");

/** The same local file (path, size, mtime, inode) to the same place: the same upload. */
export function uploadKey(server: string, volumeId: string, remotePath: string, localPath: string, st: Stats): string {
  return createHash("sha256").update(JSON.stringify([server, volumeId, remotePath, localPath, st.size, st.mtimeMs, st.ino])).digest("hex");
}

async function readState(): Promise<Record<string, { url: string; at: string }>> {
  try {
    return JSON.parse(await readFile(stateFile(), "utf8")) as Record<string, { url: string; at: string }>;
  } catch {
    return {};
  }
}

async function writeState(state: Record<string, { url: string; at: string }>): Promise<void> {
  const file = stateFile();
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}`;
  await writeFile(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(tmp, file);
}

export async function rememberedUpload(key: string): Promise<string | undefined> {
  return (await readState())[key]?.url;
}

export async function rememberUpload(key: string, url: string | undefined): Promise<void> {
  const state = await readState();
  // Uploads expire on the server after a day without progress: forget older ones.
  const old = Date.now() - 2 * 24 * 3600 * 1000;
  for (const [k, v] of Object.entries(state)) if (Date.parse(v.at) < old) delete state[k];
  if (url === undefined) delete state[key];
  else state[key] = { url, at: new Date().toISOString() };
  await writeState(state).catch(() => undefined); // losing the record only loses the resume
}

/**
 * Write a stream into an open file handle, chunk by chunk (awaited, so backpressure is natural).
 * A stream made with `autoClose: false` never reports that it finished; this has no such trap.
 */
export async function writeToFile(file: import("node:fs/promises").FileHandle, source: AsyncIterable<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of source) {
    let off = 0;
    while (off < chunk.byteLength) off += (await file.write(chunk, off, chunk.byteLength - off)).bytesWritten;
    bytes += chunk.byteLength;
  }
  return bytes;
}

/**
 * Write `target` through a temp file beside it (one filesystem, so the rename is atomic): `fill`
 * writes it, then it is synced and renamed. Never a partial file under the target's name; the temp
 * file goes on any failure. The file is opened before `fill` runs, so a bad path fails fast with a
 * usage error that names it (`label`, e.g. "-o out.tar").
 */
export async function writeAtomically<T>(target: string, fill: (file: FileHandle) => Promise<T>, label = target): Promise<T> {
  const partial = join(dirname(target), `.${basename(target)}.cairn-partial-${process.pid}`);
  const file = await open(partial, "w", 0o644).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`Cannot write ${label}: ${err.code ?? err.message}`);
  });
  let complete = false;
  try {
    const result = await fill(file);
    await file.sync();
    await file.close();
    await rename(partial, target);
    complete = true;
    return result;
  } finally {
    if (!complete) {
      await file.close().catch(() => undefined);
      await rm(partial, { force: true });
    }
  }
}
