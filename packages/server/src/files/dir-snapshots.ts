/**
 * Sorted names of big directories, kept while they are listed page by page, so that each page
 * costs a binary search and its own entries instead of a pass over the whole directory.
 *
 * What a paged listing promises (see `listFiles`): every entry that existed throughout the listing
 * is listed exactly once, in name order. A listing's first page therefore takes a snapshot that
 * is known to be current (the directory has not changed since it was read, by its timestamps);
 * its later pages may use any snapshot at least as new as that one, because a snapshot is only
 * ever replaced by a newer one. Entries a snapshot names that are gone by then are skipped by the
 * caller (it lstats each); entries made after it are not promised.
 */
import { opendir, readdir, stat } from "node:fs/promises";

/** Directories smaller than this are read anew for each page: cheap, and not worth the memory. */
const MIN_NAMES = 2048;
/** Names kept across all snapshots (about 60 bytes each); the least recently used go first. */
const MAX_NAMES = 1_000_000;
/** A directory with more names than this is not held in memory at all (the caller streams it). */
const MAX_SNAPSHOT = MAX_NAMES / 2;
/** A snapshot nobody used for this long is dropped. */
const IDLE_MS = 60_000;
/**
 * Directory timestamps are coarse (the kernel's clock tick): a change in the same tick as a read
 * can leave them equal. A snapshot only counts as current when read this long after the last change.
 */
const RACY_MS = 50;

interface Snapshot {
  names: string[];
  /** dev, ino, mtime and ctime (ns) of the directory when it was read. */
  fingerprint: string;
  /** Date.now() when the read began. */
  takenAt: number;
  usedAt: number;
}

const snapshots = new Map<string, Snapshot>();
let keptNames = 0;

async function fingerprintOf(dir: string): Promise<{ fingerprint: string; changedAtMs: number; bytes: number }> {
  const st = await stat(dir, { bigint: true });
  const changed = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
  return { fingerprint: `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`, changedAtMs: Number(changed / 1_000_000n), bytes: Number(st.size) };
}

/**
 * Directories whose size (in bytes, as the filesystem reports it: ext4 and XFS grow a directory by
 * blocks of entries) is below this are read in one call; bigger ones entry by entry, so a
 * directory too big to keep never sits in memory whole.
 */
const READ_WHOLE_BYTES = 32 * 1024 * 1024;

async function readAll(dir: string, bytes: number): Promise<string[] | undefined> {
  if (bytes < READ_WHOLE_BYTES) {
    const names = await readdir(dir);
    return names.length > MAX_SNAPSHOT ? undefined : names.sort();
  }
  const names: string[] = [];
  const handle = await opendir(dir, { bufferSize: 1024 });
  try {
    for (let d = await handle.read(); d !== null; d = await handle.read()) {
      if (names.length >= MAX_SNAPSHOT) return undefined;
      names.push(d.name);
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  return names.sort();
}

function keep(dir: string, snap: Snapshot): void {
  const old = snapshots.get(dir);
  if (old && old.takenAt >= snap.takenAt) return; // never replace a newer one
  if (old) keptNames -= old.names.length;
  snapshots.delete(dir);
  snapshots.set(dir, snap);
  keptNames += snap.names.length;
  const now = Date.now();
  // Map order is insertion order: the first entries are the least recently used.
  for (const [k, s] of snapshots) {
    if (keptNames <= MAX_NAMES && now - s.usedAt < IDLE_MS) break;
    if (k === dir) continue;
    snapshots.delete(k);
    keptNames -= s.names.length;
  }
}

function use(dir: string, snap: Snapshot): string[] {
  snap.usedAt = Date.now();
  snapshots.delete(dir);
  snapshots.set(dir, snap);
  return snap.names;
}

/**
 * The directory's names, sorted. `current`: as they are now (a listing's first page); otherwise
 * a snapshot at least as new as the one the listing started from will do. Undefined for a
 * directory too big to hold in memory.
 */
export async function sortedNames(dir: string, options: { current: boolean }): Promise<string[] | undefined> {
  const kept = snapshots.get(dir);
  if (kept && Date.now() - kept.usedAt < IDLE_MS) {
    if (!options.current) return use(dir, kept);
    if ((await fingerprintOf(dir)).fingerprint === kept.fingerprint) return use(dir, kept);
  }
  // Stale or idle: a later page must never fall back on it after this read.
  drop(dir);
  const takenAt = Date.now();
  const before = await fingerprintOf(dir);
  const names = await readAll(dir, before.bytes);
  if (names === undefined) return undefined;
  if (names.length >= MIN_NAMES && takenAt - before.changedAtMs > RACY_MS) {
    const after = await fingerprintOf(dir);
    // Changed while we read it: right for this page, but not a snapshot to keep.
    if (after.fingerprint === before.fingerprint) keep(dir, { names, fingerprint: before.fingerprint, takenAt, usedAt: takenAt });
  }
  return names;
}

function drop(dir: string): void {
  const old = snapshots.get(dir);
  if (!old) return;
  snapshots.delete(dir);
  keptNames -= old.names.length;
}

/** Index of the first name after `after` in sorted `names`. */
export function firstAfter(names: string[], after: string | undefined): number {
  if (after === undefined) return 0;
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
