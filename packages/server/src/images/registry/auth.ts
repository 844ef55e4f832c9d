/**
 * Registry credentials and the token dance of the distribution API: a 401 names how to
 * authenticate in `WWW-Authenticate` (Basic, or Bearer with a realm that hands out tokens for a
 * scope); tokens are kept per registry and scope until they expire.
 */
import { readFileSync } from "node:fs";
import { CairnError } from "@cairn/protocol";

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Credentials per registry host from a Docker-style config file (`{"auths": {"host": {"auth":
 * base64("user:pass")}}}`, or `username`/`password`), the format operators already have.
 */
export function loadCredentials(path: string | undefined): Record<string, Credentials> {
  if (!path) return {};
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(readFileSync(path, "utf8")) as typeof doc;
  } catch (err) {
    throw new Error(`CAIRN_REGISTRY_AUTH: cannot read ${path}: ${(err as Error).message}`);
  }
  const out: Record<string, Credentials> = {};
  for (const [key, entry] of Object.entries(doc.auths ?? {})) {
    // Docker writes Docker Hub as a URL; every other registry by its host.
    const host = key.replace(/^https?:\/\//, "").replace(/\/.*$/, "").replace(/^(index|registry-1)\.docker\.io$/, "docker.io");
    if (entry.username !== undefined && entry.password !== undefined) out[host] = { username: entry.username, password: entry.password };
    else if (entry.auth) {
      const text = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = text.indexOf(":");
      if (i > 0) out[host] = { username: text.slice(0, i), password: text.slice(i + 1) };
    }
  }
  return out;
}

/** The parameters of a `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1]!.toLowerCase(), params };
}

const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;

export class Authenticator {
  private readonly tokens = new Map<string, { header: string; until: number }>();

  constructor(
    private readonly credentials: Record<string, Credentials>,
    private readonly fetchFn: typeof fetch,
  ) {}

  /** The Authorization header known for this registry and scope, if any. */
  header(host: string, scope: string): string | undefined {
    const t = this.tokens.get(`${host} ${scope}`);
    if (t && t.until > Date.now()) return t.header;
    return undefined;
  }

  /** Answer a 401: get a token (or use Basic) for the scope; false when there is nothing to try. */
  async challenge(host: string, scope: string, header: string | null, signal?: AbortSignal): Promise<boolean> {
    const ch = parseChallenge(header);
    const creds = this.credentials[host];
    const key = `${host} ${scope}`;
    if (ch?.scheme === "basic") {
      if (!creds) return false;
      this.tokens.set(key, { header: basic(creds), until: Number.MAX_SAFE_INTEGER });
      return true;
    }
    if (ch?.scheme !== "bearer" || !ch.params.realm) return false;
    let realm: URL;
    try {
      realm = new URL(ch.params.realm);
    } catch {
      throw new CairnError("REGISTRY_ERROR", `Registry ${host} named a token service that is no URL: ${ch.params.realm}`);
    }
    if (ch.params.service) realm.searchParams.set("service", ch.params.service);
    realm.searchParams.set("scope", ch.params.scope ?? scope);
    let res: Response;
    try {
      res = await this.fetchFn(realm, { headers: creds ? { authorization: basic(creds) } : {}, ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new CairnError("REGISTRY_ERROR", `Cannot reach the token service of ${host} (${realm.origin}): ${causeOf(err)}`, { cause: err });
    }
    const text = await res.text();
    if (!res.ok) throw new CairnError("REGISTRY_ERROR", `The token service of ${host} refused: HTTP ${res.status} ${registryWords(text)}`);
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new CairnError("REGISTRY_ERROR", `The token service of ${host} answered no JSON`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new CairnError("REGISTRY_ERROR", `The token service of ${host} answered no token`);
    // Tokens last 60 s unless told otherwise; renew a little early.
    const life = Math.max(10, (body.expires_in ?? 60) - 5) * 1000;
    this.tokens.set(key, { header: `Bearer ${token}`, until: Date.now() + life });
    return true;
  }
}

/** What a registry said, in its own words: the distribution API's `errors` list, or the text. */
export function registryWords(text: string): string {
  try {
    const doc = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[]; details?: string; error?: string };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) return doc.errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
    if (typeof doc.details === "string") return doc.details;
    if (typeof doc.error === "string") return doc.error;
  } catch {
    // not JSON: the text itself
  }
  return text.trim().slice(0, 300);
}

export function causeOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}
