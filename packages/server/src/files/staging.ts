/**
 * All-or-nothing changes of many files (batch writes, archive extraction, replace): everything
 * is first written into a staging directory under `/.cairn` on the same filesystem, then moved
 * into place with renames. A failure before the renames leaves nothing visible; a failure during
 * them is rolled back (replaced files were kept as hard links, which cost no space).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { type Dirent, type Stats } from "node:fs";
import { chmod, link, lstat, mkdir, opendir, readdir, rename, rm, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CairnError, RESERVED_DIR } from "@cairn/protocol";
import { safeMode, syncDir } from "./core.js";

export type StagingKind = "staging" | "trash" | "uploads";

/** Staging dirs in use by this process: never swept, whatever their age. */
const active = new Set<string>();
const STALE_MS = 60 * 60 * 1000;

export class Staging {
  private constructor(readonly dir: string) {}

  /** A fresh private directory in `/.cairn/<kind>/`; stale ones left by a crash are removed on the way. */
  static async create(root: string, kind: "staging" | "trash"): Promise<Staging> {
    const base = join(root, RESERVED_DIR, kind);
    await mkdir(join(root, RESERVED_DIR), { recursive: true, mode: 0o700 });
    await mkdir(base, { recursive: true, mode: 0o700 });
    await sweep(base);
    const dir = join(base, `${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`);
    await mkdir(dir, { mode: 0o700 });
    active.add(dir);
    return new Staging(dir);
  }

  async discard(): Promise<void> {
    try {
      await rm(this.dir, { recursive: true, force: true, maxRetries: 2 });
    } finally {
      active.delete(this.dir);
    }
  }
}

async function sweep(base: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names) {
    const dir = join(base, name);
    const born = parseInt(name.split("-")[0] ?? "", 36);
    if (active.has(dir) || !(now - born > STALE_MS)) continue;
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** `syncfs(2)` of the filesystem holding `path`: one flush instead of an fsync per file. */
export function syncFilesystem(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn("sync", ["-f", path], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`sync -f ${path} failed: ${stderr.trim()}`))));
  });
}

export interface TreeStats {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** Relative paths of what was dropped: devices, fifos, sockets. */
  skipped: string[];
}

/**
 * Make a staged tree safe to publish: drop special files (an archive may carry device nodes),
 * strip setuid/setgid bits, and count what is there.
 */
export async function sanitizeTree(dir: string, rel = "", stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] }): Promise<TreeStats> {
  const handle = await opendir(dir, { bufferSize: 256 });
  for await (const d of handle as AsyncIterable<Dirent>) {
    const path = join(dir, d.name);
    const r = rel ? `${rel}/${d.name}` : d.name;
    const st = await lstat(path);
    if (st.isDirectory()) {
      stats.directories++;
      if (st.mode & 0o6000) await chmod(path, safeMode(st.mode));
      await sanitizeTree(path, r, stats);
    } else if (st.isFile()) {
      stats.files++;
      stats.bytes += st.size;
      if (st.mode & 0o6000) await chmod(path, safeMode(st.mode));
    } else if (st.isSymbolicLink()) {
      stats.symlinks++;
    } else {
      await unlink(path);
      if (stats.skipped.length < 1000) stats.skipped.push(r);
    }
  }
  return stats;
}

interface Op {
  staged: string;
  target: string;
  volumePath: string;
  replace: boolean;
}

export interface CommitOptions {
  /** Host directory whose contents are merged into `targetHost`. */
  staged: string;
  /** An existing directory of the volume (host path) and its volume path. */
  targetHost: string;
  targetPath: string;
  /** Where replaced files are kept until the commit is done (inside the same staging dir). */
  backupDir: string;
  /** Preconditions per file, checked before anything moves. */
  check?: (volumePath: string, existing: Stats | undefined) => void;
  onCommit?: (volumePath: string, created: boolean) => void;
}

const childPath = (parent: string, name: string) => (parent === "/" ? `/${name}` : `${parent}/${name}`);

/**
 * Merge a staged tree into a directory: new entries (whole directories included) are renamed in,
 * existing directories are merged, existing files and symlinks are replaced. A type conflict (a
 * file where a directory is, or the other way round) is a 409 before anything moves.
 */
export async function commitTree(options: CommitOptions): Promise<void> {
  const ops: Op[] = [];
  const plan = async (staged: string, target: string, volumePath: string): Promise<void> => {
    const handle = await opendir(staged, { bufferSize: 256 });
    for await (const d of handle as AsyncIterable<Dirent>) {
      const s = join(staged, d.name);
      const t = join(target, d.name);
      const vp = childPath(volumePath, d.name);
      const [sst, tst] = await Promise.all([lstat(s), lstat(t).catch(() => undefined)]);
      if (sst.isDirectory() && tst?.isDirectory()) {
        await plan(s, t, vp);
        continue;
      }
      if (tst && (sst.isDirectory() || tst.isDirectory())) {
        throw new CairnError(
          "PATH_ALREADY_EXISTS",
          tst.isDirectory() ? `${vp} is a directory; a file cannot replace it` : `${vp} exists and is not a directory`,
        );
      }
      if (!sst.isDirectory()) options.check?.(vp, tst);
      ops.push({ staged: s, target: t, volumePath: vp, replace: tst !== undefined });
    }
  };
  await plan(options.staged, options.targetHost, options.targetPath);

  await mkdir(options.backupDir, { recursive: true });
  const done: { op: Op; backup?: string }[] = [];
  const dirs = new Set<string>();
  try {
    for (const [i, op] of ops.entries()) {
      let backup: string | undefined;
      if (op.replace) {
        backup = join(options.backupDir, String(i));
        await link(op.target, backup);
      }
      options.onCommit?.(op.volumePath, !op.replace);
      await rename(op.staged, op.target);
      done.push(backup === undefined ? { op } : { op, backup });
      dirs.add(dirname(op.target));
    }
  } catch (err) {
    // Put back what was there, newest first.
    for (const { op, backup } of done.reverse()) {
      if (backup !== undefined) await rename(backup, op.target).catch(() => undefined);
      else await rename(op.target, op.staged).catch(() => rm(op.target, { recursive: true, force: true }));
    }
    if ((err as NodeJS.ErrnoException).code === "ENOSPC") {
      throw new CairnError("QUOTA_EXCEEDED", "The volume is full; nothing was changed. Grow the volume or free space.", { cause: err });
    }
    throw err;
  }
  // A few directories: fsync each; many (an archive): one syncfs is cheaper.
  if (dirs.size <= 8) for (const d of dirs) await syncDir(d);
  else await syncFilesystem(options.targetHost);
}
