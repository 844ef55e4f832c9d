/**
 * Change events of a volume, for changes made through the API and by anything else that has the
 * volume mounted (sandboxes share the filesystem, and inotify watches inodes, not mounts).
 *
 * One `inotifywait -m -r` (inotify-tools) per watched volume, shared by all its subscribers; the
 * watcher holds a lease so the volume stays mounted while watched. Events get a cursor
 * `<epoch>.<seq>` and are kept in a bounded ring: a client that reconnects with its last cursor
 * (SSE `Last-Event-ID`) gets what it missed, or a `reset` when that is no longer retained.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { CairnError, RESERVED_DIR, type WatchEvent } from "@cairn/protocol";
import type { Lease } from "../volumes/port.js";
import type { Logger } from "../logger.js";

export interface WatchSubscriber {
  /** Volume path: only events at or below it. */
  path: string;
  send(id: string, event: WatchEvent): void;
  /** Events may have been missed (cursor too old, kernel queue overflow): the client should re-list. */
  reset(id: string, reason: string): void;
  /** The watch ended (cairnd shutting down, the watcher failed). */
  end(error?: CairnError): void;
}

export interface WatchHubOptions {
  /** Events kept for reconnecting clients. Default 10000. */
  retain?: number;
  /** How long a watcher lives on after its last subscriber left (so a reconnect misses nothing). Default 15 s. */
  lingerMs?: number;
  log: Logger;
}

const TMP_PREFIX = ".cairn-tmp-";
const PAIR_MS = 50;
const MODIFY_DEBOUNCE_MS = 100;
const MODIFY_MAX_DELAY_MS = 1000;
const HINT_TTL_MS = 10_000;

const inside = (path: string, dir: string) => dir === "/" || path === dir || path.startsWith(dir + "/");

/** Exported for its unit test; the hub below is the API. */
export class VolumeWatcher {
  readonly epoch = randomBytes(4).toString("hex");
  private seq = 0;
  private readonly ring: { seq: number; event: WatchEvent }[] = [];
  readonly subscribers = new Set<WatchSubscriber>();
  private pendingFrom: { path: string; isDir: boolean; tmp: boolean; timer: NodeJS.Timeout } | undefined;
  private readonly pendingModify = new Map<string, { timer: NodeJS.Timeout; since: number }>();
  private readonly writeHints = new Map<string, { created: boolean; at: number }>();
  private readonly moveHints = new Map<string, { from: string; at: number }>();
  private readonly suppressDelete = new Map<string, number>();
  /**
   * Directories moved out of sight (a recursive remove moves the tree into /.cairn first):
   * inotify still reports their contents under the old path while they are deleted; drop those.
   */
  private readonly goneDirs = new Set<string>();
  /** Paths with an event lately: a scan of a new directory reports only what had none. */
  private readonly recentCreates = new Map<string, number>();
  /** Paths a scan reported before their own inotify event arrived: that event is not news. */
  private readonly scanned = new Map<string, number>();
  lingerTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private child: ChildProcess | undefined;
  onExit: (() => void) | undefined;

  constructor(
    readonly volumeId: string,
    private readonly lease: Lease,
    private readonly retain: number,
    private readonly log: Logger,
  ) {}

  get cursor(): string {
    return `${this.epoch}.${this.seq}`;
  }

  /** Start inotifywait and resolve once every watch is in place (events after this are seen). */
  start(): Promise<void> {
    const root = this.lease.path.replace(/\/+$/, "");
    const exclude = `^${root.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/${RESERVED_DIR.replace(/\./g, "\\.")}(/|$)`;
    const child = spawn(
      "inotifywait",
      ["-m", "-r", "--format", "%e%0%w%0%f%0", "--no-newline", "-e", "create,modify,close_write,delete,moved_from,moved_to", "--exclude", exclude, root],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    let stderr = "";
    let pending: Buffer = Buffer.alloc(0);
    child.stdout!.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        const a = pending.indexOf(0);
        const b = a < 0 ? -1 : pending.indexOf(0, a + 1);
        const c = b < 0 ? -1 : pending.indexOf(0, b + 1);
        if (c < 0) break;
        const flags = pending.subarray(0, a).toString("utf8").split(",");
        const dir = pending.subarray(a + 1, b).toString("utf8");
        const name = pending.subarray(b + 1, c).toString("utf8");
        pending = pending.subarray(c + 1);
        // A watch whose directory was moved out of sight reports an empty directory: not ours any more.
        if (dir !== root + "/" && !dir.startsWith(root + "/")) continue;
        const rel = dir.slice(root.length);
        const path = ((rel.endsWith("/") ? rel : rel + "/") + name).replace(/\/+$/, "") || "/";
        try {
          this.handle(flags, path.startsWith("/") ? path : "/" + path, name);
        } catch (err) {
          this.log.warn({ err, volumeId: this.volumeId }, "watch: could not handle an event");
        }
      }
    });
    return new Promise((resolve, reject) => {
      let ready = false;
      child.stderr!.on("data", (d) => {
        stderr += d;
        if (!ready && stderr.includes("Watches established")) {
          ready = true;
          resolve();
        }
        if (stderr.length > 8000) stderr = stderr.slice(-4000);
      });
      child.on("error", (err) => {
        if (!ready) reject(new CairnError("UNAVAILABLE", `Cannot watch: inotifywait (inotify-tools) is not available: ${err.message}`));
      });
      child.on("close", (code) => {
        if (!ready) {
          const limit = /upper limit on inotify watches/i.test(stderr);
          reject(
            new CairnError(
              "UNAVAILABLE",
              limit
                ? "This volume has more directories than the host allows inotify watches (fs.inotify.max_user_watches); raise that limit"
                : `Cannot watch the volume: ${stderr.trim().split("\n").pop() ?? `inotifywait exited with ${code}`}`,
            ),
          );
        } else if (!this.stopped) {
          this.log.warn({ volumeId: this.volumeId, code, stderr: stderr.slice(-500) }, "watch: inotifywait exited");
          this.stop(new CairnError("UNAVAILABLE", "The watch ended on the server; reconnect to start a new one"));
        }
        this.onExit?.();
      });
    });
  }

  // -- hints from the API: what an atomic rename means ---------------------------------------

  hintWrite(path: string, created: boolean): void {
    this.writeHints.set(path, { created, at: Date.now() });
  }

  hintMove(from: string, to: string): void {
    this.moveHints.set(to, { from, at: Date.now() });
    this.suppressDelete.set(from, Date.now());
  }

  private takeWriteHint(path: string): boolean | undefined {
    const h = this.writeHints.get(path);
    if (!h) return undefined;
    this.writeHints.delete(path);
    return Date.now() - h.at < HINT_TTL_MS ? h.created : undefined;
  }

  // -- inotify → events ----------------------------------------------------------------------

  /** One inotify event: `flags` as inotifywait prints them, `path` within the volume. */
  handle(flags: string[], path: string, name: string): void {
    const isDir = flags.includes("ISDIR");
    if (flags.includes("Q_OVERFLOW")) {
      for (const s of this.subscribers) s.reset(this.cursor, "overflow");
      return;
    }
    const tmp = name.startsWith(TMP_PREFIX);
    // Anything but the MOVED_TO of a pending MOVED_FROM settles that one first.
    if (!flags.includes("MOVED_TO")) this.flushFrom();
    if (this.goneDirs.size > 0) {
      if ((flags.includes("CREATE") || flags.includes("MOVED_TO")) && this.goneDirs.has(path)) this.goneDirs.delete(path);
      else for (const d of this.goneDirs) if (path.startsWith(d + "/")) return;
    }
    if (flags.includes("MOVED_FROM")) {
      this.pendingFrom = { path, isDir, tmp, timer: setTimeout(() => this.flushFrom(), PAIR_MS) };
      return;
    }
    if (flags.includes("MOVED_TO")) {
      const from = this.pendingFrom;
      if (from) {
        clearTimeout(from.timer);
        this.pendingFrom = undefined;
      }
      if (tmp) {
        if (from && !from.tmp) this.emit({ type: "delete", path: from.path, isDir: from.isDir });
        return;
      }
      if (from && !from.tmp) {
        this.flushModifies();
        this.emit({ type: "rename", oldPath: from.path, path, isDir });
        return;
      }
      // From a temp file (an atomic write) or from outside the watched tree (a staged commit).
      const created = this.takeWriteHint(path);
      const type = created === false || (created === undefined && from?.tmp) ? "modify" : "create";
      this.flushModifies();
      if (type === "create" && this.takeScanned(path)) return;
      this.emit({ type, path, isDir });
      return;
    }
    if (tmp) return;
    if (flags.includes("CREATE")) {
      const move = this.moveHints.get(path);
      if (move && Date.now() - move.at < HINT_TTL_MS) {
        this.moveHints.delete(path);
        this.flushModifies();
        this.emit({ type: "rename", oldPath: move.from, path, isDir });
        return;
      }
      this.flushModifies();
      if (this.takeScanned(path) || this.recentCreates.has(path)) return; // already reported by a scan of its new parent
      this.emit({ type: "create", path, isDir });
      if (isDir) this.scanNewDirectory(path);
    } else if (flags.includes("MODIFY")) {
      this.debounceModify(path);
    } else if (flags.includes("CLOSE_WRITE")) {
      const p = this.pendingModify.get(path);
      if (p) {
        clearTimeout(p.timer);
        this.pendingModify.delete(path);
        this.emit({ type: "modify", path, isDir: false });
      }
    } else if (flags.includes("DELETE")) {
      const at = this.suppressDelete.get(path);
      if (at !== undefined) {
        this.suppressDelete.delete(path);
        if (Date.now() - at < HINT_TTL_MS) return;
      }
      this.flushModifies();
      this.emit({ type: "delete", path, isDir });
    }
  }

  /**
   * inotify watches a new directory only once it is told about it: what was created in it before
   * that (`mkdir -p a/b && touch a/b/f`) has no event. Look, and report what is there.
   */
  private scanNewDirectory(path: string): void {
    const root = this.lease.path.replace(/\/+$/, "");
    let budget = 1000;
    const scan = async (dir: string): Promise<void> => {
      let names: import("node:fs").Dirent[];
      try {
        names = await readdir(root + dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const d of names) {
        if (this.stopped || budget-- <= 0) return;
        const p = `${dir}/${d.name}`;
        if (d.name.startsWith(TMP_PREFIX) || this.recentCreates.has(p)) continue;
        this.scanned.set(p, Date.now());
        this.emit({ type: "create", path: p, isDir: d.isDirectory() });
        if (d.isDirectory()) await scan(p);
      }
    };
    setTimeout(() => void scan(path).catch(() => undefined), 20);
  }

  /**
   * Whether a scan already reported `path` as created (its own event raced the scan's readdir).
   * Consumed once; only a recent scan counts.
   */
  private takeScanned(path: string): boolean {
    const at = this.scanned.get(path);
    if (at === undefined) return false;
    this.scanned.delete(path);
    return Date.now() - at < HINT_TTL_MS;
  }

  /** A MOVED_FROM without its MOVED_TO: moved out of sight (e.g. a recursive remove), so deleted. */
  private flushFrom(): void {
    const from = this.pendingFrom;
    if (!from) return;
    clearTimeout(from.timer);
    this.pendingFrom = undefined;
    if (from.tmp) return;
    if (from.isDir) {
      if (this.goneDirs.size > 1000) this.goneDirs.clear();
      this.goneDirs.add(from.path);
    }
    this.flushModifies();
    this.emit({ type: "delete", path: from.path, isDir: from.isDir });
  }

  /** A big write is many MODIFY events: one `modify` per burst (and at close). */
  private debounceModify(path: string): void {
    const p = this.pendingModify.get(path);
    const now = Date.now();
    if (p) {
      clearTimeout(p.timer);
      if (now - p.since >= MODIFY_MAX_DELAY_MS) {
        this.pendingModify.delete(path);
        this.emit({ type: "modify", path, isDir: false });
        return;
      }
    }
    const since = p?.since ?? now;
    const timer = setTimeout(() => {
      this.pendingModify.delete(path);
      this.emit({ type: "modify", path, isDir: false });
    }, MODIFY_DEBOUNCE_MS);
    this.pendingModify.set(path, { timer, since });
  }

  private flushModifies(): void {
    for (const [path, p] of this.pendingModify) {
      clearTimeout(p.timer);
      this.emit({ type: "modify", path, isDir: false });
    }
    this.pendingModify.clear();
  }

  private emit(e: Omit<WatchEvent, "at">): void {
    const event: WatchEvent = { ...e, at: new Date().toISOString() };
    if (e.type !== "delete") {
      this.recentCreates.set(e.path, Date.now());
      if (e.oldPath !== undefined) this.recentCreates.delete(e.oldPath);
      if (this.recentCreates.size > 4096) {
        const old = Date.now() - 2000;
        for (const [k, at] of this.recentCreates) if (at < old) this.recentCreates.delete(k);
      }
    } else if (e.type === "delete") this.recentCreates.delete(e.path);
    if (e.type === "delete" || e.type === "rename") this.scanned.delete(e.oldPath ?? e.path);
    const seq = ++this.seq;
    this.ring.push({ seq, event });
    if (this.ring.length > this.retain) this.ring.splice(0, this.ring.length - this.retain);
    const id = `${this.epoch}.${seq}`;
    for (const s of this.subscribers) {
      if (inside(event.path, s.path) || (event.oldPath !== undefined && inside(event.oldPath, s.path))) s.send(id, event);
    }
    // Old hints go; they only matter for the rename that follows them.
    if (seq % 256 === 0) {
      const old = Date.now() - HINT_TTL_MS;
      for (const [k, v] of this.writeHints) if (v.at < old) this.writeHints.delete(k);
      for (const [k, v] of this.moveHints) if (v.at < old) this.moveHints.delete(k);
      for (const [k, at] of this.suppressDelete) if (at < old) this.suppressDelete.delete(k);
      for (const [k, at] of this.scanned) if (at < old) this.scanned.delete(k);
    }
  }

  /** Add a subscriber, first replaying what it missed after `cursor` (or a reset if that is gone). */
  add(sub: WatchSubscriber, cursor: string | undefined): void {
    if (cursor !== undefined && cursor !== "") {
      const m = /^([0-9a-f]+)\.(\d+)$/.exec(cursor);
      const oldest = this.ring[0]?.seq ?? this.seq + 1;
      if (!m || m[1] !== this.epoch) {
        sub.reset(this.cursor, "unknown-cursor");
      } else if (Number(m[2]) > this.seq) {
        sub.reset(this.cursor, "unknown-cursor");
      } else if (Number(m[2]) < oldest - 1) {
        sub.reset(this.cursor, "expired");
      } else {
        const after = Number(m[2]);
        for (const { seq, event } of this.ring) {
          if (seq <= after) continue;
          if (inside(event.path, sub.path) || (event.oldPath !== undefined && inside(event.oldPath, sub.path))) {
            sub.send(`${this.epoch}.${seq}`, event);
          }
        }
      }
    }
    this.subscribers.add(sub);
  }

  stop(error?: CairnError): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.lingerTimer);
    clearTimeout(this.pendingFrom?.timer);
    for (const p of this.pendingModify.values()) clearTimeout(p.timer);
    if (this.child && this.child.exitCode === null) this.child.kill("SIGTERM");
    for (const s of this.subscribers) s.end(error);
    this.subscribers.clear();
    this.lease.release();
  }
}

export class WatchHub {
  private readonly watchers = new Map<string, Promise<VolumeWatcher>>();
  private readonly live = new Map<string, VolumeWatcher>();
  private closed = false;
  private readonly retain: number;
  private readonly lingerMs: number;

  constructor(private readonly options: WatchHubOptions) {
    this.retain = options.retain ?? 10_000;
    this.lingerMs = options.lingerMs ?? 15_000;
  }

  /**
   * Subscribe to a volume's events. `acquire` takes the lease the watcher holds (only called when
   * no watcher runs yet). Resolves once events are being captured, with the current cursor.
   */
  async subscribe(
    volumeId: string,
    acquire: () => Promise<Lease>,
    sub: WatchSubscriber,
    cursor: string | undefined,
  ): Promise<{ cursor: string; unsubscribe(): void }> {
    if (this.closed) throw new CairnError("UNAVAILABLE", "cairnd is shutting down");
    let starting = this.watchers.get(volumeId);
    if (!starting) {
      starting = (async () => {
        const lease = await acquire();
        const w = new VolumeWatcher(volumeId, lease, this.retain, this.options.log);
        try {
          await w.start();
        } catch (err) {
          w.stop();
          throw err;
        }
        w.onExit = () => {
          if (this.live.get(volumeId) === w) {
            this.live.delete(volumeId);
            this.watchers.delete(volumeId);
          }
        };
        this.live.set(volumeId, w);
        return w;
      })();
      this.watchers.set(volumeId, starting);
      starting.catch(() => this.watchers.delete(volumeId));
    }
    const w = await starting;
    clearTimeout(w.lingerTimer);
    w.lingerTimer = undefined;
    w.add(sub, cursor);
    return {
      cursor: w.cursor,
      unsubscribe: () => {
        if (!w.subscribers.delete(sub) || w.subscribers.size > 0) return;
        w.lingerTimer = setTimeout(() => {
          if (w.subscribers.size > 0) return;
          if (this.live.get(volumeId) === w) {
            this.live.delete(volumeId);
            this.watchers.delete(volumeId);
          }
          w.stop();
        }, this.lingerMs);
        w.lingerTimer.unref();
      },
    };
  }

  /** The API is about to make `path` appear by a rename: say whether it is new. */
  hintWrite(volumeId: string, path: string, created: boolean): void {
    this.live.get(volumeId)?.hintWrite(path, created);
  }

  hintMove(volumeId: string, from: string, to: string): void {
    this.live.get(volumeId)?.hintMove(from, to);
  }

  /** Whether a volume is being watched (its watcher holds a lease). */
  watching(volumeId: string): boolean {
    return this.live.has(volumeId);
  }

  /** End every watch and release its lease (graceful shutdown). */
  close(): void {
    this.closed = true;
    for (const w of this.live.values()) w.stop();
    this.live.clear();
    this.watchers.clear();
  }
}
