/**
 * Images from an archive instead of a registry: `docker save` output (manifest.json, config and
 * layer tars by name) or an OCI image layout (oci-layout, index.json, blobs/sha256/…), extracted
 * into a private directory first. The same checks as a pull apply: every document against its
 * digest, every layer by the layer store. Names inside the archive are untrusted: only plain
 * relative paths to regular files are read.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readFile } from "node:fs/promises";
import { join, normalize } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CairnError } from "@cairn/protocol";
import { saysNoSpace } from "../../host/exec.js";
import type { Descriptor, ImageSource, ResolvedImage } from "../port.js";
import { choosePlatform, hostPlatform, MAX_DOCUMENT_BYTES, parseConfig, parseDocument, platformName, sha256, verifyDocument } from "../manifest.js";
import { parseReference, type ImageReference } from "../reference.js";

/** Extract an uploaded archive (tar, optionally gzip) into `dir`: no owners, no special files kept by the readers. */
export async function extractArchive(body: Readable, dir: string): Promise<void> {
  const tar = spawn("tar", ["-x", "-f", "-", "-C", dir, "--no-same-owner", "--no-same-permissions", "--auto-compress"], { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  tar.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => {
    tar.on("error", () => resolve(-1));
    tar.on("close", resolve);
  });
  // Not pipeline(): it would destroy the request body when tar is done first. tar stops at the
  // archive's end marker and may leave padding after it unread; its stdin closing then (EPIPE) is
  // the normal end, its exit code says how it went, and the rest of the body is read and dropped
  // so the client gets the answer. The client's body breaking off is an interrupted upload.
  const fed = new Promise<Error | undefined>((resolve) => {
    body.once("end", () => resolve(undefined));
    body.once("error", (err) => resolve(err));
    body.once("close", () => {
      if (!body.readableEnded) resolve(new Error("the connection closed before the body ended"));
    });
    tar.stdin.once("error", () => {
      body.unpipe(tar.stdin);
      body.resume();
      resolve(undefined);
    });
  });
  body.pipe(tar.stdin);
  const broken = await fed;
  if (broken) {
    tar.kill("SIGKILL");
    await exited;
    throw new CairnError("INVALID_REQUEST", `The upload was interrupted: ${broken.message}; nothing was stored`, { cause: broken });
  }
  const code = await exited;
  if (code !== 0) {
    if (saysNoSpace(stderr)) throw new CairnError("POOL_FULL", "The storage pool has no room for this archive; nothing was stored");
    throw new CairnError("INVALID_ARCHIVE", `The image archive could not be read: ${stderr.trim().split("\n")[0] ?? `tar exited with ${code}`}`);
  }
}

/** A path inside the archive: relative, no `..`, a regular file (not a symlink). */
async function member(root: string, name: string): Promise<string> {
  const n = normalize(name);
  if (n.startsWith("/") || n === ".." || n.startsWith("../")) throw new CairnError("INVALID_ARCHIVE", `The archive names ${JSON.stringify(name)}, outside itself`);
  const path = join(root, n);
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile()) throw new CairnError("INVALID_ARCHIVE", `The archive lacks ${JSON.stringify(name)} (or it is not a regular file)`);
  return path;
}

async function readSmall(path: string): Promise<Buffer> {
  const st = await lstat(path);
  if (st.size > MAX_DOCUMENT_BYTES) throw new CairnError("INVALID_ARCHIVE", `${path} is too large for an image document`);
  return readFile(path);
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return `sha256:${h.digest("hex")}`;
}

export interface ArchiveImages {
  images: { ref: ImageReference | undefined; image: ResolvedImage }[];
  source: ImageSource;
}

const nameOf = (text: string | undefined): ImageReference | undefined => {
  if (!text || !/[/:]/.test(text)) return undefined; // a bare tag names no repository
  try {
    return parseReference(text);
  } catch {
    return undefined;
  }
};

/** Read the images of an extracted archive (this host's platform of each). */
export async function readArchive(root: string): Promise<ArchiveImages> {
  const files = new Map<string, string>(); // digest → path of its bytes
  const source: ImageSource = {
    resolve: () => Promise.reject(new CairnError("INVALID_IMAGE", "an archive is not a registry")),
    blob: async (_ref, layer: Descriptor) => {
      const path = files.get(layer.digest) ?? (await member(root, `blobs/sha256/${layer.digest.slice(7)}`));
      return createReadStream(path, { highWaterMark: 1024 * 1024 });
    },
  };
  const images: ArchiveImages["images"] = [];
  if (await lstat(join(root, "manifest.json")).catch(() => undefined)) {
    // docker save: layers are plain tars named in manifest.json; their digest is their diff id.
    const list = JSON.parse((await readSmall(await member(root, "manifest.json"))).toString("utf8")) as { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
    if (!Array.isArray(list)) throw new CairnError("INVALID_ARCHIVE", "manifest.json is not a list of images");
    for (const entry of list) {
      const cfgBytes = await readSmall(await member(root, entry.Config));
      const config = parseConfig(cfgBytes, entry.Layers.length);
      const layers: Descriptor[] = [];
      for (const l of entry.Layers) {
        const path = await member(root, l);
        const digest = await fileDigest(path);
        files.set(digest, path);
        layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: (await lstat(path)).size });
      }
      const configDigest = sha256(cfgBytes);
      // The manifest docker save does not write, made here: its digest is what a sandbox pins.
      const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: cfgBytes.length }, layers };
      const image: ResolvedImage = {
        digest: sha256(Buffer.from(JSON.stringify(manifest))),
        platform: config.os && config.architecture ? `${config.os}/${config.architecture}` : platformName(hostPlatform()),
        layers,
        config,
        configDigest,
      };
      const tags = entry.RepoTags ?? [];
      if (tags.length === 0) images.push({ ref: undefined, image });
      for (const t of tags) images.push({ ref: nameOf(t), image });
    }
    return { images, source };
  }
  if (!(await lstat(join(root, "index.json")).catch(() => undefined))) {
    throw new CairnError("INVALID_ARCHIVE", "Not an image archive: it has neither manifest.json (docker save) nor index.json (an OCI image layout)");
  }
  const blobBytes = async (d: Descriptor) => {
    const bytes = await readSmall(await member(root, `blobs/sha256/${d.digest.slice(7)}`));
    verifyDocument(bytes, d.digest, "manifest");
    return bytes;
  };
  const index = parseDocument(await readSmall(await member(root, "index.json")), undefined);
  if (index.kind !== "index") throw new CairnError("INVALID_ARCHIVE", "index.json of the layout is not an index");
  for (const top of index.manifests as (Descriptor & { annotations?: Record<string, string> })[]) {
    let bytes = await blobBytes(top);
    let doc = parseDocument(bytes, top.mediaType);
    if (doc.kind === "index") {
      const entry = choosePlatform(doc.manifests);
      bytes = await blobBytes(entry);
      doc = parseDocument(bytes, entry.mediaType);
      if (doc.kind !== "manifest") throw new CairnError("INVALID_IMAGE", "An index names another index for this platform; cairn follows one level");
    }
    const cfgBytes = await blobBytes(doc.config);
    const config = parseConfig(cfgBytes, doc.layers.length);
    const a = top.annotations ?? {};
    images.push({
      ref: nameOf(a["io.containerd.image.name"]) ?? nameOf(a["org.opencontainers.image.ref.name"]),
      image: {
        digest: sha256(bytes),
        platform: config.os && config.architecture ? `${config.os}/${config.architecture}` : platformName(hostPlatform()),
        layers: doc.layers,
        config,
        configDigest: doc.config.digest,
      },
    });
  }
  return { images, source };
}
