/**
 * Host uid ranges of sandboxes' user namespaces: 65536 ids each, from 2^30 up (far above host
 * users and their subordinate ranges in /etc/subuid), none shared between two lineages of
 * sandboxes (a fork shares its source's: a copy of the same sandbox, the same files).
 */
import { UID_RANGE } from "./port.js";

const UID_BASE_FIRST = 2 ** 30;
const UID_SLOTS = 16_000;

export class UidRanges {
  /** How many sandboxes (one, and its forks) hold each range, by its base. */
  private readonly held = new Map<number, number>();

  /** A range nobody holds, now held once. */
  take(): number {
    for (;;) {
      const base = UID_BASE_FIRST + Math.floor(Math.random() * UID_SLOTS) * UID_RANGE;
      if (!this.held.has(base)) {
        this.held.set(base, 1);
        return base;
      }
    }
  }

  /** One more holder of a range (a fork, or a sandbox found running at start). */
  hold(base: number | undefined): void {
    if (base !== undefined) this.held.set(base, (this.held.get(base) ?? 0) + 1);
  }

  give(base: number | undefined): void {
    if (base === undefined) return;
    const n = (this.held.get(base) ?? 1) - 1;
    if (n <= 0) this.held.delete(base);
    else this.held.set(base, n);
  }
}
