/**
 * The images subsystem's ports. `ImageSource` is where images come from: a registry speaking the
 * OCI distribution API (`registry/`), or an image archive already on disk (`archive/`).
 * `LayerStore` keeps each layer unpacked once, content-addressed, in the pool (`store/`). The
 * image service above them (service.ts) pulls, pins, lists and removes; `fake/` stands in for
 * both ports in unit tests.
 */
import type { Readable } from "node:stream";
import type { ImageReference } from "./reference.js";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The parts of an image config (`application/vnd.oci.image.config.v1+json`) cairn reads. */
export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  config?: {
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    ExposedPorts?: Record<string, unknown> | null;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** One platform's image, resolved from a reference: its manifest's digest, layers and config, all verified. */
export interface ResolvedImage {
  /** Digest of the platform manifest: what a sandbox pins. */
  digest: string;
  platform: string;
  /** Bottom first. */
  layers: Descriptor[];
  config: ImageConfigFile;
  /** Digest of the config blob (the image id, as Docker names it). */
  configDigest: string;
}

export interface ImageSource {
  /** Resolve a reference (a tag, a digest, an index) to this host's platform. */
  resolve(ref: ImageReference, options?: { signal?: AbortSignal }): Promise<ResolvedImage>;
  /** A layer's bytes as stored (compressed or not); the caller verifies them against the digest. */
  blob(ref: ImageReference, layer: Descriptor, options?: { signal?: AbortSignal }): Promise<Readable>;
}

export interface LayerStore {
  /** Host directory of an unpacked layer (it exists once `has` says so). */
  path(diffId: string): string;
  has(diffId: string): Promise<boolean>;
  /**
   * Unpack a layer into the store: the stream is checked against `digest` (as it came) and
   * `diffId` (uncompressed) while it is unpacked into a private directory, which becomes the
   * layer with one rename only when both match. Nothing is left on any failure.
   */
  add(input: { stream: Readable; digest: string; size?: number; diffId: string; onBytes?: (n: number) => void; signal?: AbortSignal }): Promise<{ sizeBytes: number }>;
  /**
   * One directory holding these layers merged (bottom first), for images with more layers than a
   * sandbox stacks: built once per `key`, atomically like a layer.
   */
  flatten(key: string, diffIds: string[]): Promise<string>;
  /** Delete every layer and flattened tree not named in `keep` (and leftovers of interrupted work). */
  collect(keep: Set<string>): Promise<void>;
  /** Bytes the layers take. */
  usedBytes(): Promise<number>;
}
