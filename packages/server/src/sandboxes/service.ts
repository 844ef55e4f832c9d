/**
 * Sandboxes and their attachments: which volume is mounted where, in which mode, in which state.
 * Access modes are enforced by the metadata store (a unique claim per ReadWriteOnce volume), so
 * when many sandboxes race for one volume exactly one wins, on any number of hosts.
 */
import type { ChildProcess } from "node:child_process";
import { mkdir, lstat, stat } from "node:fs/promises";
import {
  CairnError,
  GiB,
  MiB,
  formatSize,
  TEMPLATES,
  normalizeVolumePath,
  type Attachment,
  type CreateSandboxRequest,
  type ExecRequest,
  type MountRequest,
  type ProcessInfo,
  type Sandbox,
} from "@cairn/protocol";
import { newId } from "../ids.js";
import type { Logger } from "../logger.js";
import type { MountedVolume, SandboxDriver, VolumeMount } from "./port.js";
import { deviceString } from "../host/devices.js";
import type { PoolCapacity } from "../volumes/capacity.js";
import { UID_RANGE } from "./port.js";
import { READ_FILE_SCRIPT, WRITE_FILE_SCRIPT } from "./file-scripts.js";
import type { AttachmentRecord, MetadataStore, SandboxRecord, SandboxState, VolumeRecord } from "../storage/metadata-store.js";
import type { Lease, VolumeEngine } from "../volumes/port.js";
import type { CheckpointStore } from "../checkpoints/port.js";
import { resolveInVolume } from "../files/resolve.js";
import type { CheckpointService } from "../checkpoints/service.js";
import type { VolumeService } from "../volumes/service.js";

export interface SandboxServiceDeps {
  store: MetadataStore;
  engine: VolumeEngine;
  checkpointStore: CheckpointStore;
  volumes: VolumeService;
  checkpoints: CheckpointService;
  driver: SandboxDriver;
  log: Logger;
  region: string;
  maxVolumesPerSandbox: number;
  /** How many `base` sandboxes to keep started ahead of demand (0: none). */
  warmSandboxes?: number;
  /** How long a stopped or failed sandbox stays listed before it is forgotten. */
  stoppedRetentionMs?: number;
  /** A sandbox's disk when the request names no size (and every warm sandbox's). */
  defaultDiskBytes: number;
  /** Admission: a sandbox's disk only while all that is promised fits in the pool. */
  capacity: Pick<PoolCapacity, "admit">;
}

/** The limits a sandbox gets when the request names none (what warm sandboxes start with). */
const DEFAULT_MEMORY_MB = 512;
const DEFAULT_PIDS = 256;
const DEFAULT_CPUS = 1;
/** Sandboxes' uid ranges start high above host users' and their subordinate ranges (/etc/subuid). */
const UID_BASE_FIRST = 2 ** 30;
const UID_SLOTS = 16_000;
const REFILL_QUIET_MS = 100;
const REFILL_MAX_DELAY_MS = 1000;

/** Paths a volume may not be mounted on: they are the sandbox's own machinery. */
const RESERVED = ["/proc", "/sys", "/dev", "/run/cairn", "/usr", "/etc", "/tmp"];

interface BackgroundProcess {
  id: string;
  command: string;
  child: ChildProcess;
  stdout: Buffer[];
  stderr: Buffer[];
  bytes: number;
  exitCode: number | null;
  done: Promise<void>;
}

const LOG_LIMIT = 4 * MiB;


export class SandboxService {
  /** Leases held by live attachments, by attachment id. */
  private readonly leases = new Map<string, Lease>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly processes = new Map<string, Map<string, BackgroundProcess>>();
  /**
   * Warm pool: containers already started (template base, default limits, no volumes), known
   * only here until a create claims one; it then gets its id as the sandbox's and its volumes
   * hot-plugged. Not in the metadata store, so a restarted cairnd removes them as unknown.
   */
  private readonly warm: string[] = [];
  private filling: Promise<void> | undefined;
  /** A refill waits for a quiet moment: see `refillSoon`. */
  private refillTimer: NodeJS.Timeout | undefined;
  private refillDeadline = 0;
  private closed = false;
  private warmFailures = 0;
  /** Warm sandboxes whose disks the pool has admitted (started or starting, not yet taken). */
  private warmDisks = 0;
  private pruneTimer: NodeJS.Timeout | undefined;
  /** The uid range of each warm sandbox (its root's host uid). */
  private readonly warmUids = new Map<string, number>();
  /** Host uid ranges in use, by their base: how many sandboxes (one, and its forks) share each. */
  private readonly uidRanges = new Map<number, number>();
  private wakeFiller: (() => void) | undefined;

  constructor(private readonly deps: SandboxServiceDeps) {}

  /** Start warm sandboxes until the pool is full; one at a time, in the background. */
  private fillWarmPool(): void {
    const size = this.deps.warmSandboxes ?? 0;
    if (this.filling || this.closed || this.warm.length >= size) return;
    this.filling = (async () => {
      while (!this.closed && this.warm.length < size) {
        const id = newId("sbx");
        const disk = this.deps.defaultDiskBytes;
        try {
          await this.deps.capacity.admit(disk, `a ${formatSize(disk)} disk for a warm sandbox`, async () => void this.warmDisks++);
        } catch {
          // The pool is promised: no warm sandbox now; creates still say POOL_FULL themselves.
          await new Promise<void>((r) => {
            const t = setTimeout(r, 30_000);
            t.unref();
            this.wakeFiller = () => (clearTimeout(t), r());
          });
          this.wakeFiller = undefined;
          continue;
        }
        const uidBase = this.takeUidRange();
        this.warmUids.set(id, uidBase);
        try {
          await this.deps.driver.prepare(id, { diskBytes: disk, uidBase });
          const spec = { env: {}, cwd: "/", memoryBytes: DEFAULT_MEMORY_MB * MiB, pids: DEFAULT_PIDS, cpus: DEFAULT_CPUS, uidBase };
          await this.deps.driver.start(id, spec, [], { background: true });
        } catch (err) {
          await this.deps.driver.destroy(id).catch(() => undefined);
          this.dropWarm(id);
          // A host that cannot start sandboxes now: back off, creates still work (cold, with their error).
          this.warmFailures++;
          this.deps.log.warn({ err }, "could not start a warm sandbox");
          await new Promise<void>((r) => {
            const t = setTimeout(r, Math.min(60_000, 500 * 2 ** this.warmFailures));
            t.unref();
            this.wakeFiller = () => (clearTimeout(t), r());
          });
          this.wakeFiller = undefined;
          continue;
        }
        this.warmFailures = 0;
        if (this.closed) {
          await this.deps.driver.destroy(id).catch(() => undefined);
          this.dropWarm(id);
        } else this.warm.push(id);
      }
    })().finally(() => {
      this.filling = undefined;
    });
  }

  /**
   * A host uid range for a new sandbox: 65536 ids from UID_BASE_FIRST up, none shared with a live
   * sandbox of another lineage (a fork shares its source's: a copy of the same sandbox, same files).
   */
  private takeUidRange(): number {
    for (;;) {
      const base = UID_BASE_FIRST + Math.floor(Math.random() * UID_SLOTS) * UID_RANGE;
      if (!this.uidRanges.has(base)) {
        this.uidRanges.set(base, 1);
        return base;
      }
    }
  }

  private holdUidRange(base: number | undefined): void {
    if (base !== undefined) this.uidRanges.set(base, (this.uidRanges.get(base) ?? 0) + 1);
  }

  private giveUidRange(base: number | undefined): void {
    if (base === undefined) return;
    const n = (this.uidRanges.get(base) ?? 1) - 1;
    if (n <= 0) this.uidRanges.delete(base);
    else this.uidRanges.set(base, n);
  }

  /** A warm sandbox gone before anyone took it: its disk and uid range go back. */
  private dropWarm(id: string): void {
    this.warmDisks--;
    this.giveUidRange(this.warmUids.get(id));
    this.warmUids.delete(id);
  }

  /** Pool space promised to sandbox disks: every sandbox that keeps its disk, and the warm ones. */
  async committedDiskBytes(): Promise<number> {
    let bytes = this.warmDisks * this.deps.defaultDiskBytes;
    for (const sb of await this.deps.store.listSandboxes(undefined, { limit: 1_000_000, states: ["starting", "running", "hibernated"] })) {
      bytes += sb.spec.diskBytes ?? 0;
    }
    return bytes;
  }

  /** How many warm sandboxes are ready, of how many cairnd keeps. */
  warmPool(): { ready: number; target: number } {
    return { ready: this.warm.length, target: this.deps.warmSandboxes ?? 0 };
  }

  /**
   * Refill once sandbox work has paused: a create is nearly always followed at once by an exec,
   * and a container start at the same moment competes with it for the kernel's mount and cgroup
   * locks (nice does not help there). Each create or exec postpones the refill by QUIET_MS, but
   * never beyond MAX_DELAY_MS after the pool first ran short.
   */
  private refillSoon(): void {
    if (this.closed || this.warm.length >= (this.deps.warmSandboxes ?? 0)) return;
    const t = Date.now();
    if (!this.refillTimer) this.refillDeadline = t + REFILL_MAX_DELAY_MS;
    clearTimeout(this.refillTimer);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fillWarmPool();
    }, Math.max(0, Math.min(REFILL_QUIET_MS, this.refillDeadline - t)));
    this.refillTimer.unref();
  }

  /** A running warm sandbox, or undefined when the pool is empty. */
  private async takeWarm(): Promise<string | undefined> {
    for (let id = this.warm.shift(); id !== undefined; id = this.warm.shift()) {
      if (await this.deps.driver.isRunning(id)) {
        this.refillSoon();
        return id;
      }
      await this.deps.driver.destroy(id).catch(() => undefined);
      this.dropWarm(id);
    }
    this.refillSoon();
    return undefined;
  }

  async find(projectId: string, id: string): Promise<SandboxRecord> {
    const sb = await this.deps.store.getSandbox(projectId, id);
    if (!sb) throw new CairnError("SANDBOX_NOT_FOUND", `Sandbox ${id} not found`);
    return sb;
  }

  async toWire(sb: SandboxRecord): Promise<Sandbox> {
    const attachments = await this.deps.store.listAttachments(sb.id);
    return {
      id: sb.id,
      template: sb.template,
      state: sb.state,
      cwd: sb.spec.cwd,
      env: sb.spec.env,
      memoryMb: Math.round(sb.spec.memoryBytes / MiB),
      cpus: sb.spec.cpus ?? 0,
      pids: sb.spec.pids,
      diskGb: (sb.spec.diskBytes ?? this.deps.defaultDiskBytes) / GiB,
      timeoutMs: sb.spec.timeoutMs,
      error: sb.error,
      attachments: await Promise.all(attachments.map((a) => this.attachmentToWire(a))),
      createdAt: sb.createdAt,
      updatedAt: sb.updatedAt,
    };
  }

  private async attachmentToWire(a: AttachmentRecord): Promise<Attachment> {
    const v = await this.deps.store.getVolumeById(a.volumeId);
    return {
      id: a.id,
      volume: a.volumeId,
      volumeName: v?.name ?? a.volumeId,
      sandbox: a.sandboxId,
      mountPath: a.mountPath,
      mode: a.mode,
      subpath: a.subpath,
      checkpoint: a.checkpointId,
      // A mount the sandbox moved or replaced stays "mounted" inside (it holds the lease and the
      // claim: the volume is still in the sandbox), and is reported as the failure it is.
      state: a.state === "mounted" && a.error !== null ? "failed" : a.state,
      error: a.error,
      createdAt: a.createdAt,
      updatedAt: a.updatedAt,
    };
  }

  async get(projectId: string, id: string): Promise<Sandbox> {
    return this.toWire(await this.find(projectId, id));
  }

  async list(projectId: string, options: { states?: SandboxState[] } = {}): Promise<Sandbox[]> {
    const rows = await this.deps.store.listSandboxes(projectId, { limit: 1000, ...(options.states ? { states: options.states } : {}) });
    return Promise.all(rows.map((r) => this.toWire(r)));
  }

  async attachments(projectId: string, id: string): Promise<Attachment[]> {
    const sb = await this.find(projectId, id);
    return Promise.all((await this.deps.store.listAttachments(sb.id)).map((a) => this.attachmentToWire(a)));
  }

  private normalizeMounts(projectId: string, volumes: CreateSandboxRequest["volumes"]): { mounts: MountRequest[]; autoCreate: boolean } {
    if (volumes === undefined) return { mounts: [], autoCreate: false };
    if (Array.isArray(volumes)) return { mounts: volumes, autoCreate: false };
    void projectId;
    return { mounts: Object.entries(volumes).map(([mountPath, volume]) => ({ volume, mountPath })), autoCreate: true };
  }

  private checkMountPath(raw: string): string {
    if (!raw.startsWith("/")) throw new CairnError("INVALID_MOUNT", `Mount path ${JSON.stringify(raw)} must be absolute, e.g. /workspace`);
    let path: string;
    try {
      path = normalizeVolumePath(raw);
    } catch (err) {
      throw new CairnError("INVALID_MOUNT", `Mount path ${JSON.stringify(raw)} is not a valid path: ${(err as Error).message}`);
    }
    if (path === "/" || RESERVED.some((r) => path === r || path.startsWith(r + "/"))) {
      throw new CairnError("INVALID_MOUNT", `Volumes cannot be mounted on ${path}; pick a path such as /workspace or /data`);
    }
    return path;
  }

  /** Claim an attachment: the access-mode rules and the region rule, atomically. */
  private async claim(sb: SandboxRecord, volume: VolumeRecord, m: MountRequest, mountPath: string): Promise<AttachmentRecord> {
    const { store, region } = this.deps;
    if (volume.region !== region) {
      throw new CairnError("REGION_MISMATCH", `Volume "${volume.name}" is in region ${volume.region}`);
    }
    if (volume.status !== "ready" && volume.status !== "resizing") {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${volume.name}" is ${volume.status}; retry in a moment`);
    }
    let checkpointId: string | null = null;
    if (m.checkpoint !== undefined) {
      checkpointId = (await this.deps.checkpoints.find(volume, m.checkpoint)).id;
      if (m.mode === "rw") throw new CairnError("INVALID_MOUNT", "A checkpoint mounts read-only; drop mode=rw");
    }
    const mode: "rw" | "ro" = checkpointId || volume.accessMode === "ReadOnlyMany" ? "ro" : (m.mode ?? "rw");
    if (volume.accessMode === "ReadOnlyMany" && m.mode === "rw") {
      throw new CairnError("INVALID_MOUNT", `Volume "${volume.name}" is ReadOnlyMany: it mounts read-only only`);
    }
    let subpath = "/";
    if (m.subpath !== undefined) {
      try {
        subpath = normalizeVolumePath(m.subpath);
      } catch (err) {
        throw new CairnError("INVALID_MOUNT", `subpath ${JSON.stringify(m.subpath)}: ${(err as Error).message}`);
      }
    }
    const at = new Date().toISOString();
    const record: AttachmentRecord = {
      id: newId("att"),
      projectId: sb.projectId,
      sandboxId: sb.id,
      volumeId: volume.id,
      checkpointId,
      mountPath,
      mode,
      subpath,
      state: "pending",
      error: null,
      // A checkpoint view never claims the volume itself.
      exclusive: volume.accessMode === "ReadWriteOnce" && checkpointId === null,
      createdAt: at,
      updatedAt: at,
    };
    if (!(await store.insertAttachment(record))) {
      throw new CairnError("VOLUME_ALREADY_ATTACHED", `Volume "${volume.name}" is already attached`);
    }
    return record;
  }

  /** Take the lease behind an attachment and give the host path the sandbox binds. */
  private async mountSource(a: AttachmentRecord): Promise<VolumeMount> {
    const { engine } = this.deps;
    const lease = a.checkpointId
      ? await this.deps.checkpointStore.mountCheckpoint({ volumeId: a.volumeId, checkpointId: a.checkpointId })
      : await engine.acquire(a.volumeId);
    this.leases.get(a.id)?.release();
    this.leases.set(a.id, lease);
    let source = lease.path;
    if (a.subpath !== "/") {
      const resolved = await resolveInVolume(lease.path, a.subpath, { followLast: true });
      if (a.mode === "rw" && !a.checkpointId) await mkdir(resolved.hostPath, { recursive: true });
      const st = await lstat(resolved.hostPath).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw new CairnError("INVALID_MOUNT", `subpath ${a.subpath} is not a directory of the volume`);
      }
      source = resolved.hostPath;
    }
    return { source, destination: a.mountPath, readonly: a.mode === "ro" };
  }

  private releaseLease(attachmentId: string): void {
    this.leases.get(attachmentId)?.release();
    this.leases.delete(attachmentId);
  }

  async create(projectId: string, req: CreateSandboxRequest): Promise<Sandbox> {
    const { store, volumes, driver, log } = this.deps;
    const template = req.template ?? req.image ?? "base";
    if (!(TEMPLATES as readonly string[]).includes(template)) {
      throw new CairnError("INVALID_TEMPLATE", `Unknown template "${template}"; templates are: ${TEMPLATES.join(", ")}`);
    }
    if (req.region !== undefined && req.region !== this.deps.region) {
      throw new CairnError("REGION_MISMATCH", `This cairnd serves region ${this.deps.region}; create sandboxes for region ${req.region} on a host of that region`);
    }
    const { mounts, autoCreate } = this.normalizeMounts(projectId, req.volumes);
    if (mounts.length > this.deps.maxVolumesPerSandbox) {
      throw new CairnError("TOO_MANY_VOLUMES", `A sandbox may mount at most ${this.deps.maxVolumesPerSandbox} volumes`);
    }
    const paths = mounts.map((m) => this.checkMountPath(m.mountPath));
    if (new Set(paths).size !== paths.length) throw new CairnError("INVALID_MOUNT", "Two volumes cannot share one mount path");
    const cwd = req.cwd !== undefined ? normalizeVolumePath(req.cwd) : "/";
    // Resolve (or create, for the `{path: name}` shorthand) every volume before anything starts.
    const resolved: VolumeRecord[] = [];
    for (const m of mounts) {
      if (autoCreate) {
        const { volume } = await volumes.create(projectId, { name: m.volume, ifExists: "return" });
        resolved.push(await volumes.find(projectId, volume.id));
      } else {
        resolved.push(await volumes.find(projectId, m.volume));
      }
    }
    const at = new Date().toISOString();
    const diskBytes = req.diskGb !== undefined ? req.diskGb * GiB : this.deps.defaultDiskBytes;
    const warmId = template === "base" && diskBytes === this.deps.defaultDiskBytes ? await this.takeWarm() : undefined;
    const sb: SandboxRecord = {
      id: warmId ?? newId("sbx"),
      projectId,
      template,
      state: "starting",
      spec: {
        env: req.env ?? {},
        cwd,
        memoryBytes: (req.memoryMb ?? DEFAULT_MEMORY_MB) * MiB,
        pids: req.pids ?? DEFAULT_PIDS,
        cpus: req.cpus ?? DEFAULT_CPUS,
        timeoutMs: req.timeoutMs ?? null,
        diskBytes,
        // Its own user namespace: the warm sandbox's range, or a new one.
        uidBase: warmId ? this.warmUids.get(warmId)! : this.takeUidRange(),
      },
      error: null,
      createdAt: at,
      updatedAt: at,
    };
    // A warm sandbox's disk was admitted when it started: its promise passes to this record.
    if (warmId) {
      await this.deps.capacity.admit(0, "a warm sandbox", async () => {
        await store.insertSandbox(sb);
        this.warmDisks--;
        this.warmUids.delete(warmId);
      });
    } else {
      await this.deps.capacity
        .admit(diskBytes, `a ${formatSize(diskBytes)} sandbox disk`, () => store.insertSandbox(sb))
        .catch((err: unknown) => {
          this.giveUidRange(sb.spec.uidBase);
          throw err;
        });
    }
    const claimed: AttachmentRecord[] = [];
    try {
      for (const [i, m] of mounts.entries()) claimed.push(await this.claim(sb, resolved[i]!, m, paths[i]!));
      // Volumes mount in parallel, and alongside the sandbox's directories (each has its own lock).
      const [mounted] = await Promise.all([Promise.allSettled(claimed.map((a) => this.mountSource(a))), warmId ? undefined : driver.prepare(sb.id, { diskBytes, uidBase: sb.spec.uidBase })]);
      const failed = mounted.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const sources = mounted.map((r) => (r as PromiseFulfilledResult<VolumeMount>).value);
      if (warmId) {
        // Already running: the volumes are hot-plugged (all in one pass), the limits set if not the defaults.
        await driver.attach(sb.id, claimed.map((a, i) => ({ attachmentId: a.id, mount: sources[i]! })));
        if (sb.spec.memoryBytes !== DEFAULT_MEMORY_MB * MiB || sb.spec.pids !== DEFAULT_PIDS || sb.spec.cpus !== DEFAULT_CPUS) await driver.update(sb.id, sb.spec);
        for (const a of claimed) await store.updateAttachment(a.id, { state: "mounted" });
        await store.updateSandbox(sb.id, { state: "running" });
      } else {
        await this.startWith(sb, claimed, sources);
      }
    } catch (err) {
      log.warn({ err, sandboxId: sb.id }, "sandbox create failed");
      await this.failStart(sb, claimed, err);
    }
    this.armTimeout(sb);
    return this.get(projectId, sb.id);
  }

  /** Start the container with its mounts; the attachments become mounted and the sandbox running. */
  private async startWith(sb: SandboxRecord, claimed: AttachmentRecord[], sources: VolumeMount[]): Promise<void> {
    await this.deps.driver.start(sb.id, sb.spec, sources);
    for (const a of claimed) await this.deps.store.updateAttachment(a.id, { state: "mounted", error: null });
    await this.deps.store.updateSandbox(sb.id, { state: "running" });
  }

  /** Undo a start that failed: no container, no leases, claims given up, the error recorded. */
  private async failStart(sb: SandboxRecord, claimed: AttachmentRecord[], err: unknown): Promise<never> {
    const { store, driver } = this.deps;
    await driver.destroy(sb.id).catch(() => undefined);
    for (const a of claimed) {
      this.releaseLease(a.id);
      await store.updateAttachment(a.id, { state: "failed", error: (err as Error).message });
    }
    await store.updateSandbox(sb.id, { state: "failed", error: (err as Error).message });
    this.giveUidRange(sb.spec.uidBase);
    throw err;
  }

  private armTimeout(sb: SandboxRecord): void {
    if (sb.spec.timeoutMs === null) return;
    const left = new Date(sb.createdAt).getTime() + sb.spec.timeoutMs - Date.now();
    const t = setTimeout(() => {
      void this.kill(sb.projectId, sb.id).catch((err) => this.deps.log.warn({ err, sandboxId: sb.id }, "timeout kill failed"));
    }, Math.max(0, left));
    t.unref();
    this.timers.set(sb.id, t);
  }

  private async requireRunning(projectId: string, id: string): Promise<SandboxRecord> {
    const sb = await this.find(projectId, id);
    if (sb.state !== "running") {
      throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is ${sb.state}${sb.state === "hibernated" ? "; resume it first" : ""}`);
    }
    return sb;
  }

  async exec(projectId: string, id: string, req: ExecRequest): Promise<ChildProcess> {
    const sb = await this.requireRunning(projectId, id);
    if (this.refillTimer) this.refillSoon();
    const cwd = req.cwd !== undefined ? normalizeVolumePath(req.cwd) : sb.spec.cwd;
    return this.deps.driver.exec(sb.id, { command: req.command, cwd, env: { ...sb.spec.env, ...req.env }, timeoutMs: req.timeoutMs });
  }

  /** The host pid of a running sandbox's init (to enter its network namespace). */
  async initPid(projectId: string, id: string): Promise<number> {
    const sb = await this.requireRunning(projectId, id);
    const pid = await this.deps.driver.pid(sb.id);
    if (!pid) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is not running`);
    return pid;
  }

  async startBackground(projectId: string, id: string, req: ExecRequest): Promise<ProcessInfo> {
    const child = await this.exec(projectId, id, req);
    child.stdin?.end();
    const p: BackgroundProcess = {
      id: newId("proc", 12),
      command: req.command,
      child,
      stdout: [],
      stderr: [],
      bytes: 0,
      exitCode: null,
      done: Promise.resolve(),
    };
    // Logs are kept in memory up to a bound; beyond it the oldest output is dropped.
    const keep = (list: Buffer[]) => (d: Buffer) => {
      list.push(d);
      p.bytes += d.length;
      while (p.bytes > LOG_LIMIT && list.length > 1) p.bytes -= list.shift()!.length;
    };
    child.stdout?.on("data", keep(p.stdout));
    child.stderr?.on("data", keep(p.stderr));
    p.done = new Promise((resolve) => child.on("close", (code) => ((p.exitCode = code ?? 137), resolve())));
    let map = this.processes.get(id);
    if (!map) this.processes.set(id, (map = new Map()));
    map.set(p.id, p);
    return this.processInfo(p, false);
  }

  private processInfo(p: BackgroundProcess, withLogs: boolean): ProcessInfo {
    const info: ProcessInfo = { id: p.id, command: p.command, state: p.exitCode === null ? "running" : "exited", exitCode: p.exitCode };
    if (withLogs) {
      info.stdout = Buffer.concat(p.stdout).toString("utf8");
      info.stderr = Buffer.concat(p.stderr).toString("utf8");
    }
    return info;
  }

  async process(projectId: string, id: string, processId: string, options: { wait: boolean; logs: boolean }): Promise<ProcessInfo> {
    await this.find(projectId, id);
    const p = this.processes.get(id)?.get(processId);
    if (!p) throw new CairnError("PROCESS_NOT_FOUND", `Process ${processId} not found in sandbox ${id}`);
    if (options.wait) await p.done;
    return this.processInfo(p, options.logs);
  }

  async kill(projectId: string, id: string): Promise<Sandbox> {
    const { store, driver } = this.deps;
    const sb = await this.find(projectId, id);
    clearTimeout(this.timers.get(sb.id));
    this.timers.delete(sb.id);
    await driver.destroy(sb.id);
    for (const p of this.processes.get(sb.id)?.values() ?? []) p.child.kill("SIGKILL");
    this.processes.delete(sb.id);
    for (const a of await store.listAttachments(sb.id)) {
      this.releaseLease(a.id);
      if (a.state !== "released" && a.state !== "failed") await store.updateAttachment(a.id, { state: "released" });
    }
    if (["starting", "running", "hibernated"].includes(sb.state)) this.giveUidRange(sb.spec.uidBase);
    if (sb.state !== "stopped") await store.updateSandbox(sb.id, { state: "stopped" });
    if (sb.state !== "stopped" && sb.state !== "failed") await this.dropOwned(projectId, sb);
    return this.get(projectId, sb.id);
  }

  /** Hot-plug a volume into a running sandbox. */
  async attach(projectId: string, id: string, m: MountRequest): Promise<Attachment> {
    const { store, driver, volumes } = this.deps;
    const sb = await this.requireRunning(projectId, id);
    const mountPath = this.checkMountPath(m.mountPath);
    const live = (await store.listAttachments(sb.id)).filter((a) => a.state === "pending" || a.state === "mounted");
    if (live.length >= this.deps.maxVolumesPerSandbox) {
      throw new CairnError("TOO_MANY_VOLUMES", `A sandbox may mount at most ${this.deps.maxVolumesPerSandbox} volumes`);
    }
    if (live.some((a) => a.mountPath === mountPath)) throw new CairnError("INVALID_MOUNT", `Something is already mounted on ${mountPath}`);
    const volume = await volumes.find(projectId, m.volume);
    const a = await this.claim(sb, volume, m, mountPath);
    try {
      const source = await this.mountSource(a);
      await driver.attach(sb.id, [{ attachmentId: a.id, mount: source }]);
      await store.updateAttachment(a.id, { state: "mounted" });
    } catch (err) {
      this.releaseLease(a.id);
      await store.updateAttachment(a.id, { state: "failed", error: (err as Error).message });
      throw err;
    }
    return this.attachmentToWire((await store.listAttachments(sb.id)).find((x) => x.id === a.id)!);
  }

  /** Unmount by mount path. A busy mount is a 409 unless `force` (the processes using it are killed). */
  async detach(projectId: string, id: string, rawPath: string, force: boolean): Promise<Attachment> {
    const { store } = this.deps;
    const sb = await this.find(projectId, id);
    const mountPath = normalizeVolumePath(rawPath);
    const a = (await store.listAttachments(sb.id)).find((x) => x.mountPath === mountPath && ["pending", "mounted", "suspended"].includes(x.state));
    if (!a) throw new CairnError("ATTACHMENT_NOT_FOUND", `Nothing is attached at ${mountPath} in sandbox ${id}`);
    if (a.state === "mounted") await this.unmount(a, force);
    this.releaseLease(a.id);
    await store.updateAttachment(a.id, { state: "released" });
    return this.attachmentToWire({ ...a, state: "released", error: a.error, exclusive: false });
  }

  /** Which filesystem an attachment put in its sandbox, and where. */
  private async mountedVolume(a: AttachmentRecord): Promise<MountedVolume> {
    const lease = this.leases.get(a.id);
    if (!lease) throw new CairnError("INTERNAL", `attachment ${a.id} holds no lease`);
    return { destination: a.mountPath, device: deviceString((await stat(lease.path)).dev) };
  }

  /**
   * Take a mounted attachment out of its running sandbox. The claim and the lease are given up
   * only after the unmount really happened: when the sandbox moved or replaced the mount, the
   * attachment keeps both and records why (it reads as failed until the sandbox stops).
   */
  private async unmount(a: AttachmentRecord, force: boolean): Promise<void> {
    try {
      await this.deps.driver.detach(a.sandboxId, await this.mountedVolume(a), { force });
    } catch (err) {
      if (err instanceof CairnError && err.code === "MOUNT_CHANGED") {
        await this.deps.store.updateAttachment(a.id, { error: err.message });
        this.deps.log.warn({ sandboxId: a.sandboxId, attachmentId: a.id, mountPath: a.mountPath }, "detach refused: the sandbox moved or replaced the mount");
      }
      throw err;
    }
  }

  /**
   * Force-detach every read-write attachment of a volume (for a restore with `detach`): running
   * sandboxes lose the mount (their processes that use it are killed), hibernated ones will resume
   * without it. All end released; a sandbox that moved its mount fails the restore (MOUNT_CHANGED).
   */
  async detachWriters(volumeId: string): Promise<number> {
    const { store } = this.deps;
    let n = 0;
    for (const a of await store.listLiveAttachmentsOfVolume(volumeId)) {
      if (a.mode !== "rw" || a.checkpointId !== null) continue;
      if (a.state === "mounted") await this.unmount(a, true);
      this.releaseLease(a.id);
      await store.updateAttachment(a.id, { state: "released" });
      n++;
    }
    return n;
  }

  /** Filesystem-mode hibernate: stop every process, keep the filesystem and the attachment intent, release the volumes. */
  async hibernate(projectId: string, id: string): Promise<Sandbox> {
    const { store, driver } = this.deps;
    const sb = await this.requireRunning(projectId, id);
    await driver.stop(sb.id);
    this.processes.delete(sb.id);
    for (const a of await store.listAttachments(sb.id)) {
      if (a.state !== "mounted") continue;
      this.releaseLease(a.id);
      await store.updateAttachment(a.id, { state: "suspended", error: null });
    }
    await store.updateSandbox(sb.id, { state: "hibernated" });
    return this.get(projectId, sb.id);
  }

  async resume(projectId: string, id: string): Promise<Sandbox> {
    const { store, driver } = this.deps;
    const sb = await this.find(projectId, id);
    if (sb.state !== "hibernated") throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is ${sb.state}; only a hibernated sandbox resumes`);
    const suspended = (await store.listAttachments(sb.id)).filter((a) => a.state === "suspended");
    try {
      const sources = [];
      for (const a of suspended) sources.push(await this.mountSource(a));
      await driver.start(sb.id, sb.spec, sources);
    } catch (err) {
      for (const a of suspended) this.releaseLease(a.id);
      throw err;
    }
    for (const a of suspended) await store.updateAttachment(a.id, { state: "mounted" });
    await store.updateSandbox(sb.id, { state: "running" });
    return this.get(projectId, sb.id);
  }

  /**
   * A second sandbox with the same filesystem state. ReadWriteMany and ReadOnlyMany volumes are
   * shared; a ReadWriteOnce volume is forked from a checkpoint (copy-on-write) into a new volume.
   */
  /**
   * A new sandbox with the same filesystem state. Its volumes: ReadWriteMany and ReadOnlyMany ones
   * are shared; a ReadWriteOnce volume mounted read-write is forked into a new volume (labelled
   * with where it came from, and deleted with the fork unless `keepVolumes`); one mounted
   * read-only is shared as a read-only view of a checkpoint taken now (no copy, no claim), which
   * goes with the fork.
   */
  async fork(projectId: string, id: string, options: { keepVolumes?: boolean } = {}): Promise<Sandbox> {
    const { store, driver, volumes, checkpoints } = this.deps;
    const src = await this.find(projectId, id);
    if (src.state !== "running" && src.state !== "hibernated") {
      throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is ${src.state}; fork a running or hibernated sandbox`);
    }
    const at = new Date().toISOString();
    const sb: SandboxRecord = { ...src, spec: { ...src.spec }, id: newId("sbx"), state: "starting", error: null, createdAt: at, updatedAt: at };
    delete sb.spec.owned;
    const owned: NonNullable<SandboxRecord["spec"]["owned"]> = { volumes: [], checkpoints: [] };
    const diskBytes = src.spec.diskBytes ?? this.deps.defaultDiskBytes;
    await this.deps.capacity.admit(diskBytes, `a ${formatSize(diskBytes)} disk for the fork`, () => store.insertSandbox(sb));
    // A fork is a copy of the same sandbox, files and owners alike: it shares its uid range.
    this.holdUidRange(sb.spec.uidBase);
    const claimed: AttachmentRecord[] = [];
    try {
      await driver.copy(src.id, sb.id);
      for (const a of await store.listAttachments(src.id)) {
        if (!["mounted", "suspended"].includes(a.state)) continue;
        const volume = await volumes.find(projectId, a.volumeId);
        let target = volume;
        let checkpointId = a.checkpointId;
        if (a.exclusive) {
          const cp = await checkpoints.create(projectId, volume.id, { name: `fork-${sb.id.slice(4, 16)}-${owned.checkpoints.length}` });
          if (a.mode === "ro") {
            // Read-only: the fork sees the same data through the checkpoint, shared, never copied.
            checkpointId = cp.id;
            owned.checkpoints.push({ volumeId: volume.id, checkpointId: cp.id });
          } else {
            const { volume: forked } = await volumes.create(projectId, {
              name: `${volume.name.slice(0, 40)}-fork-${sb.id.slice(4, 12)}`,
              fromCheckpoint: `${volume.id}:${cp.id}`,
              accessMode: volume.accessMode,
              labels: { ...volume.labels, "cairn.dev/fork-of": volume.id, "cairn.dev/forked-for": sb.id },
            });
            // The fork's volume is a reflinked image of its own: the checkpoint is not needed any more.
            await checkpoints.delete(projectId, volume.id, cp.id).catch(() => undefined);
            target = await volumes.find(projectId, forked.id);
            if (!options.keepVolumes) owned.volumes.push(forked.id);
          }
        }
        const m: MountRequest = { volume: target.id, mountPath: a.mountPath, mode: a.mode };
        if (a.subpath !== "/") m.subpath = a.subpath;
        if (checkpointId) m.checkpoint = checkpointId;
        claimed.push(await this.claim(sb, target, m, a.mountPath));
      }
      if (owned.volumes.length > 0 || owned.checkpoints.length > 0) {
        sb.spec.owned = owned;
        await store.updateSandboxSpec(sb.id, sb.spec);
      }
      const sources = [];
      for (const a of claimed) sources.push(await this.mountSource(a));
      await this.startWith(sb, claimed, sources);
    } catch (err) {
      await this.failStart(sb, claimed, err).catch(async (e: unknown) => {
        await this.dropOwned(projectId, { ...sb, spec: { ...sb.spec, owned } });
        throw e;
      });
    }
    this.armTimeout(sb);
    return this.get(projectId, sb.id);
  }

  /** What a fork made for itself (volumes forked without keepVolumes, checkpoint views) goes with it. */
  private async dropOwned(projectId: string, sb: SandboxRecord): Promise<void> {
    const owned = sb.spec.owned;
    if (!owned) return;
    for (const volumeId of owned.volumes) {
      await this.deps.volumes.delete(projectId, volumeId).catch((err) => this.deps.log.warn({ err, volumeId, sandboxId: sb.id }, "could not delete a fork's volume"));
    }
    for (const c of owned.checkpoints) {
      await this.deps.checkpoints.delete(projectId, c.volumeId, c.checkpointId).catch((err) => this.deps.log.warn({ err, ...c, sandboxId: sb.id }, "could not delete a fork's checkpoint"));
    }
  }

  /** Write a file anywhere in the sandbox, as the sandbox itself would (its privileges, its view). */
  async writeFile(projectId: string, id: string, path: string, body: NodeJS.ReadableStream): Promise<void> {
    const p = normalizeVolumePath(path);
    const child = await this.exec(projectId, id, {
      command: WRITE_FILE_SCRIPT,
      env: { CAIRN_PATH: p },
    });
    await runChild(child, body, p);
  }

  /** Read a file of the sandbox: a stream of its bytes. */
  async readFile(projectId: string, id: string, path: string): Promise<ChildProcess> {
    const p = normalizeVolumePath(path);
    const child = await this.exec(projectId, id, {
      command: READ_FILE_SCRIPT,
      env: { CAIRN_PATH: p },
    });
    child.stdin?.end();
    return child;
  }

  /**
   * After a restart: sandboxes that still run get their volume leases back (so nothing unmounts
   * under them); sandboxes whose container is gone are marked stopped and release their claims;
   * containers nobody knows are removed.
   */
  async reconcile(): Promise<void> {
    const { store, driver, log } = this.deps;
    const running = new Set(await driver.list());
    const known = new Set<string>();
    for (const sb of await store.listSandboxes(undefined, { limit: 100_000, states: ["starting", "running", "hibernated"] })) {
      known.add(sb.id);
      const attachments = await store.listAttachments(sb.id);
      if (sb.state === "hibernated") {
        this.holdUidRange(sb.spec.uidBase);
        continue;
      }
      if (sb.state === "running" && running.has(sb.id) && (await driver.isRunning(sb.id))) {
        this.holdUidRange(sb.spec.uidBase);
        for (const a of attachments) if (a.state === "mounted") await this.mountSource(a).catch((err) => log.warn({ err }, "re-lease failed"));
        this.armTimeout(sb);
        continue;
      }
      await driver.destroy(sb.id).catch(() => undefined);
      for (const a of attachments) {
        if (a.state === "released" || a.state === "failed") continue;
        await store.updateAttachment(a.id, { state: "released" });
      }
      await store.updateSandbox(sb.id, { state: "stopped", error: "cairnd restarted and the sandbox was gone" });
    }
    for (const id of new Set([...running, ...(await driver.prepared())])) {
      if (!known.has(id)) await driver.destroy(id).catch(() => undefined);
    }
    this.fillWarmPool();
    this.schedulePrune();
  }

  /** Killed and failed sandboxes are listed for a while (to read why), then forgotten. */
  private schedulePrune(): void {
    const retention = this.deps.stoppedRetentionMs;
    if (retention === undefined || this.closed) return;
    const prune = async () => {
      const ids = await this.deps.store.pruneSandboxes(new Date(Date.now() - retention).toISOString());
      if (ids.length > 0) this.deps.log.info({ count: ids.length }, "forgot sandboxes that ended before the retention");
    };
    void prune().catch((err) => this.deps.log.warn({ err }, "pruning ended sandboxes failed"));
    this.pruneTimer = setInterval(() => void prune().catch((err) => this.deps.log.warn({ err }, "pruning ended sandboxes failed")), Math.max(1000, Math.min(retention, 600_000)));
    this.pruneTimer.unref();
  }

  /**
   * Shutdown: running sandboxes keep running and their volumes stay mounted (the leases are not
   * released), so a restarted cairnd adopts the same mounts. Mounting an image again while a
   * sandbox still uses it through another loop device would corrupt it.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    clearInterval(this.pruneTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    for (const p of this.processes.values()) for (const proc of p.values()) proc.child.kill("SIGKILL");
    // Warm sandboxes belong to nobody: they go (a start in flight is destroyed when it ends).
    this.wakeFiller?.();
    await this.filling;
    await Promise.all(this.warm.splice(0).map((id) => this.deps.driver.destroy(id).catch(() => undefined)));
    this.warmDisks = 0;
    this.warmUids.clear();
  }
}

async function runChild(child: ChildProcess, body: NodeJS.ReadableStream, path: string): Promise<void> {
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += d));
  child.stdin?.on("error", () => undefined);
  if (child.stdin) body.pipe(child.stdin);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (code !== 0) {
    if (/No space left/i.test(stderr)) throw new CairnError("QUOTA_EXCEEDED", `No space left for ${path} in the sandbox`);
    if (/Read-only/i.test(stderr)) throw new CairnError("INVALID_PATH", `${path} is on a read-only filesystem`);
    throw new CairnError("INVALID_PATH", `Could not write ${path}: ${stderr.trim().split("\n")[0] ?? ""}`);
  }
}
