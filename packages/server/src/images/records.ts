/**
 * What cairnd knows of its images: one JSON file per image (by manifest digest) beside the
 * layers, written atomically, read into memory once. Images are a cache of this host, like its
 * layers: they live in the pool, not in the metadata store. The content is shared; who sees an
 * image is not: each project that pulled or imported it has its own names for it, and sees only
 * the images it has names (or a claim) on.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Image } from "@cairn/protocol";
import type { ImageConfigFile } from "./port.js";

export interface ImageRecord {
  digest: string;
  /** Project id → the names that project knows this image by (empty: by digest only). */
  projects: Record<string, string[]>;
  platform: string;
  configDigest: string;
  /** Bottom first. */
  layers: { digest: string; diffId: string; size: number }[];
  config: NonNullable<ImageConfigFile["config"]>;
  sizeBytes: number;
  /** Its layers are merged into one tree (more than a sandbox stacks). */
  flat: boolean;
  pulledAt: string;
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, "");

export class ImageRecords {
  private readonly byDigest = new Map<string, ImageRecord>();

  constructor(private readonly dir: string) {}

  async open(): Promise<this> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(".json")) {
        await rm(join(this.dir, name), { force: true }); // an interrupted write
        continue;
      }
      try {
        const r = JSON.parse(await readFile(join(this.dir, name), "utf8")) as ImageRecord;
        if (typeof r.projects !== "object" || r.projects === null) throw new Error("a record without projects");
        this.byDigest.set(r.digest, r);
      } catch {
        await rm(join(this.dir, name), { force: true });
      }
    }
    return this;
  }

  list(): ImageRecord[] {
    return [...this.byDigest.values()].sort((a, b) => b.pulledAt.localeCompare(a.pulledAt));
  }

  get(digest: string): ImageRecord | undefined {
    return this.byDigest.get(digest);
  }

  /** The image a project knows by `name`. */
  byName(projectId: string, name: string): ImageRecord | undefined {
    return this.list().find((r) => r.projects[projectId]?.includes(name));
  }

  async put(r: ImageRecord): Promise<void> {
    const file = join(this.dir, `${hexOf(r.digest)}.json`);
    await writeFile(`${file}.partial`, JSON.stringify(r));
    await rename(`${file}.partial`, file);
    this.byDigest.set(r.digest, r);
  }

  async delete(digest: string): Promise<void> {
    await rm(join(this.dir, `${hexOf(digest)}.json`), { force: true });
    this.byDigest.delete(digest);
  }
}

/** An image as `projectId` sees it: its own names only. */
export function toWire(r: ImageRecord, projectId: string): Image {
  const c = r.config;
  return {
    digest: r.digest,
    refs: r.projects[projectId] ?? [],
    platform: r.platform,
    layers: r.layers.length,
    sizeBytes: r.sizeBytes,
    config: {
      env: c.Env ?? [],
      workingDir: c.WorkingDir ?? "",
      user: c.User ?? "",
      entrypoint: c.Entrypoint ?? null,
      cmd: c.Cmd ?? null,
      exposedPorts: Object.keys(c.ExposedPorts ?? {}),
    },
    pulledAt: r.pulledAt,
  };
}
