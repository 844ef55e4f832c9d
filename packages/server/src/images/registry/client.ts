/**
 * A client of the OCI distribution API (what Docker Hub, GHCR, ECR, Harbor and Debian's
 * `docker-registry` speak), reading only: resolve a reference to this host's manifest and config,
 * and stream layer blobs. Registries on loopback are spoken to in plain HTTP, as Docker does;
 * mirrors (CAIRN_REGISTRY_MIRRORS) are tried before the registry itself. Every document is checked
 * against the digest that names it; layer blobs are checked by the layer store as they are unpacked.
 */
import { Readable } from "node:stream";
import { CairnError } from "@cairn/protocol";
import type { Descriptor, ImageSource, ResolvedImage } from "../port.js";
import { choosePlatform, hostPlatform, MANIFEST_ACCEPT, MAX_DOCUMENT_BYTES, parseConfig, parseDocument, platformName, sha256, verifyDocument, type Platform } from "../manifest.js";
import { isInsecureRegistry, type ImageReference } from "../reference.js";
import { Authenticator, causeOf, registryWords, type Credentials } from "./auth.js";

export interface RegistryOptions {
  credentials?: Record<string, Credentials>;
  /** Registry host → base URLs tried first, in order (`docker.io` → `https://mirror.example`). */
  mirrors?: Record<string, string[]>;
  fetch?: typeof fetch;
  platform?: Platform;
}

/** `docker.io=https://m1,https://m2;ghcr.io=http://127.0.0.1:5001` → host → URLs. */
export function parseMirrors(text: string | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const entry of (text ?? "").split(/[;\s]+/).filter(Boolean)) {
    const i = entry.indexOf("=");
    if (i <= 0) throw new Error(`CAIRN_REGISTRY_MIRRORS: "${entry}" is not host=url[,url]`);
    const urls = entry.slice(i + 1).split(",").filter(Boolean);
    for (const u of urls) if (!/^https?:\/\/[^/]+/.test(u)) throw new Error(`CAIRN_REGISTRY_MIRRORS: "${u}" is not an http(s) URL`);
    out[entry.slice(0, i)] = urls.map((u) => u.replace(/\/+$/, ""));
  }
  return out;
}

export class RegistryClient implements ImageSource {
  private readonly fetchFn: typeof fetch;
  private readonly auth: Authenticator;
  private readonly platform: Platform;

  constructor(private readonly options: RegistryOptions = {}) {
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.auth = new Authenticator(options.credentials ?? {}, this.fetchFn);
    this.platform = options.platform ?? hostPlatform();
  }

  private origin(host: string): string {
    if (host === "docker.io") return "https://registry-1.docker.io";
    return `${isInsecureRegistry(host) ? "http" : "https"}://${host}`;
  }

  /**
   * GET a path of the registry's API for a repository: through each mirror, then the registry;
   * a 401 is answered once with credentials or a token. Returns a 2xx response or throws.
   */
  private async get(ref: ImageReference, path: string, accept: string | undefined, what: string, signal?: AbortSignal): Promise<Response> {
    const scope = `repository:${ref.repository}:pull`;
    const bases = [...(this.options.mirrors?.[ref.registry] ?? []), this.origin(ref.registry)];
    let last: CairnError | undefined;
    for (const [i, base] of bases.entries()) {
      const isMirror = i < bases.length - 1;
      try {
        return await this.getFrom(base, ref, path, accept, what, scope, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        last = err instanceof CairnError ? err : new CairnError("REGISTRY_ERROR", String(err));
        // A mirror that fails or lacks the image: the registry itself decides.
        if (!isMirror) throw last;
      }
    }
    throw last!;
  }

  private async getFrom(base: string, ref: ImageReference, path: string, accept: string | undefined, what: string, scope: string, signal?: AbortSignal): Promise<Response> {
    const host = new URL(base).host;
    const url = `${base}/v2/${ref.repository}/${path}`;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {};
      if (accept) headers.accept = accept;
      const authz = this.auth.header(host, scope);
      if (authz) headers.authorization = authz;
      let res: Response;
      try {
        res = await this.fetchFn(url, { headers, redirect: "follow", ...(signal ? { signal } : {}) });
      } catch (err) {
        if (signal?.aborted) throw err;
        throw new CairnError("REGISTRY_ERROR", `Cannot reach registry ${host}: ${causeOf(err)}`, { cause: err });
      }
      if (res.status === 401 && attempt === 0) {
        await res.body?.cancel();
        if (await this.auth.challenge(host, scope, res.headers.get("www-authenticate"), signal)) continue;
        throw new CairnError("REGISTRY_ERROR", `Registry ${host} wants credentials for ${ref.repository} and cairnd has none for it (CAIRN_REGISTRY_AUTH)`);
      }
      if (res.ok) return res;
      const words = registryWords(await res.text().catch(() => ""));
      if (res.status === 404 && what === "manifest") {
        throw new CairnError("IMAGE_NOT_FOUND", `Registry ${host} has no ${ref.repository}:${ref.digest ?? ref.tag}${words ? ` (${words})` : ""}`);
      }
      throw new CairnError("REGISTRY_ERROR", `Registry ${host} refused the ${what} of ${ref.repository}: HTTP ${res.status}${words ? ` ${words}` : ""}`);
    }
  }

  private async document(ref: ImageReference, reference: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; type: string | undefined }> {
    const res = await this.get(ref, `manifests/${reference}`, MANIFEST_ACCEPT, "manifest", signal);
    const bytes = await readCapped(res, MAX_DOCUMENT_BYTES, "manifest");
    if (reference.startsWith("sha256:")) verifyDocument(bytes, reference, "manifest");
    else {
      const said = res.headers.get("docker-content-digest");
      if (said && said.startsWith("sha256:")) verifyDocument(bytes, said, "manifest");
    }
    return { bytes, type: res.headers.get("content-type") ?? undefined };
  }

  async resolve(ref: ImageReference, options: { signal?: AbortSignal } = {}): Promise<ResolvedImage> {
    const first = await this.document(ref, ref.digest ?? ref.tag!, options.signal);
    let bytes = first.bytes;
    let doc = parseDocument(first.bytes, first.type);
    if (doc.kind === "index") {
      const entry = choosePlatform(doc.manifests, this.platform);
      const next = await this.document(ref, entry.digest, options.signal);
      bytes = next.bytes;
      doc = parseDocument(next.bytes, next.type);
      if (doc.kind !== "manifest") throw new CairnError("INVALID_IMAGE", "An index names another index for this platform; cairn follows one level");
    }
    const cfgRes = await this.get(ref, `blobs/${doc.config.digest}`, undefined, "config", options.signal);
    const cfgBytes = await readCapped(cfgRes, MAX_DOCUMENT_BYTES, "config");
    verifyDocument(cfgBytes, doc.config.digest, "config");
    const config = parseConfig(cfgBytes, doc.layers.length);
    const platform = config.os && config.architecture ? `${config.os}/${config.architecture}` : platformName(this.platform);
    if (config.architecture && config.architecture !== this.platform.architecture) {
      throw new CairnError("IMAGE_NOT_FOUND", `The image is built for ${platform}; this host runs ${platformName(this.platform)}`);
    }
    return { digest: sha256(bytes), platform, layers: doc.layers, config, configDigest: doc.config.digest };
  }

  async blob(ref: ImageReference, layer: Descriptor, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const res = await this.get(ref, `blobs/${layer.digest}`, undefined, "layer", options.signal);
    if (!res.body) throw new CairnError("REGISTRY_ERROR", `Registry ${ref.registry} sent an empty layer ${layer.digest}`);
    const stream = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
    // The registry may cut the connection before the layer store has begun to read (it prepares
    // its scratch dir first): an 'error' with no listener would take cairnd down. The reader still
    // sees the error, from the stream's errored state.
    stream.on("error", () => undefined);
    return stream;
  }
}

async function readCapped(res: Response, max: number, what: string): Promise<Uint8Array> {
  const length = Number(res.headers.get("content-length") ?? "0");
  if (length > max) {
    await res.body?.cancel();
    throw new CairnError("INVALID_IMAGE", `The image's ${what} is ${length} bytes, over the ${max} cairn reads`);
  }
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += c.length;
    if (n > max) throw new CairnError("INVALID_IMAGE", `The image's ${what} is over the ${max} bytes cairn reads`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
