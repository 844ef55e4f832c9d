/**
 * The sandbox driver port: what the sandbox service needs from whatever runs sandboxes. The real
 * driver is `crun/` (Linux containers); `fake/` keeps sandboxes as directories and runs commands
 * as plain host processes, for tests of the logic above it without root. Both pass
 * `driver-suite.ts`.
 */
import type { ChildProcess } from "node:child_process";

/** Host uids a sandbox's user namespace maps (its 0..65535). */
export const UID_RANGE = 65536;

export interface VolumeMount {
  /** Host path (in cairnd's namespace) of the directory to mount. */
  source: string;
  destination: string;
  readonly: boolean;
}

/** A volume as the sandbox has it mounted: where, and which filesystem (its device, "major:minor"). */
export interface MountedVolume {
  destination: string;
  device: string;
}

export interface SandboxSpecInput {
  env: Record<string, string>;
  cwd: string;
  memoryBytes: number;
  pids: number;
  /** CPU quota in cores; none when absent. */
  cpus?: number;
  /** The host uid of the sandbox's root (its user namespace maps 0..65535 from there); none: no user namespace. */
  uidBase?: number;
  /** An image's root instead of the base template: its layers' host directories, bottom first. */
  image?: { layers: string[] };
}

export interface ExecOptions {
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number | undefined;
  /** Run as this user of the sandbox (an image's `User`); default its root. */
  user?: { uid: number; gid: number };
  /** Run this argv as is (an image's entrypoint and cmd), instead of `command` in /bin/sh. */
  argv?: string[];
  /** The sandbox runs an image: its tools are the image's (a `timeout` on its PATH, if any). */
  image?: boolean;
}

export interface SandboxDriver {
  /**
   * Make the sandbox's disk (its writable layer, `diskBytes` large) and directories (first start
   * only), owned by the sandbox's root: host uid `uidBase` when it has a user namespace.
   */
  prepare(id: string, options: { diskBytes: number; uidBase?: number; image?: boolean }): Promise<void>;
  /**
   * Start the container with these volume mounts (create or resume). `background`: a start
   * nobody waits for (a warm sandbox), run at the lowest CPU priority so it does not slow the
   * sandboxes in use; only the container's idle init keeps that priority, commands run later get their own.
   */
  start(id: string, spec: SandboxSpecInput, mounts: VolumeMount[], options?: { background?: boolean }): Promise<void>;
  /** Stop the container; its directories stay (hibernate). */
  stop(id: string): Promise<void>;
  /** Stop and remove everything of the sandbox. */
  destroy(id: string): Promise<void>;
  /** Copy a sandbox's filesystem state to a new sandbox (fork): its disk, cloned. */
  copy(fromId: string, toId: string): Promise<void>;
  /** Ids of every sandbox with a disk, running or not (to remove those nobody knows). */
  prepared(): Promise<string[]>;
  isRunning(id: string): Promise<boolean>;
  pid(id: string): Promise<number | undefined>;
  list(): Promise<string[]>;
  exec(id: string, options: ExecOptions): ChildProcess;
  /** Hot-plug volume mounts into the running sandbox (all in one pass). */
  attach(id: string, mounts: { attachmentId: string; mount: VolumeMount }[]): Promise<void>;
  /** Change a running sandbox's memory and pid limits. */
  update(id: string, limits: { memoryBytes: number; pids: number; cpus?: number }): Promise<void>;
  /**
   * Unmount the volume mounted at `destination` inside the running sandbox: only when the mount
   * there is one of `device` (MOUNT_CHANGED otherwise, while that device is still mounted in the
   * sandbox). Busy: VOLUME_BUSY, or with `force` the sandbox's processes that use the volume are
   * killed first, so the volume is truly out of the sandbox when this returns.
   */
  detach(id: string, mount: MountedVolume, options: { force: boolean }): Promise<void>;
}
