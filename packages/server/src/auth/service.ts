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
const sha256 = (s: string) => createHash("sha256").update(s).digest();

export function generateAdminKey(): string {
  return `cairn_admin_${randomBytes(32).toString("base64url")}`;
}

export class AuthService {
  private readonly adminHash: Buffer;

  constructor(
    private readonly store: MetadataStore,
    adminKey: string,
    private readonly defaultProject: Project,
  ) {
    this.adminHash = sha256(adminKey);
  }

  async authenticate(authorization: string | undefined, projectName: string | undefined): Promise<Principal> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
    if (!token) {
      throw new CairnError("UNAUTHORIZED", "Missing API key: send `Authorization: Bearer <key>` (the CLI and SDK read CAIRN_API_KEY)");
    }
    if (timingSafeEqual(sha256(token), this.adminHash)) {
      const project =
        projectName && projectName !== this.defaultProject.name ? await this.store.projects.byName(projectName) : this.defaultProject;
      if (!project) throw new CairnError("PROJECT_NOT_FOUND", `Project "${projectName}" does not exist; create it with POST /v1/projects`);
      return { kind: "admin", projectId: project.id, projectName: project.name };
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
    return { kind: "project", projectId: record.projectId, projectName: project?.name ?? record.projectId };
  }

  /** Create a key for a project; the full key is returned once and never stored. */
  async createKey(projectId: string, name: string): Promise<{ id: string; key: string }> {
    const short = newId("key", 12);
    const secret = randomBytes(32).toString("base64url");
    await this.store.keys.insert({ id: short, projectId, name, secretHash: sha256(secret).toString("hex") });
    return { id: short, key: `cairn_${short.slice(4)}_${secret}` };
  }
}
