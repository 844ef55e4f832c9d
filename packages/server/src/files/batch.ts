/** Batch write: many files in one request, all or nothing (see files-staging.ts). */
import { constants as fsc, type Stats } from "node:fs";
import { lstat, mkdir, open, statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CairnError, formatSize, normalizeVolumePath, type BatchWriteRequest, type BatchWriteResult } from "@cairn/protocol";
import { checkPreconditions, etagOf, isNoSpace, quotaError, resolvePath, safeMode } from "./core.js";
import { commitTree, Staging, syncFilesystem } from "./staging.js";
import { lstatOrUndefined } from "./ops.js";

interface Planned {
  path: string;
  volumePath: string;
  hostPath: string;
  data: Buffer;
  mode: number | undefined;
  existing: Stats | undefined;
  ifMatch: string | undefined;
  ifNoneMatch: string | undefined;
}

export async function batchWrite(
  root: string,
  req: BatchWriteRequest,
  options: { volumeName: string; onCommit?: (volumePath: string, created: boolean) => void },
): Promise<BatchWriteResult> {
  const planned: Planned[] = [];
  const byVolumePath = new Map<string, Planned>();
  let total = 0;
  for (const [i, f] of req.files.entries()) {
    const path = normalizeVolumePath(f.path);
    if (path === "/") throw new CairnError("NOT_A_FILE", `files[${i}]: cannot write to the volume root`, { meta: { index: i } });
    if (f.content !== undefined && f.contentBase64 !== undefined) {
      throw new CairnError("INVALID_REQUEST", `files[${i}] (${path}): give content or contentBase64, not both`, { meta: { index: i } });
    }
    if (f.contentBase64 !== undefined && !/^[A-Za-z0-9+/_-]*={0,2}$/.test(f.contentBase64)) {
      throw new CairnError("INVALID_REQUEST", `files[${i}] (${path}): contentBase64 is not base64`, { meta: { index: i } });
    }
    const target = await resolvePath(root, path, { followLast: true });
    if (byVolumePath.has(target.volumePath)) {
      throw new CairnError("INVALID_REQUEST", `files[${i}]: ${path} is written twice in this batch`, { meta: { index: i } });
    }
    const existing = await lstatOrUndefined(target.hostPath, path);
    if (existing && !existing.isFile()) {
      throw new CairnError("NOT_A_FILE", `${path} exists and is not a regular file`, { meta: { index: i } });
    }
    const data = f.contentBase64 !== undefined ? Buffer.from(f.contentBase64, "base64") : Buffer.from(f.content ?? "", "utf8");
    total += data.length;
    const p: Planned = {
      path,
      volumePath: target.volumePath,
      hostPath: target.hostPath,
      data,
      mode: f.mode,
      existing,
      ifMatch: f.ifMatch,
      ifNoneMatch: f.ifNoneMatch,
    };
    checkPreconditions(path, existing, p);
    planned.push(p);
    byVolumePath.set(target.volumePath, p);
  }
  // A path written as a file cannot also be the directory of another one in the same batch.
  for (const [i, p] of planned.entries()) {
    for (let dir = dirname(p.volumePath); dir !== "/"; dir = dirname(dir)) {
      if (byVolumePath.has(dir)) {
        throw new CairnError("INVALID_REQUEST", `files[${i}]: ${p.path} needs ${dir} to be a directory, but this batch writes ${dir} as a file`, {
          meta: { index: i },
        });
      }
    }
  }
  const fs = await statfs(root);
  if (total > fs.bavail * fs.bsize) {
    throw new CairnError("QUOTA_EXCEEDED", `Volume "${options.volumeName}" has ${formatSize(fs.bavail * fs.bsize)} free; this batch needs ${formatSize(total)}. Nothing was written.`);
  }

  const staging = await Staging.create(root, "staging");
  try {
    const tree = join(staging.dir, "tree");
    for (const p of planned) {
      const staged = join(tree, p.volumePath);
      await mkdir(dirname(staged), { recursive: true });
      const fh = await open(staged, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
      try {
        let off = 0;
        while (off < p.data.length) off += (await fh.write(p.data, off, p.data.length - off)).bytesWritten;
        if (p.existing) {
          await fh.chown(p.existing.uid, p.existing.gid);
          await fh.chmod(safeMode(p.existing.mode));
        } else await fh.chmod(safeMode(p.mode ?? 0o644));
        if (p.existing && p.mode !== undefined) await fh.chmod(safeMode(p.mode));
      } finally {
        await fh.close();
      }
    }
    await syncFilesystem(tree);
    await commitTree({
      staged: tree,
      targetHost: root,
      targetPath: "/",
      backupDir: join(staging.dir, "backup"),
      // Re-checked right before anything moves: a change since the plan is a 412, not lost.
      check: (volumePath, existing) => {
        const p = byVolumePath.get(volumePath);
        if (p) checkPreconditions(p.path, existing, p);
      },
      ...(options.onCommit ? { onCommit: options.onCommit } : {}),
    });
    await syncFilesystem(root);
  } catch (err) {
    if (isNoSpace(err)) throw quotaError(options.volumeName, err);
    throw err;
  } finally {
    await staging.discard();
  }
  const files = [];
  for (const p of planned) {
    const st = await lstat(p.hostPath);
    files.push({ path: p.volumePath, size: st.size, etag: etagOf(st), created: p.existing === undefined });
  }
  return { files };
}
