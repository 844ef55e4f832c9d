/**
 * Admission to the pool: a volume, a grow, a checkpoint or a sandbox disk is admitted only while
 * everything admitted still fits in the pool, so a full pool is a 507 POOL_FULL at the door and
 * never an I/O error inside somebody else's volume (images are sparse: without this, their sizes
 * add up past the pool and the first tenant to write fills it for all).
 *
 * What is committed, each at the most it can ever take:
 * - a volume: its size (its image never grows past it);
 * - a checkpoint: the blocks its image had when it was taken (a clone never grows, and holes stay
 *   holes: once the volume diverges, the checkpoint keeps at most those blocks);
 * - a sandbox disk: its size.
 * An operator may overcommit (`CAIRN_POOL_OVERCOMMIT` > 1): sparse images then may promise more
 * than the pool has, which cairnd says in its log and in /healthz.
 */
import { statfs } from "node:fs/promises";
import { CairnError, formatSize } from "@cairn/protocol";
import { KeyedMutex } from "../host/mutex.js";

export interface PoolStatus {
  /** The pool's size times the overcommit ratio: what may be committed. */
  capacityBytes: number;
  committedBytes: number;
  overcommit: number;
}

export interface PoolCapacityOptions {
  poolRoot: string;
  /** 1: no overcommit. */
  overcommit: number;
  /** Everything committed now, in bytes (volumes, checkpoints, sandbox disks). */
  committed: () => Promise<number>;
}

export class PoolCapacity {
  private readonly lock = new KeyedMutex();

  constructor(private readonly options: PoolCapacityOptions) {}

  async status(): Promise<PoolStatus> {
    const f = await statfs(this.options.poolRoot);
    return {
      capacityBytes: Math.floor(f.blocks * f.bsize * this.options.overcommit),
      committedBytes: await this.options.committed(),
      overcommit: this.options.overcommit,
    };
  }

  /**
   * Commit `bytes` more for `what` ("a 10 GiB volume"), or refuse with POOL_FULL. `record` must
   * make the new commitment visible to `committed()` (insert the row, raise the size): admissions
   * run one at a time, so two of them never both take the last free bytes.
   */
  async admit<T>(bytes: number, what: string, record: () => Promise<T>): Promise<T> {
    return this.lock.run("pool", async () => {
      if (bytes > 0) {
        const { capacityBytes, committedBytes } = await this.status();
        if (committedBytes + bytes > capacityBytes) {
          const free = Math.max(0, capacityBytes - committedBytes);
          throw new CairnError(
            "POOL_FULL",
            `The storage pool cannot take ${what}: ${formatSize(free)} of its ${formatSize(capacityBytes)} are not promised to volumes, checkpoints or sandbox disks yet. Delete volumes, checkpoints or sandboxes you no longer need, or ask the operator for a bigger pool.`,
            { meta: { requestedBytes: bytes, freeBytes: free, capacityBytes } },
          );
        }
      }
      return record();
    });
  }
}
