/**
 * Images as users see them: pull (a tag resolved to this host's manifest digest, its layers
 * fetched and unpacked once into the layer store), import from an archive, list, remove. One
 * pull per reference at a time, however many callers (of any project) ask: the others wait for
 * it and see its progress. A project sees and names only the images it pulled or imported
 * (records.ts); removing an image its sandboxes run is refused; layers no image needs are collected.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { CairnError, type Image, type PullEvent } from "@cairn/protocol";
import type { Logger } from "../logger.js";
import type { Descriptor, ImageSource, LayerStore, ResolvedImage } from "./port.js";
import { type ImageRecord, type ImageRecords, toWire } from "./records.js";
import { extractArchive, readArchive } from "./archive/source.js";
import { DIGEST, formatReference, parseReference, type ImageReference } from "./reference.js";

export interface ImageServiceDeps {
  registry: ImageSource;
  layers: LayerStore;
  records: ImageRecords;
  /** Ids of the sandboxes (of one project, or of all) that run this image (by digest) and keep its layers in use. */
  users: (digest: string, projectId?: string) => Promise<string[]>;
  /** More layers than this are merged into one tree (a sandbox stacks each as an overlay lower). */
  maxLayers: number;
  /** A private directory on the pool for archives being imported. */
  scratchDir: string;
  /** Layers fetched at once. */
  parallel?: number;
  log: Logger;
}

type Listener = (e: PullEvent) => void;

interface Flight {
  promise: Promise<ImageRecord>;
  listeners: Set<Listener>;
  /** Projects waiting for it: the image is recorded as theirs. */
  projects: Set<string>;
}

export class ImageService {
  private readonly flights = new Map<string, Flight>();
  /** Layers of pulls in flight: not collected before their image is recorded. */
  private readonly pinned = new Map<string, number>();
  /** How many pulls reached a registry (tests count them). */
  pulls = 0;

  constructor(private readonly deps: ImageServiceDeps) {}

  list(projectId: string): Image[] {
    return this.deps.records
      .list()
      .filter((r) => r.projects[projectId] !== undefined)
      .map((r) => toWire(r, projectId));
  }

  /** A project's image by reference (`node:20`, a full name, `name@digest`) or by digest (`sha256:…`). */
  find(projectId: string, text: string): ImageRecord {
    const r = this.lookup(projectId, text);
    if (!r) throw new CairnError("IMAGE_NOT_FOUND", `No image ${text} here; \`cairn image pull ${text}\` fetches it`);
    return r;
  }

  private lookup(projectId: string, text: string): ImageRecord | undefined {
    const mine = (r: ImageRecord | undefined) => (r && r.projects[projectId] !== undefined ? r : undefined);
    if (DIGEST.test(text)) return mine(this.deps.records.get(text));
    const ref = parseReference(text);
    const byName = this.deps.records.byName(projectId, formatReference(ref));
    if (byName) return byName;
    // name@digest: the platform manifest itself, or an index recorded under that name.
    if (ref.digest) return mine(this.deps.records.get(ref.digest));
    return undefined;
  }

  get(projectId: string, text: string): Image {
    return toWire(this.find(projectId, text), projectId);
  }

  /** The image a sandbox create names: the project's own, else pulled (once, for every caller at the same time). */
  async ensure(projectId: string, text: string, onEvent?: Listener): Promise<ImageRecord> {
    const here = this.lookup(projectId, text);
    if (here) return here;
    return this.flight(projectId, text, onEvent);
  }

  /** Pull: ask the registry what the reference names now, and fetch what is not here. */
  async pull(projectId: string, text: string, options: { onEvent?: Listener } = {}): Promise<Image> {
    return toWire(await this.flight(projectId, text, options.onEvent), projectId);
  }

  /** Record `projectId`'s name for an image (taking the name from another image of the project). */
  private async adopt(r: ImageRecord, projectId: string, name: string | undefined): Promise<ImageRecord> {
    const names = r.projects[projectId];
    if (names !== undefined && (name === undefined || names.includes(name))) return r;
    if (name) {
      for (const other of this.deps.records.list()) {
        const theirs = other.projects[projectId];
        if (other.digest !== r.digest && theirs?.includes(name)) await this.deps.records.put({ ...other, projects: withoutName(other.projects, projectId, name) });
      }
    }
    const current = this.deps.records.get(r.digest) ?? r;
    const next = { ...current, projects: { ...current.projects, [projectId]: [...new Set([...(current.projects[projectId] ?? []), ...(name ? [name] : [])])] } };
    await this.deps.records.put(next);
    return next;
  }

  private async flight(projectId: string, text: string, onEvent?: Listener): Promise<ImageRecord> {
    const ref = parseReference(text);
    const key = formatReference(ref);
    let f = this.flights.get(key);
    if (!f) {
      const listeners = new Set<Listener>();
      const projects = new Set<string>();
      const emit = (e: PullEvent) => {
        for (const l of listeners) l(e);
      };
      const promise = this.fetch(ref, this.deps.registry, emit, projects).finally(() => this.flights.delete(key));
      f = { promise, listeners, projects };
      this.flights.set(key, f);
    }
    f.projects.add(projectId);
    if (onEvent) f.listeners.add(onEvent);
    return this.adopt(await f.promise, projectId, key);
  }

  private async fetch(ref: ImageReference, source: ImageSource, emit: Listener, projects: Set<string>): Promise<ImageRecord> {
    this.pulls++;
    const resolved = await source.resolve(ref);
    return this.store(ref, resolved, source, emit, projects);
  }

  /** Fetch the layers of a resolved image that are not here, then record it under `ref` for `projects`. */
  private async store(ref: ImageReference | undefined, img: ResolvedImage, source: ImageSource, emit: Listener, projects: Set<string>): Promise<ImageRecord> {
    const name = ref ? formatReference(ref) : undefined;
    const diffIds = img.config.rootfs!.diff_ids!;
    emit({ type: "resolved", ref: name ?? img.digest, digest: img.digest, layers: img.layers.map((l) => ({ digest: l.digest, sizeBytes: l.size })) });
    for (const d of diffIds) this.pinned.set(d, (this.pinned.get(d) ?? 0) + 1);
    try {
      let sizeBytes = 0;
      const queue = img.layers.map((l, i) => ({ layer: l, diffId: diffIds[i]! }));
      const worker = async () => {
        try {
          for (let job = queue.shift(); job; job = queue.shift()) sizeBytes += await this.fetchLayer(ref, source, job.layer, job.diffId, emit);
        } catch (err) {
          queue.length = 0; // the others finish what they hold and take nothing more
          throw err;
        }
      };
      // Every worker settles before anything is decided: a layer still landing after another
      // failed would escape the collection below and stay in the pool, named by nothing.
      const settled = await Promise.allSettled(Array.from({ length: Math.min(this.deps.parallel ?? 3, queue.length || 1) }, worker));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
      const flat = diffIds.length > this.deps.maxLayers;
      if (flat) await this.deps.layers.flatten(img.digest, diffIds);
      const previous = this.deps.records.get(img.digest);
      const owners: Record<string, string[]> = { ...(previous?.projects ?? {}) };
      for (const p of projects) owners[p] = [...new Set([...(owners[p] ?? []), ...(name ? [name] : [])])];
      const record: ImageRecord = {
        digest: img.digest,
        projects: owners,
        platform: img.platform,
        configDigest: img.configDigest,
        layers: img.layers.map((l, i) => ({ digest: l.digest, diffId: diffIds[i]!, size: l.size })),
        config: img.config.config ?? {},
        sizeBytes: previous?.sizeBytes || sizeBytes,
        flat,
        pulledAt: new Date().toISOString(),
      };
      // A tag names one image per project: the one it named before loses it.
      if (name) {
        for (const other of this.deps.records.list()) {
          if (other.digest === img.digest) continue;
          let changed = other.projects;
          for (const p of projects) if (changed[p]?.includes(name)) changed = withoutName(changed, p, name);
          if (changed !== other.projects) await this.deps.records.put({ ...other, projects: changed });
        }
      }
      await this.deps.records.put(record);
      const [first] = projects;
      if (first !== undefined) emit({ type: "image", image: toWire(record, first) });
      return record;
    } finally {
      for (const d of diffIds) {
        const n = (this.pinned.get(d) ?? 1) - 1;
        if (n <= 0) this.pinned.delete(d);
        else this.pinned.set(d, n);
      }
      await this.collect().catch((err) => this.deps.log.warn({ err }, "collecting unused image layers failed"));
    }
  }

  private async fetchLayer(ref: ImageReference | undefined, source: ImageSource, layer: Descriptor, diffId: string, emit: Listener): Promise<number> {
    if (await this.deps.layers.has(diffId)) {
      emit({ type: "layer", digest: layer.digest, doneBytes: layer.size, totalBytes: layer.size, state: "cached" });
      return 0;
    }
    const stream = await source.blob(ref ?? parseReference("local/import"), layer);
    let done = 0;
    let last = 0;
    const { sizeBytes } = await this.deps.layers.add({
      stream,
      digest: layer.digest,
      size: layer.size,
      diffId,
      onBytes: (n) => {
        done += n;
        // A progress event per percent, not per chunk.
        if (done - last >= Math.max(layer.size / 100, 256 * 1024)) {
          last = done;
          emit({ type: "layer", digest: layer.digest, doneBytes: done, totalBytes: layer.size, state: "downloading" });
        }
      },
    });
    emit({ type: "layer", digest: layer.digest, doneBytes: layer.size, totalBytes: layer.size, state: "done" });
    return sizeBytes;
  }

  /**
   * Import the images of an archive (`docker save`, an OCI layout; tar or tar.gz) under their own
   * names, or under `name` when it holds one image.
   */
  async importArchive(projectId: string, body: Readable, options: { name?: string } = {}): Promise<Image[]> {
    const dir = join(this.deps.scratchDir, `import-${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      await extractArchive(body, dir);
      let { images, source } = await readArchive(dir);
      if (images.length === 0) throw new CairnError("INVALID_ARCHIVE", "The archive holds no image");
      if (options.name !== undefined) {
        if (new Set(images.map((i) => i.image.digest)).size > 1) throw new CairnError("INVALID_REQUEST", `The archive holds ${images.length} images; a name can be given to one only`);
        images = [{ ref: parseReference(options.name), image: images[0]!.image }];
      }
      const unnamed = images.find((i) => !i.ref);
      if (unnamed) throw new CairnError("INVALID_IMAGE", `The archive does not name image ${unnamed.image.digest}: give it a name (cairn image import <file> --name tool:1.2)`);
      const out: Image[] = [];
      for (const { ref, image } of images) out.push(toWire(await this.store(ref, image, source, () => undefined, new Set([projectId])), projectId));
      return out;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Remove one of a project's names for an image, or (by digest, or its last name) the image from
   * the project: refused while the project's sandboxes run it. The image goes from the host once
   * no project has it and no sandbox runs it; its layers once no other image needs them.
   */
  async remove(projectId: string, text: string): Promise<{ untagged: string[]; deleted: string | null }> {
    const r = this.find(projectId, text);
    const names = r.projects[projectId] ?? [];
    const name = DIGEST.test(text) ? undefined : formatReference(parseReference(text));
    if (name && names.includes(name) && names.length > 1) {
      await this.deps.records.put({ ...r, projects: { ...r.projects, [projectId]: names.filter((x) => x !== name) } });
      return { untagged: [name], deleted: null };
    }
    const users = await this.deps.users(r.digest, projectId);
    if (users.length > 0) {
      throw new CairnError("IMAGE_IN_USE", `Image ${text} is in use by sandbox${users.length > 1 ? "es" : ""} ${users.slice(0, 5).join(", ")}${users.length > 5 ? ", …" : ""}; kill them first`);
    }
    const { [projectId]: _, ...others } = r.projects;
    await this.deps.records.put({ ...r, projects: others });
    await this.collect();
    return { untagged: names, deleted: r.digest };
  }

  /** Host directories of an image's layers for a sandbox's overlay, bottom first. */
  async lowers(digest: string): Promise<string[]> {
    const r = this.deps.records.get(digest);
    if (!r) throw new CairnError("IMAGE_NOT_FOUND", `Image ${digest} is gone from this host; pull it again`);
    if (r.flat) return [await this.deps.layers.flatten(r.digest, r.layers.map((l) => l.diffId))];
    return r.layers.map((l) => this.deps.layers.path(l.diffId));
  }

  /**
   * Delete images no project has and no sandbox runs, then layers no image needs. Images of
   * sandboxes keep their layers (and their flattened tree) until the sandbox is gone.
   */
  async collect(): Promise<void> {
    const keep = new Set<string>(this.pinned.keys());
    for (const r of this.deps.records.list()) {
      if (Object.keys(r.projects).length === 0 && (await this.deps.users(r.digest)).length === 0) {
        await this.deps.records.delete(r.digest);
        continue;
      }
      for (const l of r.layers) keep.add(l.diffId);
      if (r.flat) keep.add(r.digest);
    }
    await this.deps.layers.collect(keep);
  }

  /** Bytes the layers take in the pool (admission counts them as promised). */
  usedBytes(): Promise<number> {
    return this.deps.layers.usedBytes();
  }
}

/**
 * A project's names for an image without `name` (a tag that moved to another image). An image the
 * project then has no name for is no longer the project's: it is collected like any unnamed one.
 */
function withoutName(projects: Record<string, string[]>, projectId: string, name: string): Record<string, string[]> {
  const names = (projects[projectId] ?? []).filter((n) => n !== name);
  const { [projectId]: _, ...others } = projects;
  return names.length > 0 ? { ...others, [projectId]: names } : others;
}
