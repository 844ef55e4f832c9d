/**
 * Each sandbox's writable layer (its root, the upper dirs of its overlays, its bundle) lives on a
 * disk of its own: a sparse ext4 image in the pool, `<root>/<id>.disk`, loop-mounted at
 * `<root>/<id>` in cairnd's namespace with nodev,nosuid. Its size is the sandbox's quota: a
 * sandbox that fills it gets ENOSPC itself, and the pool's admission has already counted it, so it
 * cannot take space another tenant was promised. A fork clones the image (a reflink while the
 * source's filesystem is frozen for a moment): no copy, no space until the two diverge.
 */
import { constants as fsc } from "node:fs";
import { chmod, copyFile, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";
import { ExecError, run } from "../../host/exec.js";
import { findMount } from "../../host/mountinfo.js";
import { enableDirectIo } from "../../volumes/loop/pool.js";
import { mkfs } from "../../volumes/loop/filesystem.js";

const DISK_MOUNT_OPTIONS = "loop,nodev,nosuid";
import { setTimeout as sleep } from "node:timers/promises";

export class SandboxDisks {
  constructor(private readonly root: string) {}

  image(id: string): string {
    return join(this.root, `${id}.disk`);
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  /** Make the disk and mount it. */
  async create(id: string, sizeBytes: number): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const tmp = join(this.root, `${id}.disk.partial`);
    try {
      await run("truncate", ["-s", String(sizeBytes), tmp]);
      await mkfs(tmp, "ext4");
      await chmod(tmp, 0o600);
      await rename(tmp, this.image(id));
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof ExecError && /No space left/i.test(err.stderr)) {
        throw new CairnError("POOL_FULL", "The storage pool has no room for a new sandbox disk", { cause: err });
      }
      throw err;
    }
    await this.mount(id);
  }

  /** Mount the disk if it is not (after a reboot). A sandbox made before disks existed has none: nothing to do. */
  async mount(id: string): Promise<void> {
    const target = this.dir(id);
    if (await findMount(target)) return;
    if (!(await stat(this.image(id)).catch(() => undefined))) return;
    await mkdir(target, { recursive: true, mode: 0o700 });
    await run("mount", ["-o", DISK_MOUNT_OPTIONS, this.image(id), target]);
    const m = await findMount(target);
    if (m) await enableDirectIo(m.source);
    await chmod(target, 0o711); // walked by the sandbox's own root while crun sets it up, never listed
  }

  async unmount(id: string): Promise<void> {
    const target = this.dir(id);
    for (let attempt = 0; await findMount(target); attempt++) {
      try {
        await run("umount", [target]);
      } catch (err) {
        // A process that just died may still hold it for a moment (docs/ARCHITECTURE.md "Volume engine": EBUSY is normal).
        if (attempt >= 40) throw new CairnError("INTERNAL", `the disk of sandbox ${id} stays busy`, { cause: err });
        await sleep(50 * Math.min(attempt + 1, 10));
      }
    }
  }

  /** Unmount and delete the disk. */
  async remove(id: string): Promise<void> {
    await this.unmount(id);
    await rm(this.image(id), { force: true });
  }

  /** Whether the sandbox has a disk of its own. */
  async has(id: string): Promise<boolean> {
    return (await stat(this.image(id)).catch(() => undefined)) !== undefined;
  }

  /** Clone one sandbox's disk to a new one (a consistent point: the source is frozen meanwhile) and mount it. */
  async clone(fromId: string, toId: string): Promise<void> {
    const tmp = join(this.root, `${toId}.disk.partial`);
    const frozen = (await findMount(this.dir(fromId))) !== undefined;
    if (frozen) await run("fsfreeze", ["-f", this.dir(fromId)]);
    try {
      await copyFile(this.image(fromId), tmp, fsc.COPYFILE_FICLONE_FORCE);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    } finally {
      if (frozen) await run("fsfreeze", ["-u", this.dir(fromId)]);
    }
    await rename(tmp, this.image(toId));
    await this.mount(toId);
  }

  /** Ids of every sandbox that has a disk (to find the ones nobody knows after a crash). */
  async list(): Promise<string[]> {
    const files = await readdir(this.root).catch(() => [] as string[]);
    return files.filter((f) => f.endsWith(".disk")).map((f) => f.slice(0, -".disk".length));
  }
}
