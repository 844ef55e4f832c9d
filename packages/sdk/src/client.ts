import type { Health } from "@cairn/protocol";
import { HttpClient, resolveClientOptions, type ClientOptions, type RequestOptions } from "./transport/http.js";
import { Volumes } from "./volume.js";
import { Sandboxes } from "./sandbox.js";
import { Deployments } from "./deployments.js";
import { Projects } from "./projects.js";
import { Images } from "./images.js";

/**
 * The Cairn client. Options fall back to `CAIRN_URL`, `CAIRN_API_KEY` and `CAIRN_PROJECT`.
 *
 * @example
 * import { Cairn } from "@cairn/sdk";
 * const cairn = new Cairn({ url: "http://127.0.0.1:7070", apiKey: process.env.CAIRN_API_KEY });
 * const volume = await cairn.volumes.create({ name: "team-data" });
 */
export class Cairn {
  readonly volumes: Volumes;
  readonly sandboxes: Sandboxes;
  readonly deployments: Deployments;
  /** OCI images on the host: pull, import, list, remove. */
  readonly images: Images;
  /** Projects and API keys (admin key only). */
  readonly projects: Projects;
  /** @internal */
  readonly http: HttpClient;
  private static defaultClient: Cairn | undefined;

  constructor(options: ClientOptions = {}) {
    this.http = new HttpClient(resolveClientOptions(options));
    this.volumes = new Volumes(this.http);
    this.sandboxes = new Sandboxes(this.http);
    this.deployments = new Deployments(this.http);
    this.images = new Images(this.http);
    this.projects = new Projects(this.http);
  }

  /** A client built from the environment, shared by static helpers such as `Volume.fromName`. */
  static default(): Cairn {
    return (Cairn.defaultClient ??= new Cairn());
  }

  /** @example const { version } = await cairn.health(); */
  async health(options: RequestOptions = {}): Promise<Health> {
    return this.http.json<Health>({ method: "GET", path: "/healthz", signal: options.signal });
  }
}
