/**
 * The volume engine port: what the services need from whatever keeps volumes. The real engine is
 * `loop/` (sparse filesystem images, loop-mounted on demand); `fake/` keeps each volume as a plain
 * directory, for tests that run without root. Both pass `engine-suite.ts`.
 */
import type { Filesystem } from "@cairn/protocol";

/** A hold on a volume's files: while any lease is held, `path` stays the volume's root. */
export interface Lease {
  /** Host path of the volume's root (the loop engine mounts it nosymfollow,nodev,nosuid,noexec). */
  readonly path: string;
  /** The kernel refuses to follow symlinks under `path` (mounted `nosymfollow`): path checks can be cheaper. */
  readonly symlinksRefused?: boolean;
  release(): void;
}

export interface VolumeUsage {
  usedBytes: number;
  totalBytes: number;
  availableBytes: number;
}

/** How a grow happened: while mounted, after unmounting, or not at all (already that size). */
export type GrowMode = "online" | "offline" | "none";

export interface VolumeEngine {
  create(options: { id: string; sizeBytes: number; filesystem: Filesystem }): Promise<void>;
  destroy(id: string): Promise<void>;
  acquire(id: string): Promise<Lease>;
  /** A write met EROFS/EIO: the filesystem is read-only after an error; it is checked and remounted once nothing holds it. */
  markDamaged(id: string): void;
  grow(options: { id: string; sizeBytes: number; filesystem: Filesystem }): Promise<GrowMode>;
  /** Usage from the filesystem if it is mounted now; undefined when it is not. */
  usage(id: string): Promise<VolumeUsage | undefined>;
  /** The size the volume was made or grown to; undefined when it does not exist. */
  imageSize(id: string): Promise<number | undefined>;
  /** Pool space the volume holds now; 0 when it is gone. */
  allocatedBytes(options: { volumeId: string }): Promise<number>;
  /**
   * Create a volume from a raw filesystem image streamed in: zero blocks become holes, at most
   * `maxBytes` are accepted, and the image must hold a clean ext4 or XFS filesystem.
   */
  importImage(options: { id: string; body: AsyncIterable<Uint8Array>; maxBytes: number }): Promise<{ sizeBytes: number; filesystem: Filesystem }>;
  /** Release everything held (unmount); leases still held are broken. */
  close(): Promise<void>;
}

/** Startup: what the engine holds is made to agree with what the metadata knows. */
export interface VolumeReconciler {
  /** `checkpoints`: the checkpoint ids that exist, per volume id; other checkpoint images are deleted. */
  reconcile(known: ReadonlySet<string>, checkpoints?: ReadonlyMap<string, ReadonlySet<string>>): Promise<ReconcileReport>;
}

export interface ReconcileReport {
  unmounted: string[];
  detachedLoops: string[];
  removedImages: string[];
}

/** The smallest volume each filesystem can be made in (mkfs refuses smaller). */
export const MIN_FS_BYTES: Record<Filesystem, number> = {
  ext4: 16 * 1024 * 1024,
  xfs: 300 * 1024 * 1024,
};
