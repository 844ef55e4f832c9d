/**
 * The warm pool: sandboxes already started (template base, default limits, no volumes), known
 * only here until a create takes one; it then gets its id as the sandbox's and its volumes
 * hot-plugged. Not in the metadata store, so a restarted cairnd removes them as unknown.
 */
import { formatSize } from "@cairn/protocol";
import { newId } from "../ids.js";
import type { Logger } from "../logger.js";
import type { PoolCapacity } from "../volumes/capacity.js";
import type { SandboxDriver, SandboxSpecInput } from "./port.js";
import type { UidRanges } from "./uid-ranges.js";

const REFILL_QUIET_MS = 100;
const REFILL_MAX_DELAY_MS = 1000;

export interface WarmPoolOptions {
  size: number;
  diskBytes: number;
  /** What a warm sandbox starts with (its uid base is added). */
  spec: Omit<SandboxSpecInput, "uidBase">;
  driver: SandboxDriver;
  capacity: Pick<PoolCapacity, "admit">;
  uids: UidRanges;
  log: Logger;
}

export class WarmPool {
  private readonly ready: string[] = [];
  /** The uid range of each warm sandbox (its root's host uid). */
  private readonly uidOf = new Map<string, number>();
  /** Warm sandboxes whose disks the pool has admitted (started or starting, not yet taken). */
  private disks = 0;
  private filling: Promise<void> | undefined;
  /** A refill waits for a quiet moment: see `refillSoon`. */
  private refillTimer: NodeJS.Timeout | undefined;
  private refillDeadline = 0;
  private failures = 0;
  private wakeFiller: (() => void) | undefined;
  private closed = false;

  constructor(private readonly o: WarmPoolOptions) {}

  /** How many are ready, of how many cairnd keeps. */
  status(): { ready: number; target: number } {
    return { ready: this.ready.length, target: this.o.size };
  }

  /** Pool space promised to warm sandboxes' disks. */
  committedBytes(): number {
    return this.disks * this.o.diskBytes;
  }

  /** Whether a refill is waiting for a quiet moment (work on sandboxes postpones it). */
  refillPending(): boolean {
    return this.refillTimer !== undefined;
  }

  /** Start warm sandboxes until the pool is full; one at a time, in the background. */
  fill(): void {
    const { size, driver, log } = this.o;
    if (this.filling || this.closed || this.ready.length >= size) return;
    this.filling = (async () => {
      while (!this.closed && this.ready.length < size) {
        const id = newId("sbx");
        const disk = this.o.diskBytes;
        try {
          await this.o.capacity.admit(disk, `a ${formatSize(disk)} disk for a warm sandbox`, async () => void this.disks++);
        } catch {
          // The pool is promised: no warm sandbox now; creates still say POOL_FULL themselves.
          await this.pause(30_000);
          continue;
        }
        const uidBase = this.o.uids.take();
        this.uidOf.set(id, uidBase);
        try {
          await driver.prepare(id, { diskBytes: disk, uidBase });
          await driver.start(id, { ...this.o.spec, uidBase }, [], { background: true });
        } catch (err) {
          await driver.destroy(id).catch(() => undefined);
          this.drop(id);
          // A host that cannot start sandboxes now: back off, creates still work (cold, with their error).
          this.failures++;
          log.warn({ err }, "could not start a warm sandbox");
          await this.pause(Math.min(60_000, 500 * 2 ** this.failures));
          continue;
        }
        this.failures = 0;
        if (this.closed) {
          await driver.destroy(id).catch(() => undefined);
          this.drop(id);
        } else this.ready.push(id);
      }
    })().finally(() => {
      this.filling = undefined;
    });
  }

  private async pause(ms: number): Promise<void> {
    await new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      t.unref();
      this.wakeFiller = () => (clearTimeout(t), r());
    });
    this.wakeFiller = undefined;
  }

  /**
   * Refill once sandbox work has paused: a create is nearly always followed at once by an exec,
   * and a container start at the same moment competes with it for the kernel's mount and cgroup
   * locks (nice does not help there). Each create or exec postpones the refill by QUIET_MS, but
   * never beyond MAX_DELAY_MS after the pool first ran short.
   */
  refillSoon(): void {
    if (this.closed || this.ready.length >= this.o.size) return;
    const t = Date.now();
    if (!this.refillTimer) this.refillDeadline = t + REFILL_MAX_DELAY_MS;
    clearTimeout(this.refillTimer);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, Math.max(0, Math.min(REFILL_QUIET_MS, this.refillDeadline - t)));
    this.refillTimer.unref();
  }

  /** A running warm sandbox and its uid base, or undefined when the pool is empty. */
  async take(): Promise<{ id: string; uidBase: number } | undefined> {
    for (let id = this.ready.shift(); id !== undefined; id = this.ready.shift()) {
      if (await this.o.driver.isRunning(id)) {
        this.refillSoon();
        return { id, uidBase: this.uidOf.get(id)! };
      }
      await this.o.driver.destroy(id).catch(() => undefined);
      this.drop(id);
    }
    this.refillSoon();
    return undefined;
  }

  /** A taken warm sandbox became a sandbox's record: its disk promise and uid range pass to it. */
  handOver(id: string): void {
    this.disks--;
    this.uidOf.delete(id);
  }

  /** A warm sandbox gone before anyone took it: its disk and uid range go back. */
  private drop(id: string): void {
    this.disks--;
    this.o.uids.give(this.uidOf.get(id));
    this.uidOf.delete(id);
  }

  /** Warm sandboxes belong to nobody: they go (a start in flight is destroyed when it ends). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    this.wakeFiller?.();
    await this.filling;
    await Promise.all(this.ready.splice(0).map((id) => this.o.driver.destroy(id).catch(() => undefined)));
    this.disks = 0;
    this.uidOf.clear();
  }
}
