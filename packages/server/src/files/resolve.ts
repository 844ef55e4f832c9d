/**
 * Resolve a normalised volume path to a host path that stays inside the volume root. Symlinks
 * inside the volume are followed by us, as if the volume were `/` (an absolute target starts at
 * the volume root, `..` stops at it), never by the kernel: host mounts are `nosymfollow`, so a
 * symlink swapped in after this check makes the open fail instead of escaping.
 */
import { lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";

const MAX_HOPS = 40;

export interface Resolved {
  /** Host path inside the root. */
  hostPath: string;
  /** The volume path it resolved to (`/a/b`). */
  volumePath: string;
}

export async function resolveInVolume(root: string, volumePath: string, options: { followLast: boolean }): Promise<Resolved> {
  let pending = volumePath.split("/").filter((p) => p !== "" && p !== ".");
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    if (part === ".") continue;
    const candidate = join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        // The rest does not exist yet (a write creates it): keep it literal.
        resolved.push(part, ...pending.filter((p) => p !== "." && p !== ".."));
        if (pending.includes("..")) throw new CairnError("PATH_NOT_FOUND", `${volumePath} does not exist`);
        pending = [];
        break;
      }
      if ((err as NodeJS.ErrnoException).code === "ENOTDIR") {
        throw new CairnError("PATH_NOT_FOUND", `${volumePath}: a parent is not a directory`);
      }
      throw err;
    }
    if (isLink && (pending.length > 0 || options.followLast)) {
      if (++hops > MAX_HOPS) throw new CairnError("INVALID_PATH", `${volumePath}: too many levels of symbolic links`);
      const target = await readlink(candidate);
      if (target.startsWith("/")) resolved.length = 0;
      pending = [...target.split("/").filter((p) => p !== ""), ...pending];
      continue;
    }
    resolved.push(part);
  }
  return { hostPath: join(root, ...resolved), volumePath: "/" + resolved.join("/") };
}
