/** The filesystems and loop devices under the loop engine: mkfs, checks, extents, usage. */
import { statSync } from "node:fs";
import { open, statfs } from "node:fs/promises";
import { CairnError, type Filesystem } from "@cairn/protocol";
import { ExecError, run } from "../../host/exec.js";
import type { VolumeUsage } from "../port.js";

/**
 * Allocated and exclusive (not shared with any reflink) bytes of an image, from its extent map.
 */
export async function extentSpace(path: string): Promise<{ allocatedBytes: number; exclusiveBytes: number }> {
  const { stdout } = await run("filefrag", ["-v", "-b1024", path]).catch(() => ({ stdout: "" }));
  let allocated = 0;
  let exclusive = 0;
  for (const line of stdout.split("\n")) {
    const m = /^\s*\d+:\s+\d+\.\.\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+):/.exec(line);
    if (!m) continue;
    const bytes = Number(m[1]) * 1024;
    allocated += bytes;
    if (!/\bshared\b/.test(line) && !/unwritten/.test(line)) exclusive += bytes;
  }
  return { allocatedBytes: allocated, exclusiveBytes: exclusive };
}

export const ZERO_BLOCK = Buffer.alloc(64 * 1024);

export function isZero(b: Buffer): boolean {
  if (b.length === ZERO_BLOCK.length) return b.equals(ZERO_BLOCK); // memcmp
  return b.every((x) => x === 0);
}

export async function statUsage(path: string): Promise<VolumeUsage> {
  const f = await statfs(path);
  return { totalBytes: f.blocks * f.bsize, usedBytes: (f.blocks - f.bfree) * f.bsize, availableBytes: f.bavail * f.bsize };
}

/** Whether an image is ext4 with the "errors" state bit set in its superblock (s_state & EXT2_ERROR_FS). */
export async function ext4HasErrors(image: string): Promise<boolean> {
  const fh = await open(image, "r").catch(() => undefined);
  if (!fh) return false;
  try {
    const sb = Buffer.alloc(4);
    await fh.read(sb, 0, 4, 1024 + 0x38); // s_magic (u16), s_state (u16)
    return sb.readUInt16LE(0) === 0xef53 && (sb.readUInt16LE(2) & 0x0002) !== 0;
  } finally {
    await fh.close();
  }
}

export async function mkfs(image: string, filesystem: Filesystem): Promise<void> {
  if (filesystem === "xfs") {
    await run("mkfs.xfs", ["-q", "-f", image]);
  } else {
    // -m 0: the quota is the user's, no root reserve. Lazy init: create in milliseconds.
    // -e remount-ro: after an error the kernel stops writing rather than go on over damage; the
    // next mount checks and repairs first (checkBeforeMount).
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-e", "remount-ro", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", image]);
  }
}

export interface LoopDevice {
  name: string;
  backFile: string;
}

export async function listLoops(): Promise<LoopDevice[]> {
  const { stdout } = await run("losetup", ["--list", "--json", "--output", "NAME,BACK-FILE"]);
  if (!stdout.trim()) return [];
  const parsed = JSON.parse(stdout) as { loopdevices?: { name: string; "back-file": string | null }[] };
  return (parsed.loopdevices ?? []).map((l) => ({
    name: l.name,
    backFile: (l["back-file"] ?? "").replace(/ \(deleted\)$/, ""),
  }));
}

/**
 * An ext4 volume that met an error (the kernel then made it read-only) carries the error flag in
 * its superblock: repair it (e2fsck -fy) before it is mounted again. Reading the flag costs one
 * small read, so every mount can afford it.
 */
export async function repairIfDamaged(image: string, volumeId: string, log?: { info(o: object, m?: string): void; warn(o: object, m?: string): void }): Promise<void> {
  if (!(await ext4HasErrors(image))) return;
  log?.warn({ volumeId }, "the volume's filesystem recorded an error: checking and repairing it before mounting");
  try {
    await run("e2fsck", ["-f", "-y", image], { timeoutMs: 30 * 60_000 });
  } catch (err) {
    // 1: errors corrected; anything more means it could not make the filesystem whole.
    if (!(err instanceof ExecError && err.exitCode === 1)) {
      throw new CairnError("VOLUME_DAMAGED", `Volume ${volumeId} has filesystem damage that a check could not repair; its operator must look at it`, { cause: err });
    }
  }
  log?.info({ volumeId }, "filesystem repaired");
}

/** The device of what is mounted at `path` now (synchronous: a mounted root is always in memory). */
export function mountedDevice(path: string): number | undefined {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
}
