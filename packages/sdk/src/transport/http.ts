import { CairnError, PROBLEM_CONTENT_TYPE } from "@cairn/protocol";
import type { BulkRequest, BulkResponse } from "./bulk-http.js";
import { backoffMs, delay } from "./retry.js";

export interface ClientOptions {
  /** Base URL of cairnd. Default: `CAIRN_URL`, else `http://127.0.0.1:7070`. */
  url?: string;
  /** API key. Default: `CAIRN_API_KEY`. */
  apiKey?: string;
  /** Act on this project (admin key only). Default: `CAIRN_PROJECT`. */
  project?: string;
  /** Replace `fetch`, e.g. to route requests in tests. */
  fetch?: typeof fetch;
  /** Retries of idempotent requests on network errors and 503. Default 2. */
  maxRetries?: number;
}

export interface RequestOptions {
  /** Abort the request (and any body stream). */
  signal?: AbortSignal;
}

interface ResolvedOptions {
  url: string;
  apiKey: string | undefined;
  project: string | undefined;
  fetch: typeof fetch;
  /** `fetch` was given: every request must go through it (no bulk path). */
  customFetch: boolean;
  maxRetries: number;
}

const env = (name: string): string | undefined =>
  typeof process !== "undefined" && process.env ? process.env[name] || undefined : undefined;

/** Options as the client uses them: each given one, else CAIRN_URL, CAIRN_API_KEY, CAIRN_PROJECT (empty counts as unset), else the default. */
export function resolveClientOptions(options: ClientOptions = {}): Readonly<ResolvedOptions> {
  return Object.freeze({
    url: (options.url ?? env("CAIRN_URL") ?? "http://127.0.0.1:7070").replace(/\/+$/, ""),
    apiKey: options.apiKey ?? env("CAIRN_API_KEY"),
    project: options.project ?? env("CAIRN_PROJECT"),
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    customFetch: options.fetch !== undefined,
    maxRetries: options.maxRetries ?? 2,
  });
}

export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD";
  path: string;
  query?: Record<string, string | number | boolean | string[] | undefined>;
  json?: unknown;
  /** A raw body: never retried, streamed with `duplex: "half"`. */
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

/**
 * Whether bulk-http.ts can carry a request to this URL here: Node (not Bun or Deno, whose `net`
 * differs), plain `http:`. Checked before importing it, so other runtimes never load `node:net`.
 */
function bulkCapable(url: string): boolean {
  const g = globalThis as { process?: { versions?: Record<string, string | undefined> }; Deno?: unknown; Bun?: unknown };
  const versions = g.process?.versions;
  return url.startsWith("http://") && typeof versions?.node === "string" && !versions.bun && g.Deno === undefined && g.Bun === undefined;
}

/** The one request helper: auth, problem+json errors, retries of idempotent requests only. */
export class HttpClient {
  /** Everything but the key, which lives in a private field: no SDK object serialises or prints it. */
  readonly options: Readonly<Omit<ResolvedOptions, "apiKey">>;
  readonly #apiKey: string | undefined;

  constructor(options: Readonly<ResolvedOptions>) {
    const { apiKey, ...rest } = options;
    this.#apiKey = apiKey;
    this.options = Object.freeze(rest);
  }

  /** `JSON.stringify` of any SDK object reaches this: the URL and project, never the key. */
  toJSON(): { url: string; project: string | undefined } {
    return { url: this.options.url, project: this.options.project };
  }

  url(path: string, query?: HttpRequest["query"]): string {
    const u = new URL(this.options.url + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) u.searchParams.append(k, item);
      else u.searchParams.set(k, String(v));
    }
    return u.toString();
  }

  private authHeaders(extra?: Record<string, string>): Record<string, string> {
    // A key that cannot even be sent (a stray newline or quote from a copy and paste, non-ASCII)
    // is refused here, as cairnd would refuse it, instead of failing inside fetch as if the
    // server were unreachable.
    if (this.#apiKey !== undefined && !/^[\x21-\x7e]+$/.test(this.#apiKey)) {
      throw new CairnError("UNAUTHORIZED", "The API key is malformed (it holds spaces, line breaks or characters outside ASCII): check CAIRN_API_KEY or --api-key");
    }
    if (this.options.project !== undefined && !/^[\x21-\x7e]+$/.test(this.options.project)) {
      throw new CairnError("PROJECT_NOT_FOUND", `Project ${JSON.stringify(this.options.project)} cannot exist: project names are lowercase letters, digits or hyphens`);
    }
    const headers: Record<string, string> = { ...extra };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    if (this.options.project) headers["x-cairn-project"] = this.options.project;
    return headers;
  }

  /** Whether `bulk` can carry requests to this cairnd (Node, plain http, no custom `fetch`). */
  bulkPossible(): boolean {
    return !this.options.customFetch && bulkCapable(this.options.url);
  }

  /**
   * A bulk transfer that skips `fetch` (bulk-http.ts says why), or `undefined` where that is not
   * possible (`bulkPossible`): the caller then uses `request`. Errors are the same as
   * `request`'s; a GET that got no answer at all is retried like `request` does.
   */
  async bulk(req: Omit<HttpRequest, "json" | "body" | "method"> & Pick<BulkRequest, "body" | "onBody"> & { method: BulkRequest["method"] }): Promise<BulkResponse | undefined> {
    if (!this.bulkPossible()) return undefined;
    const url = this.url(req.path, req.query);
    const { bulkRequest, BulkNetworkError } = await import("./bulk-http.js");
    for (let attempt = 0; ; attempt++) {
      let res: BulkResponse;
      try {
        res = await bulkRequest({ url, method: req.method, headers: this.authHeaders(req.headers), body: req.body, onBody: req.onBody, signal: req.signal });
      } catch (err) {
        if (req.signal?.aborted || !(err instanceof BulkNetworkError)) throw err;
        if (req.method === "GET" && !err.answered && attempt < this.options.maxRetries) {
          await delay(backoffMs(attempt), req.signal);
          continue;
        }
        throw new CairnError("UNAVAILABLE", `Cannot reach cairnd at ${this.options.url}: ${err.message}`, { cause: err });
      }
      if (res.status >= 200 && res.status < 300) return res;
      throw await errorFrom(new Response(new TextDecoder().decode(res.body), { status: res.status, headers: res.headers }));
    }
  }

  async request(req: HttpRequest): Promise<Response> {
    const headers = this.authHeaders(req.headers);
    let body: BodyInit | undefined = req.body;
    if (req.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.json);
    }
    const idempotent = req.body === undefined && ["GET", "HEAD", "PUT", "DELETE"].includes(req.method);
    const url = this.url(req.path, req.query);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        const init: RequestInit & { duplex?: "half" } = { method: req.method, headers };
        if (body !== undefined) init.body = body;
        if (req.signal) init.signal = req.signal;
        if (req.body !== undefined) init.duplex = "half";
        res = await this.options.fetch(url, init);
      } catch (err) {
        if (req.signal?.aborted) throw err;
        if (idempotent && attempt < this.options.maxRetries) {
          await delay(backoffMs(attempt), req.signal);
          continue;
        }
        throw new CairnError("UNAVAILABLE", `Cannot reach cairnd at ${this.options.url}: ${(err as Error).cause ?? (err as Error).message}`, { cause: err });
      }
      if (res.ok) return res;
      if (res.status === 503 && idempotent && attempt < this.options.maxRetries) {
        await res.body?.cancel();
        await delay(backoffMs(attempt), req.signal);
        continue;
      }
      throw await errorFrom(res);
    }
  }

  async json<T>(req: HttpRequest): Promise<T> {
    const res = await this.request(req);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}

async function errorFrom(res: Response): Promise<CairnError> {
  const type = res.headers.get("content-type") ?? "";
  const text = await res.text().catch(() => "");
  let body: unknown = text;
  if (type.includes(PROBLEM_CONTENT_TYPE) || type.includes("json")) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  return CairnError.fromProblem(body, res.status);
}

let defaultHttp: HttpClient | undefined;

/** The client built from the environment (CAIRN_URL, CAIRN_API_KEY, CAIRN_PROJECT), made once and shared. */
export function defaultHttpClient(): HttpClient {
  return (defaultHttp ??= new HttpClient(resolveClientOptions()));
}
