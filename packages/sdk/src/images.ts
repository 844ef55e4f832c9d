import type { Image, PullEvent } from "@cairn/protocol";
import type { HttpClient, RequestOptions } from "./transport/http.js";
import { CairnError, isErrorCode } from "@cairn/protocol";
import { toStream, type FileData } from "./transport/body.js";
import { ndjson } from "./transport/ndjson.js";

export type { Image, PullEvent };

const enc = (s: string) => encodeURIComponent(s);

export interface PullOptions extends RequestOptions {
  /** Progress as the pull goes: `resolved`, then `layer` events (bytes per layer). */
  onProgress?: (event: Exclude<PullEvent, { type: "image" } | { type: "error" }>) => void;
}

/**
 * OCI images on the cairnd host: pulled from a registry (Docker Hub by default, any registry by
 * host name, loopback ones in plain HTTP) or imported from an archive, each layer unpacked once and
 * shared by every sandbox that runs it. `sandboxes.create({ image })` pulls what is not here yet.
 *
 * @example
 * const image = await cairn.images.pull("node:20", { onProgress: (e) => console.log(e) });
 * const sandbox = await cairn.sandboxes.create({ image: "node:20", volumes: { "/workspace": "my_project" } });
 */
export class Images {
  constructor(private readonly http: HttpClient) {}

  /**
   * Pull an image: its tag resolved to this host's platform and digest, the layers not here yet
   * fetched and checked. Concurrent pulls of one reference are one pull.
   *
   * @example const { digest } = await cairn.images.pull("127.0.0.1:5000/team/tool:1.2");
   */
  async pull(ref: string, options: PullOptions = {}): Promise<Image> {
    if (!options.onProgress) return this.http.json<Image>({ method: "POST", path: "/v1/images/pull", json: { ref }, signal: options.signal });
    const res = await this.http.request({ method: "POST", path: "/v1/images/pull", json: { ref, progress: true }, signal: options.signal });
    for await (const e of ndjson<PullEvent>(res.body!)) {
      if (e.type === "image") return e.image;
      if (e.type === "error") throw new CairnError(isErrorCode(e.error.code) ? e.error.code : "INTERNAL", e.error.detail);
      options.onProgress(e);
    }
    throw new CairnError("UNAVAILABLE", "The pull's progress stream ended without an answer");
  }

  /** The project's images (those it pulled or imported), newest first. @example for (const i of await cairn.images.list()) console.log(i.refs, i.digest); */
  async list(options: RequestOptions = {}): Promise<Image[]> {
    return (await this.http.json<{ items: Image[] }>({ method: "GET", path: "/v1/images", signal: options.signal })).items;
  }

  /** One image, by reference or digest. @example const image = await cairn.images.get("node:20"); */
  get(ref: string, options: RequestOptions = {}): Promise<Image> {
    return this.http.json<Image>({ method: "GET", path: `/v1/images/${enc(ref)}`, signal: options.signal });
  }

  /**
   * Remove an image (or one of its names): IMAGE_IN_USE while a sandbox runs it. Layers no
   * other image uses are deleted.
   *
   * @example await cairn.images.remove("node:20");
   */
  remove(ref: string, options: RequestOptions = {}): Promise<{ untagged: string[]; deleted: string | null }> {
    return this.http.json({ method: "DELETE", path: `/v1/images/${enc(ref)}`, signal: options.signal });
  }

  /**
   * Import the images of an archive: `docker save` output or an OCI image layout, as tar or
   * tar.gz. `name` names the image of an archive that holds one.
   *
   * @example
   * import { createReadStream } from "node:fs";
   * const [image] = await cairn.images.import(createReadStream("./tool.tar"), { name: "tool:1.2" });
   */
  async import(archive: FileData, options: RequestOptions & { name?: string } = {}): Promise<Image[]> {
    const res = await this.http.request({
      method: "POST",
      path: "/v1/images/import",
      query: { name: options.name },
      body: toStream(archive),
      headers: { "content-type": "application/x-tar" },
      signal: options.signal,
    });
    return ((await res.json()) as { items: Image[] }).items;
  }
}

