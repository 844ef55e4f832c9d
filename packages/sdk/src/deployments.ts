import type { Deployment } from "@cairn/protocol";
import type { HttpClient, RequestOptions } from "./transport/http.js";
import { toStream, type FileData } from "./transport/body.js";

export type { Deployment };

/**
 * Deployments: run an app with a persistent filesystem that survives every redeploy.
 *
 * @example
 * const d = await cairn.deployments.deploy({ app: "shop", data: fs.createReadStream("app.tar.gz") });
 * console.log(d.url); // http://shop.localhost:7070/
 */
export class Deployments {
  constructor(private readonly http: HttpClient) {}

  /**
   * Deploy a tar.gz (or tar with `format: "tar"`) of the app's directory. Resolves when the new
   * version serves; throws `DEPLOY_FAILED` (and the old version keeps serving) when it does not.
   *
   * @example
   * await cairn.deployments.deploy({ app: "shop", env: "beta", data: tarGz, cmd: "python3 main.py" });
   */
  async deploy(options: RequestOptions & { app: string; env?: string; cmd?: string; format?: "tar" | "tar.gz"; data: FileData }): Promise<Deployment> {
    const { signal, data, ...query } = options;
    const res = await this.http.request({
      method: "POST",
      path: "/v1/deployments",
      query,
      body: toStream(data),
      headers: { "content-type": "application/gzip" },
      signal,
    });
    return (await res.json()) as Deployment;
  }

  /** Newest first. @example const versions = await cairn.deployments.list({ app: "shop" }); */
  async list(options: RequestOptions & { app?: string; env?: string } = {}): Promise<Deployment[]> {
    const { signal, ...query } = options;
    return (await this.http.json<{ items: Deployment[] }>({ method: "GET", path: "/v1/deployments", query, signal })).items;
  }

  /**
   * A version's output: the latest (the one that serves, or the last that failed to start), the
   * one that serves now (`serving`), or any by number (`version`).
   * @example const { stdout } = await cairn.deployments.logs({ app: "shop" });
   */
  async logs(options: RequestOptions & { app: string; env?: string; serving?: boolean; version?: number }): Promise<{ deployment: Deployment; stdout: string; stderr: string }> {
    const { signal, ...query } = options;
    return this.http.json({ method: "GET", path: "/v1/deployments/logs", query, signal });
  }

  /** Stop an app; its filesystem is deleted only with `deleteFilesystem`. @example await cairn.deployments.remove({ app: "shop" }); */
  async remove(options: RequestOptions & { app: string; env?: string; deleteFilesystem?: boolean }): Promise<number> {
    const { signal, deleteFilesystem, ...query } = options;
    const r = await this.http.json<{ deployments: number }>({
      method: "DELETE",
      path: "/v1/deployments",
      query: { ...query, ...(deleteFilesystem ? { deleteFilesystem: "true" } : {}) },
      signal,
    });
    return r.deployments;
  }
}
