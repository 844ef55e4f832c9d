/**
 * File operations on a mounted volume besides whole-file read/write: stat, list, mkdir, move,
 * remove and edit. Every path goes through `resolvePath` (normalised, symlinks resolved inside the
 * volume, `/.cairn` out of reach); every change is synced before it is acknowledged.
 */
import { type Stats } from "node:fs";
import { chmod, link, lstat, mkdir, opendir, rename, rmdir, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  CairnError,
  RESERVED_DIR,
  normalizeVolumePath,
  type EditRequest,
  type EditResult,
  type FileEntry,
  type FileList,
  type MkdirResult,
} from "@cairn/protocol";
import { checkPreconditions, entryOf, mapFsError, openForRead, resolvePath, syncDir, writeFile } from "./core.js";
import { Staging } from "./staging.js";
import { firstAfter, sortedNames } from "./dir-snapshots.js";
import { lstatMany, lstatQuick } from "./quick-fs.js";

const errno = (err: unknown) => (err as NodeJS.ErrnoException)?.code;

/** lstat that turns "not there" into undefined and anything else into a mapped error. */
export async function lstatOrUndefined(hostPath: string, path: string): Promise<Stats | undefined> {
  try {
    return await lstatQuick(hostPath);
  } catch (err) {
    mapFsError(err, path);
  }
}

export async function statPath(root: string, rawPath: string, options: { follow?: boolean } = {}): Promise<FileEntry> {
  const path = normalizeVolumePath(rawPath);
  const target = await resolvePath(root, path, { followLast: options.follow === true });
  const st = target.stat ?? (await lstatOrUndefined(target.hostPath, path));
  if (!st) throw new CairnError("PATH_NOT_FOUND", `${path} does not exist`);
  return entryOf(path, target.hostPath, st);
}

// ---------------------------------------------------------------------------------------------
// list

/**
 * The `count` smallest names in a directory that sort after `after`, in one pass over it: memory
 * stays O(count) however large the directory is (a 200k-entry directory is listed page by page).
 */
async function smallestNames(dir: string, after: string | undefined, count: number, skip: (name: string) => boolean): Promise<string[]> {
  let names: string[] = [];
  // Once `count` names are kept, anything not below the largest of them cannot make the page.
  let bound: string | undefined;
  const handle = await opendir(dir, { bufferSize: 1024 });
  try {
    for (let d = await handle.read(); d !== null; d = await handle.read()) {
      const n = d.name;
      if ((after !== undefined && n <= after) || (bound !== undefined && n >= bound) || skip(n)) continue;
      names.push(n);
      if (names.length >= count * 2) {
        names.sort();
        names.length = count;
        bound = names[count - 1];
      }
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  names.sort();
  if (names.length > count) names.length = count;
  return names;
}

/**
 * Children of a directory in sorted order, after `after`, `chunk` at a time: from a snapshot of
 * its names (dir-snapshots.ts), or for a directory too big for one, one pass over it per chunk.
 */
async function* sortedChildren(
  dir: string,
  after: string | undefined,
  chunk: number,
  skip: (name: string) => boolean,
  current: boolean,
): AsyncGenerator<string[]> {
  let names: string[] | undefined;
  try {
    names = await sortedNames(dir, { current });
  } catch (err) {
    // The directory went away or was replaced while we listed it: nothing more in it.
    if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return;
    throw err;
  }
  if (names !== undefined) {
    for (let i = firstAfter(names, after); i < names.length; i += chunk) {
      const batch = names.slice(i, i + chunk).filter((n) => !skip(n));
      if (batch.length > 0) yield batch;
    }
    return;
  }
  let cursor = after;
  for (;;) {
    let batch: string[];
    try {
      batch = await smallestNames(dir, cursor, chunk, skip);
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return;
      throw err;
    }
    if (batch.length > 0) yield batch;
    if (batch.length < chunk) return;
    cursor = batch.at(-1);
  }
}

interface Walked {
  rel: string;
  hostPath: string;
  stat: Stats;
}

/**
 * Depth-first, siblings sorted, directories before their contents. `resume` is the relative
 * path of the last entry already returned, split in components: the walk continues right after it.
 * Symlinked directories are listed, never entered.
 */
async function* walkSorted(
  hostDir: string,
  relDir: string,
  options: { recursive: boolean; prefix: string; chunk: number; resume: string[]; hideReserved: boolean },
): AsyncGenerator<Walked> {
  // cairnd's own staging dir and ext4's lost+found are the filesystem's, not the user's files.
  const skip = (name: string) => options.hideReserved && relDir === "" && (name === RESERVED_DIR || name === "lost+found");
  const relOf = (name: string) => (relDir ? `${relDir}/${name}` : name);
  const wanted = (rel: string) => rel.startsWith(options.prefix);
  const mayContain = (rel: string) => options.recursive && (rel.startsWith(options.prefix) || options.prefix.startsWith(`${rel}/`));
  let after: string | undefined;
  if (options.resume.length > 0) {
    const first = options.resume[0]!;
    after = first;
    const rel = relOf(first);
    if (options.recursive && mayContain(rel)) {
      const st = await lstat(join(hostDir, first)).catch(() => undefined);
      if (st?.isDirectory()) yield* walkSorted(join(hostDir, first), rel, { ...options, resume: options.resume.slice(1) });
    }
  }
  // The first visit of a directory in this listing needs it as it is now; a resumed one does not.
  const current = options.resume.length === 0;
  for await (const batch of sortedChildren(hostDir, after, options.chunk, skip, current)) {
    const names = batch.filter((name) => wanted(relOf(name)) || mayContain(relOf(name)));
    // A name from readdir is one component: joining by hand is safe, and join() was a tenth of a page.
    const stats = await lstatMany(names.map((name) => `${hostDir}/${name}`));
    for (const [i, name] of names.entries()) {
      const st = stats[i];
      if (!st) continue; // deleted while we listed
      const rel = relOf(name);
      const hostPath = `${hostDir}/${name}`;
      if (wanted(rel)) yield { rel, hostPath, stat: st };
      if (st.isDirectory() && mayContain(rel)) yield* walkSorted(hostPath, rel, { ...options, resume: [] });
    }
  }
}

function encodeCursor(rel: string): string {
  return Buffer.from(JSON.stringify({ v: 1, after: rel }), "utf8").toString("base64url");
}

function decodeCursor(cursor: string): string {
  try {
    const c = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { v?: number; after?: unknown };
    if (c.v === 1 && typeof c.after === "string" && c.after.length > 0) return c.after;
  } catch {
    // fall through
  }
  throw new CairnError("INVALID_REQUEST", "cursor is not one this server gave out; list again without it");
}

/**
 * One page of a directory listing, sorted by path (depth first when recursive). A big directory's
 * names are read and sorted once per listing and kept while it is paged through, so a page costs
 * its own entries, not the directory's size. Every entry that exists throughout a listing is
 * listed exactly once, however the directory changes between pages.
 */
export async function listFiles(
  root: string,
  query: { path?: string | undefined; recursive?: boolean | undefined; prefix?: string | undefined; limit?: number | undefined; cursor?: string | undefined },
): Promise<FileList> {
  const path = normalizeVolumePath(query.path ?? "/");
  const target = await resolvePath(root, path, { followLast: true });
  const st = await lstatOrUndefined(target.hostPath, path);
  if (!st) throw new CairnError("PATH_NOT_FOUND", `${path} does not exist`);
  if (!st.isDirectory()) throw new CairnError("NOT_A_DIRECTORY", `${path} is not a directory; stat it instead`);
  const limit = query.limit ?? 1000;
  const resume = query.cursor !== undefined ? decodeCursor(query.cursor).split("/") : [];
  const items: FileEntry[] = [];
  let more = false;
  const walk = walkSorted(target.hostPath, "", {
    recursive: query.recursive === true,
    prefix: query.prefix ?? "",
    // One pass over a directory per page (a deep tree's small directories need no more).
    chunk: limit + 1,
    resume,
    hideReserved: target.volumePath === "/",
  });
  let lastRel = "";
  for await (const w of walk) {
    if (items.length === limit) {
      more = true;
      break;
    }
    const volumePath = path === "/" ? `/${w.rel}` : `${path}/${w.rel}`;
    items.push(await entryOf(volumePath, w.hostPath, w.stat));
    lastRel = w.rel;
  }
  await walk.return(undefined);
  return { items, nextCursor: more ? encodeCursor(lastRel) : null };
}

// ---------------------------------------------------------------------------------------------
// mkdir

/** `mkdir -p`: creates what is missing; an existing directory is fine, anything else at the path is a 409. */
export async function makeDirectory(root: string, rawPath: string, options: { mode?: number | undefined } = {}): Promise<MkdirResult> {
  const path = normalizeVolumePath(rawPath);
  const target = await resolvePath(root, path, { followLast: true });
  const parts = target.volumePath.split("/").filter(Boolean);
  let host = root;
  let created = false;
  for (const [i, part] of parts.entries()) {
    const next = join(host, part);
    const st = await lstatOrUndefined(next, path);
    if (st) {
      if (!st.isDirectory()) {
        const at = "/" + parts.slice(0, i + 1).join("/");
        throw new CairnError(
          i === parts.length - 1 ? "PATH_ALREADY_EXISTS" : "NOT_A_DIRECTORY",
          `${at} exists and is not a directory`,
        );
      }
    } else {
      try {
        await mkdir(next, { mode: options.mode ?? 0o755 });
        if (options.mode !== undefined) await chmod(next, options.mode); // the umask does not decide
      } catch (err) {
        if (errno(err) !== "EEXIST") throw err; // created meanwhile by someone else: fine if a directory
        const again = await lstat(next);
        if (!again.isDirectory()) throw new CairnError("PATH_ALREADY_EXISTS", `${path} exists and is not a directory`);
        host = next;
        continue;
      }
      await syncDir(host);
      created = true;
    }
    host = next;
  }
  const st = await lstat(host);
  return { ...(await entryOf(path, host, st)), created };
}

// ---------------------------------------------------------------------------------------------
// move

export async function movePath(
  root: string,
  rawFrom: string,
  rawTo: string,
  options: { overwrite?: boolean | undefined; onCommit?: (from: string, to: string) => void } = {},
): Promise<FileEntry> {
  const fromPath = normalizeVolumePath(rawFrom);
  const toPath = normalizeVolumePath(rawTo);
  if (fromPath === "/" || toPath === "/") throw new CairnError("INVALID_PATH", "The volume root cannot be moved or replaced");
  // The link itself moves, not what it points to.
  const from = await resolvePath(root, fromPath, { followLast: false });
  const to = await resolvePath(root, toPath, { followLast: false });
  const st = await lstatOrUndefined(from.hostPath, fromPath);
  if (!st) throw new CairnError("PATH_NOT_FOUND", `${fromPath} does not exist`);
  if (from.hostPath === to.hostPath) return entryOf(toPath, to.hostPath, st);
  if (st.isDirectory() && (to.volumePath + "/").startsWith(from.volumePath + "/")) {
    throw new CairnError("INVALID_PATH", `Cannot move ${fromPath} into itself (${toPath})`);
  }
  await makeDirectory(root, dirname(to.volumePath));
  options.onCommit?.(from.volumePath, to.volumePath);
  try {
    if (!options.overwrite) {
      if (st.isDirectory()) {
        if (await lstatOrUndefined(to.hostPath, toPath)) throw exists(toPath);
        await rename(from.hostPath, to.hostPath);
      } else {
        // link + unlink: atomic "create only if absent" for files and symlinks.
        await link(from.hostPath, to.hostPath);
        await unlink(from.hostPath);
      }
    } else {
      await rename(from.hostPath, to.hostPath);
    }
  } catch (err) {
    const code = errno(err);
    if (code === "EEXIST") throw exists(toPath);
    if (code === "ENOTEMPTY") throw new CairnError("DIRECTORY_NOT_EMPTY", `${toPath} is a directory that is not empty; remove it first`);
    if (code === "EISDIR") throw new CairnError("PATH_ALREADY_EXISTS", `${toPath} is a directory; a file cannot replace it`);
    if (code === "ENOTDIR") throw new CairnError("PATH_ALREADY_EXISTS", `${toPath} is not a directory; a directory cannot replace it`);
    if (code === "EINVAL") throw new CairnError("INVALID_PATH", `Cannot move ${fromPath} to ${toPath}`);
    if (err instanceof CairnError) throw err;
    mapFsError(err, fromPath);
  }
  await syncDir(dirname(to.hostPath));
  if (dirname(from.hostPath) !== dirname(to.hostPath)) await syncDir(dirname(from.hostPath));
  return entryOf(toPath, to.hostPath, await lstat(to.hostPath));
}

const exists = (path: string) =>
  new CairnError("PATH_ALREADY_EXISTS", `${path} already exists; ask to overwrite it to replace it`);

// ---------------------------------------------------------------------------------------------
// remove

export async function removePath(
  root: string,
  rawPath: string,
  options: { recursive?: boolean | undefined; ifMatch?: string | undefined; onCommit?: (path: string) => void } = {},
): Promise<void> {
  const path = normalizeVolumePath(rawPath);
  if (path === "/") throw new CairnError("INVALID_PATH", "The volume root cannot be removed; remove the entries in it");
  const target = await resolvePath(root, path, { followLast: false });
  const st = await lstatOrUndefined(target.hostPath, path);
  if (!st) throw new CairnError("PATH_NOT_FOUND", `${path} does not exist`);
  if (options.ifMatch !== undefined) checkPreconditions(path, st, { ifMatch: options.ifMatch });
  options.onCommit?.(target.volumePath);
  if (!st.isDirectory()) {
    await unlink(target.hostPath).catch((err) => mapFsError(err, path));
  } else if (!options.recursive) {
    try {
      await rmdir(target.hostPath);
    } catch (err) {
      if (errno(err) === "ENOTEMPTY" || errno(err) === "EEXIST") {
        throw new CairnError("DIRECTORY_NOT_EMPTY", `${path} is not empty; pass recursive to remove it and everything in it`);
      }
      mapFsError(err, path);
    }
  } else {
    // Out of sight in one atomic rename, then deleted: nobody sees a half-removed tree.
    const trash = await Staging.create(root, "trash");
    try {
      await rename(target.hostPath, join(trash.dir, "tree")).catch((err) => mapFsError(err, path));
      await syncDir(dirname(target.hostPath));
    } finally {
      await trash.discard();
    }
    return;
  }
  await syncDir(dirname(target.hostPath));
}

// ---------------------------------------------------------------------------------------------
// edit

/** Files larger than this are not edited in place (the whole file is held in memory once). */
export const MAX_EDIT_BYTES = 64 * 1024 * 1024;

export function countOccurrences(haystack: Buffer, needle: Buffer): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

export function replaceBytes(haystack: Buffer, needle: Buffer, replacement: Buffer, all: boolean): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, from)) {
    parts.push(haystack.subarray(from, i), replacement);
    from = i + needle.length;
    if (!all) break;
  }
  parts.push(haystack.subarray(from));
  return Buffer.concat(parts);
}

/** Read a regular file whole, within `max` bytes. */
export async function readWhole(root: string, rawPath: string, max: number): Promise<{ data: Buffer; etag: string; path: string }> {
  const file = await openForRead(root, rawPath);
  try {
    if (file.stat.size > max) {
      throw new CairnError("PAYLOAD_TOO_LARGE", `${file.path} is larger than ${max / 1024 / 1024} MiB; edit it inside a sandbox or rewrite it whole`);
    }
    const data = Buffer.alloc(file.stat.size);
    let off = 0;
    while (off < data.length) {
      const { bytesRead } = await file.fh.read(data, off, data.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return { data: data.subarray(0, off), etag: file.etag, path: file.path };
  } finally {
    await file.fh.close();
  }
}

export async function editFile(
  root: string,
  req: EditRequest,
  options: { volumeName: string; onCommit?: (path: string, created: boolean) => void },
): Promise<EditResult> {
  const path = normalizeVolumePath(req.path);
  const { data, etag, path: realPath } = await readWhole(root, path, MAX_EDIT_BYTES);
  if (req.ifMatch !== undefined && req.ifMatch !== etag) {
    throw new CairnError("PRECONDITION_FAILED", `${path} has changed since you read it (ifMatch); read it again and retry`);
  }
  const needle = Buffer.from(req.oldString, "utf8");
  const matches = countOccurrences(data, needle);
  if (matches === 0) {
    throw new CairnError("EDIT_NO_MATCH", `oldString does not occur in ${path}; read the file and give text that is in it`);
  }
  if (matches > 1 && !req.replaceAll) {
    throw new CairnError(
      "EDIT_AMBIGUOUS",
      `oldString occurs ${matches} times in ${path}; give more surrounding text so it is unique, or pass replaceAll: true`,
      { meta: { matches } },
    );
  }
  const out = replaceBytes(data, needle, Buffer.from(req.newString, "utf8"), req.replaceAll === true);
  // Compare-and-swap against what we read: a concurrent change is a 412, never lost silently.
  const w = await writeFile(root, realPath, [out], {
    volumeName: options.volumeName,
    ifMatch: etag,
    ...(options.onCommit ? { onCommit: options.onCommit } : {}),
  });
  return { path, replacements: req.replaceAll ? matches : 1, size: w.size, etag: w.etag };
}

