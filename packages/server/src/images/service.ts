/**
 * Images as users see them: pull (a tag resolved to this host's manifest digest, its layers
 * fetched and unpacked once into the layer store), import from an archive, list, remove. One
 * pull per reference at a time, however many callers ask: the others wait for it and see its
 * progress. Removing an image a sandbox runs is refused; layers no image names are collected.
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
  /** Ids of the sandboxes that run this image (by digest) and keep its layers in use. */
  users: (digest: string) => Promise<string[]>;
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
}

export class ImageService {
  private readonly flights = new Map<string, Flight>();
  /** Layers of pulls in flight: not collected before their image is recorded. */
  private readonly pinned = new Map<string, number>();
  /** How many pulls reached a registry (tests count them). */
  pulls = 0;

  constructor(private readonly deps: ImageServiceDeps) {}

  list(): Image[] {
    return this.deps.records.list().map(toWire);
  }

  /** An image by reference (`node:20`, a full name, `name@digest`) or by digest (`sha256:…`). */
  find(text: string): ImageRecord {
    const r = this.lookup(text);
    if (!r) throw new CairnError("IMAGE_NOT_FOUND", `No image ${text} here; \`cairn image pull ${text}\` fetches it`);
    return r;
  }

  private lookup(text: string): ImageRecord | undefined {
    if (DIGEST.test(text)) return this.deps.records.get(text);
    const ref = parseReference(text);
    const name = formatReference(ref);
    const byName = this.deps.records.byRef(name);
    if (byName) return byName;
    if (ref.digest) {
      // name@digest: the platform manifest itself, or an index recorded under that name.
      const r = this.deps.records.get(ref.digest);
      if (r) return r;
    }
    return undefined;
  }

  get(text: string): Image {
    return toWire(this.find(text));
  }

  /** The image a sandbox create names: the one here, else pulled (once, for every caller at the same time). */
  async ensure(text: string, onEvent?: Listener): Promise<ImageRecord> {
    const here = this.lookup(text);
    if (here) return here;
    return this.flight(text, onEvent);
  }

  /** Pull: ask the registry what the reference names now, and fetch what is not here. */
  async pull(text: string, options: { onEvent?: Listener } = {}): Promise<Image> {
    return toWire(await this.flight(text, options.onEvent));
  }

  private flight(text: string, onEvent?: Listener): Promise<ImageRecord> {
    const ref = parseReference(text);
    const key = formatReference(ref);
    let f = this.flights.get(key);
    if (!f) {
      const listeners = new Set<Listener>();
      const emit = (e: PullEvent) => {
        for (const l of listeners) l(e);
      };
      const promise = this.fetch(ref, this.deps.registry, emit).finally(() => this.flights.delete(key));
      f = { promise, listeners };
      this.flights.set(key, f);
    }
    if (onEvent) f.listeners.add(onEvent);
    return f.promise;
  }

  private async fetch(ref: ImageReference, source: ImageSource, emit: Listener): Promise<ImageRecord> {
    this.pulls++;
    const resolved = await source.resolve(ref);
    return this.store(ref, resolved, source, emit);
  }

  /** Fetch the layers of a resolved image that are not here, then record it under `ref`. */
  private async store(ref: ImageReference | undefined, img: ResolvedImage, source: ImageSource, emit: Listener): Promise<ImageRecord> {
    const name = ref ? formatReference(ref) : undefined;
    const diffIds = img.config.rootfs!.diff_ids!;
    emit({ type: "resolved", ref: name ?? img.digest, digest: img.digest, layers: img.layers.map((l) => ({ digest: l.digest, sizeBytes: l.size })) });
    for (const d of diffIds) this.pinned.set(d, (this.pinned.get(d) ?? 0) + 1);
    try {
      let sizeBytes = 0;
      const queue = img.layers.map((l, i) => ({ layer: l, diffId: diffIds[i]! }));
      const worker = async () => {
        for (let job = queue.shift(); job; job = queue.shift()) sizeBytes += await this.fetchLayer(ref, source, job.layer, job.diffId, emit);
      };
      await Promise.all(Array.from({ length: Math.min(this.deps.parallel ?? 3, queue.length || 1) }, worker));
      const flat = diffIds.length > this.deps.maxLayers;
      if (flat) await this.deps.layers.flatten(img.digest, diffIds);
      const previous = this.deps.records.get(img.digest);
      const record: ImageRecord = {
        digest: img.digest,
        refs: [...new Set([...(previous?.refs ?? []), ...(name ? [name] : [])])],
        platform: img.platform,
        configDigest: img.configDigest,
        layers: img.layers.map((l, i) => ({ digest: l.digest, diffId: diffIds[i]!, size: l.size })),
        config: img.config.config ?? {},
        sizeBytes: previous?.sizeBytes || sizeBytes,
        flat,
        pulledAt: new Date().toISOString(),
      };
      // A tag names one image: the one it named before loses it.
      if (name) {
        for (const other of this.deps.records.list()) {
          if (other.digest !== img.digest && other.refs.includes(name)) await this.deps.records.put({ ...other, refs: other.refs.filter((r) => r !== name) });
        }
      }
      await this.deps.records.put(record);
      emit({ type: "image", image: toWire(record) });
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
  async importArchive(body: Readable, options: { name?: string } = {}): Promise<Image[]> {
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
      for (const { ref, image } of images) out.push(toWire(await this.store(ref, image, source, () => undefined)));
      return out;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Remove a name, or (by digest, or the last name of an image) the image: refused while a
   * sandbox runs it. Its layers go once no other image names them.
   */
  async remove(text: string): Promise<{ untagged: string[]; deleted: string | null }> {
    const r = this.find(text);
    const name = DIGEST.test(text) ? undefined : formatReference(parseReference(text));
    if (name && r.refs.includes(name) && r.refs.length > 1) {
      await this.deps.records.put({ ...r, refs: r.refs.filter((x) => x !== name) });
      return { untagged: [name], deleted: null };
    }
    const users = await this.deps.users(r.digest);
    if (users.length > 0) {
      throw new CairnError("IMAGE_IN_USE", `Image ${text} is in use by sandbox${users.length > 1 ? "es" : ""} ${users.slice(0, 5).join(", ")}${users.length > 5 ? ", …" : ""}; kill them first`);
    }
    await this.deps.records.delete(r.digest);
    await this.collect();
    return { untagged: r.refs, deleted: r.digest };
  }

  /** Host directories of an image's layers for a sandbox's overlay, bottom first. */
  async lowers(digest: string): Promise<string[]> {
    const r = this.deps.records.get(digest);
    if (!r) throw new CairnError("IMAGE_NOT_FOUND", `Image ${digest} is gone from this host; pull it again`);
    if (r.flat) return [await this.deps.layers.flatten(r.digest, r.layers.map((l) => l.diffId))];
    return r.layers.map((l) => this.deps.layers.path(l.diffId));
  }

  /**
   * Delete images no name points to and no sandbox runs, then layers no image needs. Images of
   * sandboxes keep their layers (and their flattened tree) until the sandbox is gone.
   */
  async collect(): Promise<void> {
    const keep = new Set<string>(this.pinned.keys());
    for (const r of this.deps.records.list()) {
      if (r.refs.length === 0 && (await this.deps.users(r.digest)).length === 0) {
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
