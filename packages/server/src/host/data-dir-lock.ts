/**
 * One cairnd per data dir. Two servers on one data dir each trust their own idea of what is
 * mounted: one unmounts a volume on idle while the other goes on writing into the empty mount
 * point. So cairnd holds an exclusive lock on `<data-dir>/cairnd.lock` for as long as it runs.
 *
 * The lock is SQLite's own (a POSIX record lock taken by `BEGIN EXCLUSIVE` and held open): the
 * kernel drops it when the process dies, kill -9 included, it is not inherited by the processes
 * cairnd starts (sandboxes outlive cairnd and must not keep its lock), and SQLite's busy timeout
 * gives a bounded wait for a predecessor that is still shutting down. Who holds it (pid, URL) is
 * written beside it, in `cairnd.json`, for the message a second instance prints.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";

export interface LockHolder {
  pid: number;
  url?: string;
  startedAt: string;
  /** Set once the holder has begun to shut down: a successor waits for it. */
  stopping?: boolean;
}

export class DataDirLocked extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder | undefined,
  ) {
    const who = holder ? `pid ${holder.pid}${holder.url ? `, ${holder.url}` : ", starting"}${holder.stopping ? ", shutting down" : ""}` : "another process";
    super(`a cairnd (${who}) already serves ${dataDir}; stop it first, or give this one another --data-dir`);
    this.name = "DataDirLocked";
  }
}

export class DataDirLock {
  private readonly startedAt = new Date().toISOString();

  private constructor(
    private readonly db: SqliteDatabase.Database,
    private readonly infoPath: string,
  ) {}

  /**
   * Take the lock. A holder that is shutting down (it says so in cairnd.json) is waited for up to
   * `waitMs`; any other holder for `graceMs` (a launcher killed a moment ago has not told its
   * server yet), then DataDirLocked.
   */
  static async acquire(dataDir: string, options: { waitMs: number; graceMs?: number }): Promise<DataDirLock> {
    const infoPath = join(dataDir, "cairnd.json");
    const start = Date.now();
    const db = new SqliteDatabase(join(dataDir, "cairnd.lock"), { timeout: 0 });
    for (;;) {
      try {
        db.exec("BEGIN EXCLUSIVE");
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== "SQLITE_BUSY") {
          db.close();
          throw err;
        }
        const holder = readHolder(infoPath);
        if (Date.now() - start >= (holder?.stopping ? options.waitMs : Math.min(options.graceMs ?? 3000, options.waitMs))) {
          db.close();
          throw new DataDirLocked(dataDir, holder);
        }
        await sleep(50);
      }
    }
    const lock = new DataDirLock(db, infoPath);
    lock.describe();
    return lock;
  }

  /** Whether a cairnd holds the data dir now (no wait). */
  static async held(dataDir: string): Promise<LockHolder | false> {
    if (!existsSync(dataDir)) return false;
    try {
      (await DataDirLock.acquire(dataDir, { waitMs: 0 })).release();
      return false;
    } catch (err) {
      if (err instanceof DataDirLocked) return err.holder ?? { pid: 0, startedAt: "" };
      throw err;
    }
  }

  /** Say who holds the lock (once the URL is known, with it). */
  describe(url?: string, stopping = false): void {
    const holder: LockHolder = { pid: process.pid, ...(url ? { url } : {}), startedAt: this.startedAt, ...(stopping ? { stopping } : {}) };
    writeFileSync(this.infoPath, JSON.stringify(holder) + "\n", { mode: 0o600 });
  }

  release(): void {
    if (!this.db.open) return;
    rmSync(this.infoPath, { force: true });
    this.db.close(); // ends the transaction: the kernel drops the lock
  }
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, "utf8")) as LockHolder;
    return typeof h.pid === "number" ? h : undefined;
  } catch {
    return undefined;
  }
}
