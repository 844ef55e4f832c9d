/**
 * The pool: a directory on a reflink-capable filesystem holding one image per volume. When the
 * data dir cannot reflink (ext4 hosts), the pool is a sparse XFS image with reflink=1,
 * loop-mounted with direct I/O (docs/ARCHITECTURE.md "Volume engine").
 */
import { constants as fsc } from "node:fs";
import { copyFile, mkdir, open, rm, statfs, stat } from "node:fs/promises";
import { join } from "node:path";
import { GiB, TiB } from "@cairn/protocol";
import { run } from "../../host/exec.js";
import { findMount } from "../../host/mountinfo.js";

export interface PoolInfo {
  root: string;
  /** `dir`: the data dir reflinks itself; `image`: an XFS image loop-mounted at `root`. */
  kind: "dir" | "image";
  imagePath?: string;
}

export async function canReflink(dir: string): Promise<boolean> {
  const a = join(dir, `.reflink-probe-${process.pid}`);
  const b = `${a}.clone`;
  try {
    const fh = await open(a, "w");
    await fh.write(Buffer.alloc(4096, 1));
    await fh.close();
    await copyFile(a, b, fsc.COPYFILE_FICLONE_FORCE);
    return true;
  } catch {
    return false;
  } finally {
    await rm(a, { force: true });
    await rm(b, { force: true });
  }
}

/** Set direct I/O on the loop device behind a mount (docs/ARCHITECTURE.md "Volume engine": page cache once, not twice). */
export async function enableDirectIo(device: string): Promise<void> {
  if (device.startsWith("/dev/loop")) await run("losetup", ["--direct-io=on", device]).catch(() => undefined);
}

export async function openPool(dataDir: string, options: { sizeBytes?: number | undefined } = {}): Promise<PoolInfo> {
  const root = join(dataDir, "pool");
  await mkdir(root, { recursive: true, mode: 0o700 });
  const existing = await findMount(root);
  const imagePath = join(dataDir, "pool.img");
  if (!existing) {
    if (await canReflink(dataDir)) {
      await mkdir(join(root, "volumes"), { recursive: true });
      await mkdir(join(root, "tmp"), { recursive: true });
      return { root, kind: "dir" };
    }
    const hasImage = await stat(imagePath).then(() => true, () => false);
    if (!hasImage) {
      const fsInfo = await statfs(dataDir);
      const free = fsInfo.bavail * fsInfo.bsize;
      // Sparse: it only takes what volumes write. Never promise more than the host disk has.
      const size = options.sizeBytes ?? Math.max(4 * GiB, Math.min(1 * TiB, Math.floor((free * 0.9) / GiB) * GiB));
      const tmp = `${imagePath}.partial`;
      await run("truncate", ["-s", String(size), tmp]);
      await run("mkfs.xfs", ["-q", "-f", "-m", "reflink=1", "-L", "cairn-pool", tmp]);
      await run("mv", [tmp, imagePath]);
    }
    await run("mount", ["-o", "loop", imagePath, root]);
    const m = await findMount(root);
    if (m) await enableDirectIo(m.source);
  }
  await mkdir(join(root, "volumes"), { recursive: true });
  await mkdir(join(root, "tmp"), { recursive: true });
  return { root, kind: "image", imagePath };
}
