/**
 * Resolve a normalised volume path to a host path that stays inside the volume root. Symlinks
 * inside the volume are followed by us, as if the volume were `/` (an absolute target starts at
 * the volume root, `..` stops at it), never by the kernel: host mounts are `nosymfollow`, so a
 * symlink swapped in after this check makes the open fail instead of escaping.
 */
import type { Stats } from "node:fs";
import { readlink } from "node:fs/promises";
import { lstatQuick } from "./quick-fs.js";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";

const MAX_HOPS = 40;

export interface Resolved {
  /** Host path inside the root. */
  hostPath: string;
  /** The volume path it resolved to (`/a/b`). */
  volumePath: string;
  /** lstat of `hostPath`, when resolving took it (absent when the path does not exist). */
  stat?: Stats;
}

/**
 * Roots mounted `nosymfollow`: the kernel refuses to walk through any symlink under them (ELOOP),
 * so one successful lstat of a whole path proves none of its parents is a symlink.
 */
const refusingSymlinks = new Set<string>();

/** Say that `root` is a mount where the kernel follows no symlink (the loop engine's mounts). */
export function declareSymlinksRefused(root: string): void {
  if (refusingSymlinks.size > 100_000) refusingSymlinks.clear();
  refusingSymlinks.add(root);
}

export async function resolveInVolume(root: string, volumePath: string, options: { followLast: boolean }): Promise<Resolved> {
  // One lstat when the kernel itself refuses symlinks here and `volumePath` is normalised (no `..`).
  if (refusingSymlinks.has(root) && !volumePath.split("/").some((p) => p === ".." || p === ".")) {
    const hostPath = join(root, volumePath);
    const st = await lstatQuick(hostPath).catch(() => undefined);
    if (st && !(st.isSymbolicLink() && options.followLast)) return { hostPath, volumePath, stat: st };
    // Missing, behind a symlink, or a link to follow: walk it.
  }
  let pending = volumePath.split("/").filter((p) => p !== "" && p !== ".");
  const resolved: string[] = [];
  let hops = 0;
  let last: Stats | undefined;
  while (pending.length > 0) {
    const part = pending.shift()!;
    last = undefined;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    if (part === ".") continue;
    const candidate = join(root, ...resolved, part);
    let isLink = false;
    let st: Stats;
    try {
      const found = await lstatQuick(candidate);
      if (!found) throw Object.assign(new Error(`ENOENT: ${candidate}`), { code: "ENOENT" });
      st = found;
      isLink = st.isSymbolicLink();
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
    last = st;
  }
  return { hostPath: join(root, ...resolved), volumePath: "/" + resolved.join("/"), ...(last ? { stat: last } : {}) };
}
