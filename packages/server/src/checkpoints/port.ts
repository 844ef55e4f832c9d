/**
 * The checkpoint store port: copy-on-write checkpoints of volumes. The loop engine
 * (`volumes/loop/`) keeps them as reflinks of a volume's image; the directory engine
 * (`volumes/fake/`) as copies. Both pass `volumes/engine-suite.ts`.
 */
import type { Lease } from "../volumes/port.js";

export interface CheckpointInfo {
  sizeBytes: number;
  /** How long the filesystem was frozen, in ms (0 when it was not mounted). */
  frozenMs: number;
}

export interface CheckpointStore {
  /** A point-in-time copy of a volume, consistent even while it is written (frozen for the copy). */
  checkpoint(options: { volumeId: string; checkpointId: string }): Promise<CheckpointInfo>;
  /** Replace the volume's contents with the checkpoint's, atomically. No lease may be held. */
  restore(options: { volumeId: string; checkpointId: string }): Promise<void>;
  /** A new volume whose contents are the checkpoint's. */
  fork(options: { volumeId: string; checkpointId: string; newVolumeId: string }): Promise<void>;
  deleteCheckpoint(options: { volumeId: string; checkpointId: string }): Promise<void>;
  /** Delete every checkpoint of a volume. */
  deleteCheckpoints(volumeId: string): Promise<void>;
  /** Blocks the checkpoint holds, and those only it holds (what deleting it would free). */
  checkpointSpace(options: { volumeId: string; checkpointId: string }): Promise<{ allocatedBytes: number; exclusiveBytes: number }>;
  /** Pool space a checkpoint holds now; 0 when it is gone. */
  allocatedBytes(options: { volumeId: string; checkpointId: string }): Promise<number>;
  /** The file holding the checkpoint's raw filesystem image (to stream out); CairnError when the store has none. */
  checkpointImage(volumeId: string, checkpointId: string): Promise<string>;
  /** The checkpoint's files, read-only; `release` lets them go. */
  mountCheckpoint(options: { volumeId: string; checkpointId: string }): Promise<Lease>;
}
