/**
 * Manifests, indexes and configs as both sources read them (a registry, an archive): media types,
 * the platform choice for this host, and checks that what a document says is well formed.
 */
import { createHash } from "node:crypto";
import { CairnError } from "@cairn/protocol";
import type { Descriptor, ImageConfigFile } from "./port.js";
import { DIGEST } from "./reference.js";

export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(", ");

/** The largest manifest, index or config cairnd reads (they are small JSON documents). */
export const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** This host's platform, named as OCI names it. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  const p: Platform = { os: "linux", architecture: arch[process.arch] ?? process.arch };
  if (p.architecture === "arm64") p.variant = "v8";
  return p;
}

export const platformName = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

interface IndexDocument {
  mediaType?: string;
  manifests?: (Descriptor & { platform?: Partial<Platform> })[];
}
interface ManifestDocument {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
}

export type Parsed = { kind: "index"; manifests: (Descriptor & { platform?: Partial<Platform> })[] } | { kind: "manifest"; config: Descriptor; layers: Descriptor[] };

function descriptor(d: unknown, what: string): Descriptor {
  const x = d as Partial<Descriptor> | null;
  if (!x || typeof x.digest !== "string" || !DIGEST.test(x.digest) || typeof x.size !== "number" || x.size < 0) {
    throw new CairnError("INVALID_IMAGE", `The image's ${what} names a blob without a sha256 digest and a size; cairn reads sha256 images only`);
  }
  return { mediaType: typeof x.mediaType === "string" ? x.mediaType : "", digest: x.digest, size: x.size };
}

/** Parse a manifest or an index (by its media type, given or inside). */
export function parseDocument(bytes: Uint8Array, contentType: string | undefined): Parsed {
  let doc: IndexDocument & ManifestDocument;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as IndexDocument & ManifestDocument;
  } catch {
    throw new CairnError("INVALID_IMAGE", "The image's manifest is not JSON");
  }
  const type = (doc.mediaType ?? contentType ?? "").split(";")[0]!.trim();
  if (type === MEDIA.ociIndex || type === MEDIA.dockerList || (!doc.config && Array.isArray(doc.manifests))) {
    return { kind: "index", manifests: (doc.manifests ?? []).map((m) => ({ ...descriptor(m, "index"), ...(m.platform ? { platform: m.platform } : {}) })) };
  }
  if (!doc.config || !Array.isArray(doc.layers)) {
    throw new CairnError("INVALID_IMAGE", `Unsupported manifest type "${type || "unknown"}" (cairn reads OCI and Docker v2 schema 2 images)`);
  }
  return { kind: "manifest", config: descriptor(doc.config, "manifest"), layers: doc.layers.map((l) => descriptor(l, "manifest")) };
}

/** The entry of an index for this host: same OS and architecture, the variant when both name one. */
export function choosePlatform(manifests: (Descriptor & { platform?: Partial<Platform> })[], want: Platform = hostPlatform()): Descriptor & { platform?: Partial<Platform> } {
  const fits = manifests.filter((m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture);
  const exact = fits.find((m) => !want.variant || !m.platform?.variant || m.platform.variant === want.variant);
  if (exact) return exact;
  const offered = manifests.map((m) => (m.platform ? platformName(m.platform as Platform) : "unknown")).filter((p) => !p.startsWith("unknown/unknown"));
  throw new CairnError("IMAGE_NOT_FOUND", `The image has no ${platformName(want)} variant (it has ${offered.join(", ") || "none"})`);
}

export function parseConfig(bytes: Uint8Array, layers: number): ImageConfigFile {
  let cfg: ImageConfigFile;
  try {
    cfg = JSON.parse(Buffer.from(bytes).toString("utf8")) as ImageConfigFile;
  } catch {
    throw new CairnError("INVALID_IMAGE", "The image's config is not JSON");
  }
  const ids = cfg.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.length !== layers || !ids.every((d) => typeof d === "string" && DIGEST.test(d))) {
    throw new CairnError("INVALID_IMAGE", `The image's config must list one sha256 diff id per layer (${layers} layers)`);
  }
  return cfg;
}

/** Check a document's bytes against the digest that named it. */
export function verifyDocument(bytes: Uint8Array, digest: string, what: string): void {
  const got = sha256(bytes);
  if (got !== digest) throw new CairnError("IMAGE_DIGEST_MISMATCH", `The ${what} is ${got}, not ${digest} as it was named: nothing was stored`);
}
