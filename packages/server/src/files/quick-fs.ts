/**
 * File system calls on the hot paths: every file request resolves its path, a listing lstats each
 * entry, most reads are of small files.
 *
 * A call answered from the kernel's caches takes a few microseconds; the same call through the
 * thread pool costs several times that in hand-offs, on the main thread. So these make their
 * calls synchronously, and watch the clock: one that took long enough to have gone to the disk
 * (a cold volume, a busy machine) switches them all to the thread pool for a while, so the event
 * loop is never held up for more than one disk read now and then.
 */
import type { Dirent, Stats } from "node:fs";
import { closeSync, constants as fsc, fstatSync, lstatSync, opendirSync, openSync, readSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";

/** Longer than any lstat answered from memory. */
const SLOW_MS = 2;
/** Most a batch spends synchronously; the rest of it goes to the thread pool. */
const BATCH_MS = 5;
/** After a slow one, use the thread pool for this long. */
const POOL_FOR_MS = 1000;
let poolUntil = 0;

const missing = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

/** lstat: undefined when nothing is there, other errors thrown (ENOTDIR, ELOOP, EACCES…). */
export async function lstatQuick(path: string): Promise<Stats | undefined> {
  if (poolUntil > Date.now()) return lstat(path).catch((err) => (missing(err) ? undefined : Promise.reject(err)));
  const t = performance.now();
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } finally {
    if (performance.now() - t > SLOW_MS) poolUntil = Date.now() + POOL_FOR_MS;
  }
}

/** lstat of many paths; undefined for each that cannot be lstat'ed (gone meanwhile, …). */
export async function lstatMany(paths: string[]): Promise<(Stats | undefined)[]> {
  const out: (Stats | undefined)[] = new Array<Stats | undefined>(paths.length);
  let i = 0;
  const start = performance.now();
  for (; i < paths.length && poolUntil <= Date.now(); i++) {
    const t = performance.now();
    if (t - start > BATCH_MS) break;
    try {
      out[i] = lstatSync(paths[i]!, { throwIfNoEntry: false });
    } catch {
      out[i] = undefined;
    }
    if (performance.now() - t > SLOW_MS) poolUntil = Date.now() + POOL_FOR_MS;
  }
  if (i < paths.length) {
    // The thread pool works on many at once while we wait.
    const rest = await Promise.all(paths.slice(i).map((p) => lstat(p).catch(() => undefined)));
    for (const [j, st] of rest.entries()) out[i + j] = st;
  }
  return out;
}

/** Whether synchronous calls are in favour now (none was slow lately). */
export function quick(): boolean {
  return poolUntil <= Date.now();
}

/**
 * A regular file's whole content, read synchronously, when it is at most `maxBytes` and still the
 * inode `ino` (the lstat that resolved it). Undefined when it is bigger or no longer that file
 * (the caller takes the streaming path, which says why), or when synchronous calls are out of favour.
 */
export function readSmallFile(hostPath: string, ino: number, maxBytes: number): { data: Buffer; stat: Stats } | undefined {
  if (!quick()) return undefined;
  const t = performance.now();
  let fd: number | undefined;
  try {
    // O_NOFOLLOW: never a symlink swapped in; O_NONBLOCK: never stuck on a fifo swapped in.
    fd = openSync(hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.ino !== ino || stat.size > maxBytes) return undefined;
    const data = Buffer.allocUnsafe(stat.size);
    let got = 0;
    while (got < data.length) {
      const n = readSync(fd, data, got, data.length - got, got);
      if (n === 0) break; // truncated meanwhile: what is there
      got += n;
    }
    return { data: got === data.length ? data : data.subarray(0, got), stat };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
    if (performance.now() - t > SLOW_MS) poolUntil = Date.now() + POOL_FOR_MS;
  }
}

/**
 * A directory's entries. Read synchronously while that is quick; a big directory (more than a
 * batch's time) has the rest of it read through the thread pool.
 */
export async function readDirQuick(path: string): Promise<Dirent[]> {
  if (!quick()) return readdir(path, { withFileTypes: true });
  const start = performance.now();
  let mark = start;
  const dir = opendirSync(path, { bufferSize: 256 });
  const out: Dirent[] = [];
  try {
    for (let d = dir.readSync(); d !== null; d = dir.readSync()) {
      out.push(d);
      if ((out.length & 255) !== 0) continue;
      // Every 256 entries (one read from the kernel): was that one slow, is this batch's time up?
      const t = performance.now();
      if (t - mark > SLOW_MS) poolUntil = Date.now() + POOL_FOR_MS;
      mark = t;
      if (t - start > BATCH_MS) {
        for (let e = await dir.read(); e !== null; e = await dir.read()) out.push(e);
        break;
      }
    }
    return out;
  } finally {
    if (performance.now() - mark > SLOW_MS) poolUntil = Date.now() + POOL_FOR_MS;
    dir.closeSync();
  }
}
