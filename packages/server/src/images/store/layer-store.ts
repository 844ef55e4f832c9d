/**
 * Layers in the pool, content-addressed by their diff id (the digest of the uncompressed tar, the
 * same whether the registry sent it gzip or zstd):
 *
 *   <root>/layers/<hex>/     one unpacked layer, read-only to everyone but cairnd
 *   <root>/flat/<key>/       the layers of one long image merged into one tree
 *   <root>/tmp/              work in progress: a blob being spooled, a layer being unpacked
 *
 * Work happens in `tmp/` and becomes visible with one rename, after a sync: a crash leaves only
 * `tmp/` entries, which the next start deletes, never a half-unpacked layer in use. One unpack per
 * layer at a time, however many pulls want it.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { CairnError } from "@cairn/protocol";
import { run, saysNoSpace, type ExecError } from "../../host/exec.js";
import { findMount } from "../../host/mountinfo.js";
import { syncFilesystem } from "../../files/staging.js";
import type { LayerStore } from "../port.js";
import { extractLayer, poolFull, shapeLayer, spoolBlob } from "./unpack.js";

const hexOf = (digest: string) => digest.replace(/^sha256:/, "");

export class PoolLayerStore implements LayerStore {
  private readonly inflight = new Map<string, Promise<{ sizeBytes: number }>>();
  /** What `du` last said, until the store changes (admission asks on every promise it weighs). */
  private used: Promise<number> | undefined;

  constructor(private readonly root: string) {}

  /** Make the directories and delete what a crash left in `tmp/`. */
  async open(): Promise<this> {
    for (const sub of ["layers", "flat"]) await mkdir(join(this.root, sub), { recursive: true, mode: 0o700 });
    await rm(join(this.root, "tmp"), { recursive: true, force: true });
    await mkdir(join(this.root, "tmp"), { mode: 0o700 });
    return this;
  }

  path(diffId: string): string {
    return join(this.root, "layers", hexOf(diffId));
  }

  async has(diffId: string): Promise<boolean> {
    return (await stat(this.path(diffId)).catch(() => undefined))?.isDirectory() === true;
  }

  private async scratch(): Promise<string> {
    const dir = join(this.root, "tmp", `${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  add(input: { stream: Readable; digest: string; size?: number; diffId: string; onBytes?: (n: number) => void; signal?: AbortSignal }): Promise<{ sizeBytes: number }> {
    const running = this.inflight.get(input.diffId);
    if (running) {
      input.stream.destroy();
      return running;
    }
    const p = this.unpack(input).finally(() => this.inflight.delete(input.diffId));
    this.inflight.set(input.diffId, p);
    return p;
  }

  private async unpack(input: { stream: Readable; digest: string; size?: number; diffId: string; onBytes?: (n: number) => void; signal?: AbortSignal }): Promise<{ sizeBytes: number }> {
    const target = this.path(input.diffId);
    if (await this.has(input.diffId)) {
      input.stream.destroy();
      return { sizeBytes: 0 };
    }
    const work = await this.scratch();
    try {
      const blob = join(work, "blob");
      await spoolBlob(input.stream, blob, { digest: input.digest, size: input.size }, input.onBytes, input.signal);
      const tree = join(work, "tree");
      await mkdir(tree);
      const sizeBytes = await extractLayer(blob, tree, input.diffId);
      await rm(blob);
      await shapeLayer(tree);
      await syncFilesystem(tree);
      await rename(tree, target);
      this.used = undefined;
      return { sizeBytes };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOSPC" || (err instanceof Error && saysNoSpace(String((err as ExecError).stderr ?? "")))) throw poolFull(err);
      throw err;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async flatten(key: string, diffIds: string[]): Promise<string> {
    const target = join(this.root, "flat", hexOf(key));
    if ((await stat(target).catch(() => undefined))?.isDirectory()) return target;
    const work = await this.scratch();
    const merged = join(work, "merged");
    const tree = join(work, "tree");
    const names = join(work, "l");
    try {
      await mkdir(merged);
      // The kernel merges them (whiteouts and opaque directories as a sandbox would see them),
      // read-only; cp copies the result without following a symlink. The layers are named by
      // short links, relative to the mount's working directory: the option string holds one page.
      await mkdir(names);
      for (const [i, d] of diffIds.entries()) await symlink(this.path(d), join(names, String(i)));
      const lowers = diffIds.map((_, i) => String(i)).reverse().join(":");
      await run("mount", ["-t", "overlay", "overlay", "-o", `ro,nodev,nosuid,lowerdir=${lowers}`, merged], { cwd: names });
      try {
        await run("cp", ["-a", "--no-preserve=xattr", merged, tree], { timeoutMs: 3_600_000 });
      } finally {
        if (await findMount(merged)) await run("umount", [merged]);
      }
      await syncFilesystem(tree);
      await rename(tree, target);
      this.used = undefined;
      return target;
    } catch (err) {
      if (saysNoSpace(String((err as ExecError).stderr ?? ""))) throw poolFull(err);
      if (err instanceof CairnError) throw err;
      throw new CairnError("INTERNAL", `Could not flatten an image's layers: ${((err as ExecError).stderr ?? (err as Error).message).trim()}`, { cause: err });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async collect(keep: Set<string>): Promise<void> {
    for (const sub of ["layers", "flat"]) {
      for (const name of await readdir(join(this.root, sub)).catch(() => [] as string[])) {
        if (keep.has(`sha256:${name}`) || this.inflight.has(`sha256:${name}`)) continue;
        // Renamed into tmp/ first: a layer is either whole in layers/ or gone.
        const doomed = join(this.root, "tmp", `gc-${name}-${randomBytes(4).toString("hex")}`);
        await rename(join(this.root, sub, name), doomed).catch(() => undefined);
        this.used = undefined;
        await rm(doomed, { recursive: true, force: true });
      }
    }
  }

  usedBytes(): Promise<number> {
    this.used ??= run("du", ["-s", "-B1", join(this.root, "layers"), join(this.root, "flat")])
      .catch(() => ({ stdout: "" }))
      .then(({ stdout }) => stdout.split("\n").reduce((sum, line) => sum + (Number(line.split("\t")[0]) || 0), 0));
    return this.used;
  }
}
