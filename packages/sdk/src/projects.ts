import type { ApiKey, ApiKeyInfo, CreateProjectResult, Project } from "@cairn/protocol";
import type { HttpClient, RequestOptions } from "./transport/http.js";

export type { ApiKey, ApiKeyInfo, CreateProjectResult, Project };

const enc = (s: string) => encodeURIComponent(s);

/**
 * Projects and their API keys: admin key only. A project's key sees that project alone; a new
 * key's secret is in the answer once and never again.
 *
 * @example
 * const { project, apiKey } = await cairn.projects.create("shop");   // apiKey.key: store it now
 * const { key } = await cairn.projects.createKey("shop", { name: "ci" });
 * for (const k of await cairn.projects.listKeys("shop")) console.log(k.id, k.name);
 * await cairn.projects.revokeKey("shop", "key_0123456789ab");
 */
export class Projects {
  constructor(private readonly http: HttpClient) {}

  /** A project and its first key. @example const { apiKey } = await cairn.projects.create("shop"); */
  create(name: string, options: RequestOptions = {}): Promise<CreateProjectResult> {
    return this.http.json<CreateProjectResult>({ method: "POST", path: "/v1/projects", json: { name }, signal: options.signal });
  }

  /** Every project, by name. @example const projects = await cairn.projects.list(); */
  async list(options: RequestOptions = {}): Promise<Project[]> {
    return (await this.http.json<{ items: Project[] }>({ method: "GET", path: "/v1/projects", signal: options.signal })).items;
  }

  /** Another key for a project. @example const { key } = await cairn.projects.createKey("shop", { name: "ci" }); */
  createKey(project: string, options: RequestOptions & { name?: string } = {}): Promise<ApiKey> {
    return this.http.json<ApiKey>({
      method: "POST",
      path: `/v1/projects/${enc(project)}/keys`,
      json: options.name !== undefined ? { name: options.name } : {},
      signal: options.signal,
    });
  }

  /** A project's keys, without their secrets. @example const keys = await cairn.projects.listKeys("shop"); */
  async listKeys(project: string, options: RequestOptions = {}): Promise<ApiKeyInfo[]> {
    return (await this.http.json<{ items: ApiKeyInfo[] }>({ method: "GET", path: `/v1/projects/${enc(project)}/keys`, signal: options.signal })).items;
  }

  /** Revoke a key: requests with it are 401 from now on. @example await cairn.projects.revokeKey("shop", id); */
  async revokeKey(project: string, keyId: string, options: RequestOptions = {}): Promise<void> {
    await this.http.json({ method: "DELETE", path: `/v1/projects/${enc(project)}/keys/${enc(keyId)}`, signal: options.signal });
  }
}
