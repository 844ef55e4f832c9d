/**
 * An image's `User` (`node`, `1000`, `app:staff`, `1000:1000`) as ids, read from the image's own
 * /etc/passwd and /etc/group as its layers stack them. The layers are untrusted: a path is read
 * only through real directories (never a symlink), a whiteout above ends the search as the overlay
 * would, and only a small regular file is read. (An opaque /etc above a lower one that alone holds
 * passwd is not seen as opaque here: the lower file is read. Images do not do that to /etc.)
 */
import { lstat, open } from "node:fs/promises";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";

const MAX_BYTES = 1024 * 1024;

/** A file of the merged image (`etc/passwd`), from the layers bottom first: its text, or undefined. */
export async function readImageFile(layers: string[], path: string): Promise<string | undefined> {
  const parts = path.split("/").filter(Boolean);
  for (const layer of [...layers].reverse()) {
    let dir = layer;
    for (const [i, name] of parts.entries()) {
      const p = join(dir, name);
      const st = await lstat(p).catch(() => undefined);
      if (!st) break; // not in this layer: look below
      if (st.isCharacterDevice() && st.rdev === 0) return undefined; // a whiteout: deleted above
      if (i < parts.length - 1) {
        if (!st.isDirectory()) return undefined; // a symlink or a file on the way: not followed
        dir = p;
        continue;
      }
      if (!st.isFile() || st.size > MAX_BYTES) return undefined;
      const fh = await open(p, "r");
      try {
        return (await fh.readFile()).toString("utf8");
      } finally {
        await fh.close();
      }
    }
  }
  return undefined;
}

/** uid, gid and home of an image's user; root when it names none. */
export async function resolveUser(layers: string[], user: string | undefined): Promise<{ uid: number; gid: number; home: string | undefined }> {
  if (!user) return { uid: 0, gid: 0, home: undefined };
  const [u, g] = user.split(":", 2) as [string, string | undefined];
  const passwd = (await readImageFile(layers, "etc/passwd")) ?? "";
  const entries = passwd.split("\n").map((l) => l.split(":")).filter((f) => f.length >= 7);
  const byName = entries.find((f) => f[0] === u);
  const byId = /^\d+$/.test(u) ? entries.find((f) => f[2] === u) : undefined;
  const entry = byName ?? byId;
  let uid: number;
  if (/^\d+$/.test(u)) uid = Number(u);
  else if (entry) uid = Number(entry[2]);
  else throw new CairnError("INVALID_IMAGE", `The image runs as user "${u}", which its /etc/passwd does not name`);
  let gid = entry ? Number(entry[3]) : uid;
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const group = ((await readImageFile(layers, "etc/group")) ?? "").split("\n").map((l) => l.split(":")).find((f) => f[0] === g);
      if (!group) throw new CairnError("INVALID_IMAGE", `The image runs as group "${g}", which its /etc/group does not name`);
      gid = Number(group[2]);
    }
  }
  if (!(uid >= 0 && uid < 65536 && gid >= 0 && gid < 65536)) throw new CairnError("INVALID_IMAGE", `The image's user ${user} is outside the ids a sandbox has (0-65535)`);
  return { uid, gid, home: entry?.[5] || undefined };
}
