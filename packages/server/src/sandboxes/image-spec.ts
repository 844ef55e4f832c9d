/**
 * What a sandbox takes from its image: the digest it pins (a tag may move later; the sandbox
 * keeps what it started with), the environment, working directory and user the image asks for,
 * and the command its background process runs when none is given (entrypoint, then cmd).
 */
import type { ImageRecord } from "../images/records.js";
import { resolveUser } from "../images/user.js";

export interface SandboxImage {
  /** The reference as the create named it, in full (`docker.io/library/node:20`). */
  ref: string;
  digest: string;
  user?: { uid: number; gid: number };
  /** Entrypoint and cmd: what runs when a process is started without a command. */
  argv: string[];
  exposedPorts: string[];
}

export interface ImageDefaults {
  image: SandboxImage;
  env: Record<string, string>;
  cwd: string | undefined;
}

export async function imageDefaults(record: ImageRecord, ref: string, lowers: string[]): Promise<ImageDefaults> {
  const c = record.config;
  const env: Record<string, string> = {};
  for (const kv of c.Env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const user = await resolveUser(lowers, c.User || undefined);
  if (env.HOME === undefined) env.HOME = user.home ?? (user.uid === 0 ? "/root" : "/");
  const image: SandboxImage = {
    ref,
    digest: record.digest,
    argv: [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])],
    exposedPorts: Object.keys(c.ExposedPorts ?? {}),
  };
  if (user.uid !== 0 || user.gid !== 0) image.user = { uid: user.uid, gid: user.gid };
  return { image, env, cwd: c.WorkingDir || undefined };
}
