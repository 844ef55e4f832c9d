/**
 * Image references as Docker reads them: `node:20` is `docker.io/library/node:20`; the first
 * component is a registry host when it has a dot or a colon or is `localhost`; no tag is `latest`.
 */
import { CairnError } from "@cairn/protocol";

export interface ImageReference {
  /** Registry host as given (`docker.io`, `127.0.0.1:5000`, `ghcr.io`). */
  registry: string;
  /** Repository path within the registry (`library/node`). */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

export const DEFAULT_REGISTRY = "docker.io";
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
export const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function parseReference(text: string): ImageReference {
  const bad = (why: string) => new CairnError("INVALID_IMAGE", `"${text}" is not an image reference: ${why}`);
  let rest = text.trim();
  if (rest === "" || rest.length > 512) throw bad("empty or too long");
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad("the digest must be sha256:<64 hex digits>");
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad("a tag is letters, digits, '_', '.' and '-', at most 128");
  }
  const parts = rest.split("/");
  let registry = DEFAULT_REGISTRY;
  if (parts.length > 1 && (parts[0]!.includes(".") || parts[0]!.includes(":") || parts[0] === "localhost")) {
    registry = parts.shift()!;
    if (!/^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(registry)) throw bad(`"${registry}" is not a registry host`);
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && parts.length === 1) parts.unshift("library");
  for (const p of parts) if (!COMPONENT.test(p)) throw bad(`"${p}" must be lowercase letters, digits and separators`);
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository: parts.join("/"), tag, digest };
}

/** The full name: `docker.io/library/node:20`, `host/repo@sha256:…`. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ""}${r.digest !== undefined ? `@${r.digest}` : ""}`;
}

/** Whether a registry is spoken to in plain HTTP: loopback only, as Docker does. */
export function isInsecureRegistry(host: string): boolean {
  const name = host.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  return name === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(name) || name === "::1";
}
