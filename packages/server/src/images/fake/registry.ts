/**
 * Stand-ins for the images subsystem's ports, for unit tests without root, tar or a network: a
 * registry in memory that counts what it is asked and can be held back, and a layer store of
 * plain directories that checks digests but unpacks nothing.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { CairnError } from "@cairn/protocol";
import type { Descriptor, ImageConfigFile, ImageSource, LayerStore, ResolvedImage } from "../port.js";
import { formatReference, type ImageReference } from "../reference.js";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export class FakeRegistry implements ImageSource {
  private readonly images = new Map<string, ResolvedImage>();
  private readonly blobs = new Map<string, Buffer>();
  readonly calls: { op: "resolve" | "blob"; what: string }[] = [];
  /** While set, resolve waits for it: a test holds a pull open. */
  gate: Promise<void> | undefined;

  /** Publish an image under `name` (e.g. `docker.io/library/app:1`); layers are their own diff ids. */
  push(name: string, layers: string[], config: ImageConfigFile["config"] = {}): ResolvedImage {
    const descs: Descriptor[] = layers.map((text) => {
      const b = Buffer.from(text);
      this.blobs.set(sha(b), b);
      return { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(b), size: b.length };
    });
    const cfg: ImageConfigFile = { architecture: "amd64", os: "linux", config, rootfs: { type: "layers", diff_ids: descs.map((d) => d.digest) } };
    const image: ResolvedImage = {
      digest: sha(Buffer.from(JSON.stringify({ name, descs, cfg }))),
      platform: "linux/amd64",
      layers: descs,
      config: cfg,
      configDigest: sha(Buffer.from(JSON.stringify(cfg))),
    };
    this.images.set(name, image);
    return image;
  }

  /** Make a blob's bytes differ from its digest (a tampered registry). */
  tamper(digest: string): void {
    this.blobs.set(digest, Buffer.from("tampered"));
  }

  async resolve(ref: ImageReference): Promise<ResolvedImage> {
    const name = formatReference({ ...ref, digest: undefined });
    this.calls.push({ op: "resolve", what: name });
    await this.gate;
    const byDigest = ref.digest ? [...this.images.values()].find((i) => i.digest === ref.digest) : undefined;
    const image = byDigest ?? this.images.get(name);
    if (!image) throw new CairnError("IMAGE_NOT_FOUND", `Registry ${ref.registry} has no ${ref.repository}:${ref.tag}`);
    return image;
  }

  async blob(_ref: ImageReference, layer: Descriptor): Promise<Readable> {
    this.calls.push({ op: "blob", what: layer.digest });
    const b = this.blobs.get(layer.digest);
    if (!b) throw new CairnError("REGISTRY_ERROR", `no blob ${layer.digest}`);
    return Readable.from([b]);
  }
}

export class DirLayerStore implements LayerStore {
  constructor(private readonly root: string) {}

  path(diffId: string): string {
    return join(this.root, diffId.slice(7));
  }

  async has(diffId: string): Promise<boolean> {
    return (await stat(this.path(diffId)).catch(() => undefined)) !== undefined;
  }

  async add(input: { stream: Readable; digest: string; diffId: string }): Promise<{ sizeBytes: number }> {
    const chunks: Buffer[] = [];
    for await (const c of input.stream) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (sha(body) !== input.digest) throw new CairnError("IMAGE_DIGEST_MISMATCH", `Layer ${input.digest} arrived as ${sha(body)}: nothing was stored`);
    await mkdir(this.path(input.diffId), { recursive: true });
    return { sizeBytes: body.length };
  }

  async flatten(key: string): Promise<string> {
    const dir = join(this.root, `flat-${key.slice(7)}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async collect(keep: Set<string>): Promise<void> {
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      const id = `sha256:${name.replace(/^flat-/, "")}`;
      if (!keep.has(id)) await rm(join(this.root, name), { recursive: true, force: true });
    }
  }

  async layers(): Promise<string[]> {
    return (await readdir(this.root).catch(() => [] as string[])).sort();
  }

  async usedBytes(): Promise<number> {
    return 0;
  }
}
