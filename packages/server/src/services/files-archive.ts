/**
 * Archives of a directory, both ways. Download: `tar` / `tar.gz` (GNU tar) or `zip` (Info-ZIP)
 * run in the volume and streamed out; symlinks are stored as links, never followed, and fifos or
 * devices are recorded (tar) or skipped (zip), never read. Upload: extracted into a staging
 * directory on the volume, sanitised, then moved into place — all or nothing, also when the
 * volume fills up.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CairnError, RESERVED_DIR, normalizeVolumePath, type ArchiveFormat, type ExtractResult } from "@cairn/protocol";
import { isNoSpace, quotaError, resolvePath, syncDir } from "./files.js";
import { lstatOrUndefined, makeDirectory } from "./files-ops.js";
import { commitTree, sanitizeTree, Staging, syncFilesystem } from "./files-staging.js";

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
  let child: ChildProcess;
  if (format === "zip") {
    // -y: store symlinks as links; fifos are skipped unless -FI is given.
    const args = ["-q", "-r", "-y", "-", ...members.map((m) => (m === "." ? "." : `./${m}`))];
    if (atRoot) args.push("-x", `${RESERVED_DIR}/*`, RESERVED_DIR, "lost+found/*", "lost+found");
    child = spawn("zip", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } else {
    const args = ["-c", "-f", "-", "--one-file-system"];
    if (format === "tar.gz") args.push("-z");
    // lost+found belongs to the filesystem, not to the data (the checkpoint export leaves it out too).
    if (atRoot) args.push(`--exclude=./${RESERVED_DIR}`, "--exclude=./lost+found");
    args.push("--", ...members.map((m) => (m === "." ? "." : `./${m}`)));
    child = spawn("tar", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  }
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
      // tar: 1 = "some files changed while being read", still a complete archive.
      const ok = code === 0 || (format !== "zip" && code === 1) || (format === "zip" && code === 12 /* nothing to do: empty dir */);
      if (ok) out.end();
      else out.destroy(new Error(`${format === "zip" ? "zip" : "tar"} exited with ${code}: ${stderr.trim().slice(0, 500)}`));
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
  if (/No space left|disk full|write error/i.test(stderr)) {
    return new CairnError("QUOTA_EXCEEDED", "The archive does not fit in the volume; nothing was changed. Grow the volume or free space.");
  }
  const first = stderr.trim().split("\n").find((l) => l.trim() !== "") ?? "";
  return new CairnError("INVALID_ARCHIVE", `${tool} could not extract the upload: ${first.slice(0, 300)}`);
}

async function untarInto(body: Readable, dir: string, gzip: boolean): Promise<void> {
  // As root, tar would restore owners and setuid bits: owners are dropped here, setuid bits by sanitizeTree.
  const args = ["-x", "-f", "-", "-C", dir, "--no-same-owner", "--delay-directory-restore"];
  if (gzip) args.push("-z");
  const child = spawn("tar", args, { stdio: ["pipe", "ignore", "pipe"] });
  const done = run(child, "tar");
  let bodyError: unknown;
  await pipeline(body, child.stdin!).catch((err) => {
    // EPIPE: tar stopped reading (bad archive, disk full); its exit status says why.
    if ((err as NodeJS.ErrnoException).code !== "EPIPE") bodyError = err;
  });
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
  try {
    await pipeline(body, createWriteStream(file, { flags: "wx", highWaterMark: 1024 * 1024 }));
  } catch (err) {
    if (isNoSpace(err)) throw err;
    throw new CairnError("INVALID_REQUEST", `The upload was interrupted: ${(err as Error).message}; nothing was changed`, { cause: err });
  }
  const child = spawn("unzip", ["-q", "-o", file, "-d", dir], { stdio: ["ignore", "ignore", "pipe"] });
  const { code, stderr } = await run(child, "unzip");
  await rm(file, { force: true });
  // 1 = warnings only (e.g. a "../" component skipped): what was safe is extracted.
  if (code !== 0 && code !== 1) throw archiveError("unzip", stderr);
}
