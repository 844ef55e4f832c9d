/**
 * Archives of a directory, both ways. Download: `tar` / `tar.gz` (GNU tar, run in the volume) or
 * `zip` (yazl, fed by our own walk), streamed out; symlinks are stored as links, never followed,
 * and fifos or devices are recorded (tar) or left out (zip), never read. Upload: extracted into a staging
 * directory on the volume, sanitised, then moved into place — all or nothing, also when the
 * volume fills up.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { constants as fsc, createWriteStream, type Dirent, type Stats } from "node:fs";
import { lstat, mkdir, open, opendir, readlink, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { ZipFile } from "yazl";
import { CairnError, RESERVED_DIR, normalizeVolumePath, type ArchiveFormat, type ExtractResult } from "@cairn/protocol";
import { chunksOf, isNoSpace, quotaError, resolvePath, syncDir } from "./core.js";
import { lstatOrUndefined, makeDirectory } from "./ops.js";
import { commitTree, sanitizeTree, Staging, syncFilesystem } from "./staging.js";
import { saysNoSpace } from "../host/exec.js";

export const ARCHIVE_CONTENT_TYPES: Record<ArchiveFormat, string> = {
  tar: "application/x-tar",
  "tar.gz": "application/gzip",
  zip: "application/zip",
};

export interface ArchiveStream {
  stream: Readable;
  /** A file name for Content-Disposition. */
  name: string;
  /** Stop the archiver (if still running). Call when the response closes. */
  stop(): void;
}

/**
 * Stream an archive of a directory (its contents at the archive's root) or of one file. The
 * returned stream ends only after the archiver exited cleanly; a failure mid-way destroys it, so
 * a client sees a broken transfer instead of a silently short archive.
 */
export async function createArchive(root: string, rawPath: string, format: ArchiveFormat, volumeName: string): Promise<ArchiveStream> {
  const path = normalizeVolumePath(rawPath);
  const target = await resolvePath(root, path, { followLast: true });
  const st = await lstatOrUndefined(target.hostPath, path);
  if (!st) throw new CairnError("PATH_NOT_FOUND", `${path} does not exist`);
  if (!st.isDirectory() && !st.isFile()) throw new CairnError("NOT_A_FILE", `${path} is neither a directory nor a regular file`);
  const cwd = st.isDirectory() ? target.hostPath : dirname(target.hostPath);
  const members = st.isDirectory() ? ["."] : [basename(target.hostPath)];
  const atRoot = st.isDirectory() && target.volumePath === "/";
  if (format === "zip") return zipArchive(target.hostPath, st.isDirectory(), atRoot, path === "/" ? volumeName : basename(path));
  const args = ["-c", "-f", "-", "--one-file-system"];
  if (format === "tar.gz") args.push("-z");
  // lost+found belongs to the filesystem, not to the data (the checkpoint export leaves it out too).
  if (atRoot) args.push(`--exclude=./${RESERVED_DIR}`, "--exclude=./lost+found");
  args.push("--", ...members.map((m) => (m === "." ? "." : `./${m}`)));
  const child: ChildProcess = spawn("tar", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  let stderr = "";
  child.stderr!.on("data", (d) => {
    if (stderr.length < 4000) stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on("error", () => resolve(-1));
    child.on("close", (code) => resolve(code));
  });
  child.stdout!.pipe(out, { end: false });
  child.stdout!.on("end", () => {
    void exited.then((code) => {
      // 1 = "some files changed while being read": still a complete archive.
      if (code === 0 || code === 1) out.end();
      else out.destroy(new Error(`tar exited with ${code}: ${stderr.trim().slice(0, 500)}`));
    });
  });
  const base = st.isDirectory() ? (path === "/" ? volumeName : basename(path)) : basename(path);
  return {
    stream: out,
    name: `${base}.${format}`,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/**
 * A zip, written by yazl as the tree is walked (Info-ZIP's zip cannot stream stored entries to a
 * pipe). Entries are fed a few at a time, so memory holds the central directory, not the files.
 * Regular files are opened O_NOFOLLOW and checked to be regular; other special files are left out.
 */
function zipArchive(hostPath: string, isDir: boolean, atRoot: boolean, base: string): ArchiveStream {
  const zip = new ZipFile();
  let stopped = false;
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  zip.outputStream.pipe(out);
  zip.outputStream.on("error", (err) => out.destroy(err));
  // yazl reports a file it could not read on the ZipFile itself; unhandled, that would end cairnd.
  zip.on("error", (err: Error) => {
    if (!stopped) out.destroy(err);
  });
  let started = 0;
  const waiters: (() => void)[] = [];
  const open_ = new Set<import("node:fs").ReadStream>();
  const lazyFile = (path: string, rel: string, st: Stats) =>
    zip.addReadStreamLazy(rel, { mtime: st.mtime, mode: st.mode, size: st.size }, (cb) => {
      started++;
      waiters.shift()?.();
      void open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK)
        .then(async (fh) => {
          const fst = await fh.stat();
          if (!fst.isFile() || fst.ino !== st.ino) {
            await fh.close();
            throw new Error(`${rel} changed while the archive was written`);
          }
          if (stopped) {
            await fh.close();
            throw new Error("stopped");
          }
          const stream = fh.createReadStream({ highWaterMark: 1024 * 1024 });
          // A file left open would keep the volume busy after the lease is gone.
          open_.add(stream);
          stream.once("close", () => open_.delete(stream));
          cb(null, stream);
        })
        .catch((err: Error) => cb(err, undefined as never));
    });
  let added = 0;
  const add = async (path: string, rel: string): Promise<void> => {
    if (stopped) return;
    const st = await lstat(path);
    if (st.isDirectory()) {
      if (rel !== "") zip.addEmptyDirectory(rel, { mtime: st.mtime, mode: st.mode });
      const handle = await opendir(path, { bufferSize: 256 });
      for await (const d of handle as AsyncIterable<Dirent>) {
        if (atRoot && rel === "" && (d.name === RESERVED_DIR || d.name === "lost+found")) continue;
        await add(join(path, d.name), rel === "" ? d.name : `${rel}/${d.name}`);
      }
    } else if (st.isFile()) {
      // Keep at most 32 files queued ahead of the one being written.
      while (added - started > 32 && !stopped) await new Promise<void>((r) => waiters.push(r));
      added++;
      lazyFile(path, rel, st);
    } else if (st.isSymbolicLink()) {
      zip.addBuffer(Buffer.from(await readlink(path)), rel, { mtime: st.mtime, mode: st.mode, compress: false });
    }
  };
  void (isDir ? add(hostPath, "") : add(hostPath, basename(hostPath)))
    .then(() => zip.end())
    .catch((err: Error) => out.destroy(err));
  return {
    stream: out,
    name: `${base}.zip`,
    stop: () => {
      stopped = true;
      for (const w of waiters.splice(0)) w();
      for (const s of open_) s.destroy();
      zip.outputStream.unpipe(out);
    },
  };
}

/**
 * Extract an uploaded archive into a directory (created if missing), merging with what is there.
 * All or nothing: nothing is visible until the whole archive was extracted, sanitised (devices,
 * fifos and sockets dropped, setuid/setgid bits cleared) and synced.
 */
export async function extractArchive(
  root: string,
  rawPath: string,
  format: ArchiveFormat,
  body: Readable,
  options: { volumeName: string; onCommit?: (volumePath: string, created: boolean) => void },
): Promise<ExtractResult> {
  const path = normalizeVolumePath(rawPath);
  const target = await resolvePath(root, path, { followLast: true });
  const existing = await lstatOrUndefined(target.hostPath, path);
  if (existing && !existing.isDirectory()) throw new CairnError("NOT_A_DIRECTORY", `${path} exists and is not a directory`);
  const staging = await Staging.create(root, "staging");
  try {
    const tree = join(staging.dir, "tree");
    await mkdir(tree);
    try {
      if (format === "zip") await unzipInto(body, staging.dir, tree);
      else await untarInto(body, tree, format === "tar.gz");
    } catch (err) {
      if (isNoSpace(err)) throw quotaError(options.volumeName, err);
      throw err;
    }
    const stats = await sanitizeTree(tree);
    if (target.volumePath === "/" && (await lstat(join(tree, RESERVED_DIR)).catch(() => undefined))) {
      await rm(join(tree, RESERVED_DIR), { recursive: true, force: true });
      stats.skipped.push(RESERVED_DIR);
    }
    await syncFilesystem(tree);
    try {
      if (!existing) {
        // A new directory: the whole tree moves in with one rename.
        await makeDirectory(root, dirname(target.volumePath));
        options.onCommit?.(target.volumePath, true);
        await rename(tree, target.hostPath);
        await syncDir(dirname(target.hostPath));
      } else {
        await commitTree({
          staged: tree,
          targetHost: target.hostPath,
          targetPath: target.volumePath,
          backupDir: join(staging.dir, "backup"),
          ...(options.onCommit ? { onCommit: options.onCommit } : {}),
        });
      }
    } catch (err) {
      if (isNoSpace(err)) throw quotaError(options.volumeName, err);
      throw err;
    }
    return { path: target.volumePath, ...stats };
  } finally {
    await staging.discard();
  }
}

/**
 * Copy a request body into a writable with backpressure; the caller ends the writable. Unlike
 * pipeline(), a failing writable does not destroy the body: the route drains it and the client
 * reads the error.
 */
async function copyInto(body: Readable, to: Writable): Promise<void> {
  let failed: Error | undefined;
  const onError = (err: Error) => (failed ??= err);
  to.on("error", onError);
  try {
    for await (const chunk of chunksOf(body) as AsyncIterable<Uint8Array>) {
      if (failed) throw failed;
      if (!to.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            to.off("drain", done);
            to.off("error", done);
            to.off("close", done);
            resolve();
          };
          to.on("drain", done);
          to.on("error", done);
          to.on("close", done);
        });
      }
      if (failed) throw failed;
    }
  } finally {
    to.off("error", onError);
  }
}

function run(child: ChildProcess, what: string): Promise<{ code: number | null; stderr: string }> {
  let stderr = "";
  child.stderr?.on("data", (d) => {
    if (stderr.length < 8000) stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.on("error", (err) => reject(new Error(`cannot run ${what}: ${err.message}`)));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

function archiveError(tool: string, stderr: string): CairnError {
  if (saysNoSpace(stderr) || /write error/i.test(stderr)) {
    return new CairnError("QUOTA_EXCEEDED", "The archive does not fit in the volume; nothing was changed. Grow the volume or free space.");
  }
  // Skip tar's notes ("Removing leading `/'") and its closing line for the actual error.
  const lines = stderr.trim().split("\n").filter((l) => l.trim() !== "" && !/Removing leading|Exiting with failure status/.test(l));
  const first = lines[0] ?? stderr.trim().split("\n")[0] ?? "";
  return new CairnError("INVALID_ARCHIVE", `${tool} could not extract the upload, nothing was changed: ${first.slice(0, 300)}`);
}

async function untarInto(body: Readable, dir: string, gzip: boolean): Promise<void> {
  // As root, tar would restore owners and setuid bits: owners are dropped here, setuid bits by sanitizeTree.
  const args = ["-x", "-f", "-", "-C", dir, "--no-same-owner", "--delay-directory-restore"];
  if (gzip) args.push("-z");
  const child = spawn("tar", args, { stdio: ["pipe", "ignore", "pipe"] });
  const done = run(child, "tar");
  let bodyError: unknown;
  try {
    await copyInto(body, child.stdin!);
    child.stdin!.end();
  } catch (err) {
    // EPIPE: tar stopped reading (bad archive, disk full); its exit status says why.
    if ((err as NodeJS.ErrnoException).code !== "EPIPE") bodyError = err;
  }
  if (bodyError) {
    child.kill("SIGKILL");
    await done;
    throw new CairnError("INVALID_REQUEST", `The upload was interrupted: ${(bodyError as Error).message}; nothing was changed`, { cause: bodyError });
  }
  const { code, stderr } = await done;
  if (code !== 0) throw archiveError("tar", stderr);
}

async function unzipInto(body: Readable, stagingDir: string, dir: string): Promise<void> {
  // zip keeps its index at the end: spool the upload into the staging dir (it counts against the
  // volume like the result will), then extract.
  const file = join(stagingDir, "upload.zip");
  const out = createWriteStream(file, { flags: "wx", highWaterMark: 1024 * 1024 });
  try {
    await copyInto(body, out);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    out.destroy();
    if (isNoSpace(err)) throw err;
    throw new CairnError("INVALID_REQUEST", `The upload was interrupted: ${(err as Error).message}; nothing was changed`, { cause: err });
  }
  const child = spawn("unzip", ["-q", "-o", file, "-d", dir], { stdio: ["ignore", "ignore", "pipe"] });
  const { code, stderr } = await run(child, "unzip");
  await rm(file, { force: true });
  // 1 = warnings only (e.g. a "../" component skipped): what was safe is extracted.
  if (code !== 0 && code !== 1) throw archiveError("unzip", stderr);
}
