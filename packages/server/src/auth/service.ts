/**
 * API keys: `cairn_<id>_<secret>`. Only a SHA-256 of the secret is stored; lookups go by id and
 * the hash is compared in constant time. The admin key acts on the `default` project unless the
 * request names another with `X-Cairn-Project`.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { CairnError } from "@cairn/protocol";
import { newId } from "../ids.js";
import type { MetadataStore, Project } from "../storage/metadata-store.js";

export interface Principal {
  kind: "admin" | "project";
  projectId: string;
  projectName: string;
}

const KEY_PATTERN = /^cairn_([0-9a-z]{12})_([A-Za-z0-9_-]{43})$/;
/** How long a checked key is trusted without asking the store again: the bound on a revocation elsewhere. */
export const AUTH_CACHE_MS = 1000;
const AUTH_CACHE_MAX = 10_000;
const sha256 = (s: string) => createHash("sha256").update(s).digest();

export function generateAdminKey(): string {
  return `cairn_admin_${randomBytes(32).toString("base64url")}`;
}

export class AuthService {
  private readonly adminHash: Buffer;
  /**
   * Keys that passed, for a moment: every request checks its key, and the store's two lookups were
   * a large part of a small request. Only successes are kept; a revocation through this cairnd
   * forgets its key at once, one through another host is seen within AUTH_CACHE_MS.
   */
  private readonly passed = new Map<string, { principal: Principal; keyId: string | undefined; until: number }>();

  constructor(
    private readonly store: MetadataStore,
    adminKey: string,
    private readonly defaultProject: Project,
  ) {
    this.adminHash = sha256(adminKey);
  }

  async authenticate(authorization: string | undefined, projectName: string | undefined): Promise<Principal> {
    const cacheKey = `${authorization ?? ""}\n${projectName ?? ""}`;
    const hit = this.passed.get(cacheKey);
    const now = Date.now();
    if (hit && hit.until > now) return hit.principal;
    const { principal, keyId } = await this.check(authorization, projectName);
    if (this.passed.size >= AUTH_CACHE_MAX) this.passed.clear();
    this.passed.set(cacheKey, { principal, keyId, until: now + AUTH_CACHE_MS });
    return principal;
  }

  /** Revoke a project's key: requests with it are refused from now on. False when there is no such key. */
  async revokeKey(projectId: string, keyId: string): Promise<boolean> {
    const deleted = await this.store.keys.delete(projectId, keyId);
    for (const [k, v] of this.passed) if (v.keyId === keyId) this.passed.delete(k);
    return deleted;
  }

  private async check(authorization: string | undefined, projectName: string | undefined): Promise<{ principal: Principal; keyId: string | undefined }> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
    if (!token) {
      throw new CairnError("UNAUTHORIZED", "Missing API key: send `Authorization: Bearer <key>` (the CLI and SDK read CAIRN_API_KEY)");
    }
    if (timingSafeEqual(sha256(token), this.adminHash)) {
      const project =
        projectName && projectName !== this.defaultProject.name ? await this.store.projects.byName(projectName) : this.defaultProject;
      if (!project) throw new CairnError("PROJECT_NOT_FOUND", `Project "${projectName}" does not exist; create it with POST /v1/projects`);
      return { principal: { kind: "admin", projectId: project.id, projectName: project.name }, keyId: undefined };
    }
    const m = KEY_PATTERN.exec(token);
    const record = m ? await this.store.keys.get(`key_${m[1]}`) : undefined;
    // Compare against a dummy hash when the id is unknown, so timing does not reveal which ids exist.
    const expected = record ? Buffer.from(record.secretHash, "hex") : this.adminHash;
    const ok = timingSafeEqual(sha256(m?.[2] ?? token), expected) && record !== undefined;
    if (!ok || !record) throw new CairnError("UNAUTHORIZED", "Invalid API key");
    if (projectName && projectName !== "") {
      const project = await this.store.projects.byName(projectName);
      if (!project || project.id !== record.projectId) {
        throw new CairnError("FORBIDDEN", "This API key belongs to another project; drop X-Cairn-Project or use that project's key");
      }
    }
    const project = await this.store.projects.byId(record.projectId);
    return { principal: { kind: "project", projectId: record.projectId, projectName: project?.name ?? record.projectId }, keyId: record.id };
  }

  /** Create a key for a project; the full key is returned once and never stored. */
  async createKey(projectId: string, name: string): Promise<{ id: string; key: string }> {
    const short = newId("key", 12);
    const secret = randomBytes(32).toString("base64url");
    await this.store.keys.insert({ id: short, projectId, name, secretHash: sha256(secret).toString("hex") });
    return { id: short, key: `cairn_${short.slice(4)}_${secret}` };
  }
}
