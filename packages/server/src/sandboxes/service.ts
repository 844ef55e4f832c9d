/**
 * Sandboxes' lifecycle: create, exec, attach and detach, hibernate and resume, fork, kill,
 * reconcile after a restart. Their mounts (claims and leases) are in mounts.ts, the warm pool in
 * warm-pool.ts, background processes in processes.ts. Access modes are enforced by the metadata
 * store (a unique claim per ReadWriteOnce volume), so when many sandboxes race for one volume
 * exactly one wins, on any number of hosts.
 *
 * Over 500 lines because each lifecycle step (create, resume, fork, kill, reconcile) moves the
 * same records, claims and driver calls in an order that is only safe read together.
 */
import type { ChildProcess } from "node:child_process";
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
import type { SandboxDriver, SandboxSpecInput, VolumeMount } from "./port.js";
import type { PoolCapacity } from "../volumes/capacity.js";
import { READ_FILE_SCRIPT, WRITE_FILE_SCRIPT } from "./file-scripts.js";
import { ProcessTable } from "./processes.js";
import { UidRanges } from "./uid-ranges.js";
import { WarmPool } from "./warm-pool.js";
import { checkMountPath, Mounts } from "./mounts.js";
import type { AttachmentRecord, MetadataStore, SandboxRecord, SandboxState, VolumeRecord } from "../storage/metadata-store.js";
import type { VolumeEngine } from "../volumes/port.js";
import type { CheckpointStore } from "../checkpoints/port.js";
import type { CheckpointService } from "../checkpoints/service.js";
import type { VolumeService } from "../volumes/service.js";
import type { ImageService } from "../images/service.js";
import { formatReference, parseReference } from "../images/reference.js";
import { imageDefaults, type ImageDefaults } from "./image-spec.js";
import type { SandboxNetwork } from "../network/port.js";
import { networkToWire, resolveNetwork } from "../network/policy.js";

export interface SandboxServiceDeps {
  store: MetadataStore;
  engine: VolumeEngine;
  checkpointStore: CheckpointStore;
  volumes: VolumeService;
  checkpoints: CheckpointService;
  driver: SandboxDriver;
  /** Images a create may name: pulled when not here yet, their layers stacked as the root. */
  images: Pick<ImageService, "ensure" | "lowers">;
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
  /** Interfaces and policies for sandboxes that reach the network. */
  network: SandboxNetwork;
  /** What a create that names no network gets (CAIRN_SANDBOX_NETWORK). */
  defaultNetwork: "none" | "egress";
}

/** The limits a sandbox gets when the request names none (what warm sandboxes start with). */
const DEFAULT_MEMORY_MB = 512;
const DEFAULT_PIDS = 256;
const DEFAULT_CPUS = 1;

export class SandboxService {
  private readonly mounts: Mounts;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly processes = new ProcessTable();
  private readonly uids = new UidRanges();
  private readonly warm: WarmPool;
  private closed = false;
  private pruneTimer: NodeJS.Timeout | undefined;
  private readonly stopListeners: ((sandboxId: string) => void)[] = [];

  constructor(private readonly deps: SandboxServiceDeps) {
    this.mounts = new Mounts(deps);
    this.warm = new WarmPool({
      size: deps.warmSandboxes ?? 0,
      diskBytes: deps.defaultDiskBytes,
      spec: { env: {}, cwd: "/", memoryBytes: DEFAULT_MEMORY_MB * MiB, pids: DEFAULT_PIDS, cpus: DEFAULT_CPUS },
      driver: deps.driver,
      capacity: deps.capacity,
      uids: this.uids,
      log: deps.log,
    });
  }

  /** Pool space promised to sandbox disks: every sandbox that keeps its disk, and the warm ones. */
  async committedDiskBytes(): Promise<number> {
    let bytes = this.warm.committedBytes();
    for (const sb of await this.deps.store.sandboxes.list(undefined, { limit: 1_000_000, states: ["starting", "running", "hibernated"] })) {
      bytes += sb.spec.diskBytes ?? 0;
    }
    return bytes;
  }

  /** How many warm sandboxes are ready, of how many cairnd keeps. */
  warmPool(): { ready: number; target: number } {
    return this.warm.status();
  }

  async find(projectId: string, id: string): Promise<SandboxRecord> {
    const sb = await this.deps.store.sandboxes.get(projectId, id);
    if (!sb) throw new CairnError("SANDBOX_NOT_FOUND", `Sandbox ${id} not found`);
    return sb;
  }

  async toWire(sb: SandboxRecord): Promise<Sandbox> {
    const attachments = await this.deps.store.attachments.list(sb.id);
    return {
      id: sb.id,
      template: sb.template,
      image: sb.spec.image ? { ref: sb.spec.image.ref, digest: sb.spec.image.digest, exposedPorts: sb.spec.image.exposedPorts } : null,
      state: sb.state,
      cwd: sb.spec.cwd,
      env: sb.spec.env,
      memoryMb: Math.round(sb.spec.memoryBytes / MiB),
      cpus: sb.spec.cpus ?? 0,
      pids: sb.spec.pids,
      diskGb: (sb.spec.diskBytes ?? this.deps.defaultDiskBytes) / GiB,
      timeoutMs: sb.spec.timeoutMs,
      network: networkToWire(sb.spec.network, sb.state === "running"),
      error: sb.error,
      attachments: await Promise.all(attachments.map((a) => this.attachmentToWire(a))),
      createdAt: sb.createdAt,
      updatedAt: sb.updatedAt,
    };
  }

  private async attachmentToWire(a: AttachmentRecord): Promise<Attachment> {
    const v = await this.deps.store.volumes.byId(a.volumeId);
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
    const rows = await this.deps.store.sandboxes.list(projectId, { limit: 1000, ...(options.states ? { states: options.states } : {}) });
    return Promise.all(rows.map((r) => this.toWire(r)));
  }

  async attachments(projectId: string, id: string): Promise<Attachment[]> {
    const sb = await this.find(projectId, id);
    return Promise.all((await this.deps.store.attachments.list(sb.id)).map((a) => this.attachmentToWire(a)));
  }

  private normalizeMounts(projectId: string, volumes: CreateSandboxRequest["volumes"]): { mounts: MountRequest[]; autoCreate: boolean } {
    if (volumes === undefined) return { mounts: [], autoCreate: false };
    if (Array.isArray(volumes)) return { mounts: volumes, autoCreate: false };
    void projectId;
    return { mounts: Object.entries(volumes).map(([mountPath, volume]) => ({ volume, mountPath })), autoCreate: true };
  }

  async create(projectId: string, req: CreateSandboxRequest): Promise<Sandbox> {
    const { store, volumes, driver, log } = this.deps;
    // `image` names an OCI image unless it is a template's name (it was another name for template).
    const imageRef = req.template === undefined && req.image !== undefined && !(TEMPLATES as readonly string[]).includes(req.image) ? req.image : undefined;
    const template = imageRef !== undefined ? "image" : (req.template ?? req.image ?? "base");
    if (imageRef === undefined && !(TEMPLATES as readonly string[]).includes(template)) {
      throw new CairnError("INVALID_TEMPLATE", `Unknown template "${template}"; templates are: ${TEMPLATES.join(", ")}`);
    }
    if (req.region !== undefined && req.region !== this.deps.region) {
      throw new CairnError("REGION_MISMATCH", `This cairnd serves region ${this.deps.region}; create sandboxes for region ${req.region} on a host of that region`);
    }
    const { mounts, autoCreate } = this.normalizeMounts(projectId, req.volumes);
    if (mounts.length > this.deps.maxVolumesPerSandbox) {
      throw new CairnError("TOO_MANY_VOLUMES", `A sandbox may mount at most ${this.deps.maxVolumesPerSandbox} volumes`);
    }
    const paths = mounts.map((m) => checkMountPath(m.mountPath));
    if (new Set(paths).size !== paths.length) throw new CairnError("INVALID_MOUNT", "Two volumes cannot share one mount path");
    const network = resolveNetwork(req.network, this.deps.defaultNetwork, this.deps.network.subnet);
    const offline = network ? await this.deps.network.unavailable() : undefined;
    if (offline) throw new CairnError("NETWORK_UNAVAILABLE", `This host cannot give sandboxes a network: ${offline}`);
    // An image not here yet is pulled now (once, however many creates ask at the same time).
    const fromImage = imageRef !== undefined ? await this.imageDefaults(projectId, imageRef) : undefined;
    const cwd = req.cwd !== undefined ? normalizeVolumePath(req.cwd) : (fromImage?.cwd ?? "/");
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
    const warmed = template === "base" && diskBytes === this.deps.defaultDiskBytes ? await this.warm.take() : undefined;
    const warmId = warmed?.id;
    const sb: SandboxRecord = {
      id: warmId ?? newId("sbx"),
      projectId,
      template,
      state: "starting",
      spec: {
        env: { ...fromImage?.env, ...req.env },
        cwd,
        ...(fromImage ? { image: fromImage.image } : {}),
        memoryBytes: (req.memoryMb ?? DEFAULT_MEMORY_MB) * MiB,
        pids: req.pids ?? DEFAULT_PIDS,
        cpus: req.cpus ?? DEFAULT_CPUS,
        timeoutMs: req.timeoutMs ?? null,
        diskBytes,
        // Its own user namespace: the warm sandbox's range, or a new one.
        uidBase: warmed ? warmed.uidBase : this.uids.take(),
        ...(network ? { network } : {}),
      },
      error: null,
      createdAt: at,
      updatedAt: at,
    };
    // A warm sandbox's disk was admitted when it started: its promise passes to this record.
    if (warmId) {
      await this.deps.capacity.admit(0, "a warm sandbox", async () => {
        await store.sandboxes.insert(sb);
        this.warm.handOver(warmId);
      });
    } else {
      await this.deps.capacity
        .admit(diskBytes, `a ${formatSize(diskBytes)} sandbox disk`, () => store.sandboxes.insert(sb))
        .catch((err: unknown) => {
          this.uids.give(sb.spec.uidBase);
          throw err;
        });
    }
    const claimed: AttachmentRecord[] = [];
    try {
      for (const [i, m] of mounts.entries()) claimed.push(await this.mounts.claim(sb, resolved[i]!, m, paths[i]!));
      // Volumes mount in parallel, and alongside the sandbox's directories (each has its own lock).
      const [mounted] = await Promise.all([Promise.allSettled(claimed.map((a) => this.mounts.source(a))), warmId ? undefined : driver.prepare(sb.id, { diskBytes, uidBase: sb.spec.uidBase, image: fromImage !== undefined })]);
      const failed = mounted.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const sources = mounted.map((r) => (r as PromiseFulfilledResult<VolumeMount>).value);
      if (warmId) {
        // Already running: the volumes are hot-plugged (all in one pass), the limits set if not the defaults.
        await driver.attach(sb.id, claimed.map((a, i) => ({ attachmentId: a.id, mount: sources[i]! })));
        if (sb.spec.memoryBytes !== DEFAULT_MEMORY_MB * MiB || sb.spec.pids !== DEFAULT_PIDS || sb.spec.cpus !== DEFAULT_CPUS) await driver.update(sb.id, sb.spec);
        await this.connect(sb);
        for (const a of claimed) await store.attachments.update(a.id, { state: "mounted" });
        await store.sandboxes.update(sb.id, { state: "running" });
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

  /** What an image create takes from the image (pulled first if it is not here). */
  private async imageDefaults(projectId: string, text: string): Promise<ImageDefaults> {
    const record = await this.deps.images.ensure(projectId, text);
    return imageDefaults(record, formatReference(parseReference(text)), await this.deps.images.lowers(record.digest));
  }

  /** The spec the driver starts from: an image's layers as host directories. */
  private async driverSpec(sb: SandboxRecord): Promise<SandboxSpecInput> {
    const { image, ...spec } = sb.spec;
    return image ? { ...spec, image: { layers: await this.deps.images.lowers(image.digest) } } : spec;
  }

  /** Sandboxes that run an image (by digest) and so keep it: its removal is refused meanwhile. */
  async imageUsers(digest: string, projectId?: string): Promise<string[]> {
    const rows = await this.deps.store.sandboxes.list(projectId, { limit: 1_000_000, states: ["starting", "running", "hibernated"] });
    return rows.filter((r) => r.spec.image?.digest === digest).map((r) => r.id);
  }

  /** Start the container with its mounts; the attachments become mounted and the sandbox running. */
  private async startWith(sb: SandboxRecord, claimed: AttachmentRecord[], sources: VolumeMount[]): Promise<void> {
    await this.deps.driver.start(sb.id, await this.driverSpec(sb), sources);
    await this.connect(sb);
    for (const a of claimed) await this.deps.store.attachments.update(a.id, { state: "mounted", error: null });
    await this.deps.store.sandboxes.update(sb.id, { state: "running" });
  }

  /** Undo a start that failed: no container, no leases, claims given up, the error recorded. */
  private async failStart(sb: SandboxRecord, claimed: AttachmentRecord[], err: unknown): Promise<never> {
    const { store, driver } = this.deps;
    await driver.destroy(sb.id).catch(() => undefined);
    await this.disconnect(sb);
    for (const a of claimed) {
      this.mounts.release(a.id);
      await store.attachments.update(a.id, { state: "failed", error: (err as Error).message });
    }
    await store.sandboxes.update(sb.id, { state: "failed", error: (err as Error).message });
    this.uids.give(sb.spec.uidBase);
    throw err;
  }

  /** Its interface and policy, once it runs (a sandbox with a network only); the address is kept with it. */
  private async connect(sb: SandboxRecord): Promise<void> {
    const spec = sb.spec.network;
    if (!spec) return;
    const address = await this.deps.network.connect(sb.id, { pid: () => this.deps.driver.pid(sb.id), spec });
    sb.spec.network = { ...spec, address };
    await this.deps.store.sandboxes.updateSpec(sb.id, sb.spec);
  }

  /** Its interface and policy go (it stopped, or is about to); so do routes into it. */
  private async disconnect(sb: SandboxRecord): Promise<void> {
    for (const listener of this.stopListeners) listener(sb.id);
    const spec = sb.spec.network;
    if (!spec) return;
    await this.deps.network.disconnect(sb.id, spec).catch((err) => this.deps.log.warn({ err, sandboxId: sb.id }, "could not remove a sandbox's network"));
    if (spec.address === undefined) return;
    delete spec.address;
    await this.deps.store.sandboxes.updateSpec(sb.id, sb.spec);
  }

  /** Called with a sandbox's id when it stops running (killed, hibernated, failed): what holds a way into it lets go. */
  onStopped(listener: (sandboxId: string) => void): void {
    this.stopListeners.push(listener);
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
    if (this.warm.refillPending()) this.warm.refillSoon();
    const cwd = req.cwd !== undefined ? normalizeVolumePath(req.cwd) : sb.spec.cwd;
    const image = sb.spec.image;
    let argv: string[] | undefined;
    if (req.command === undefined) {
      // No command: the image's own (entrypoint and cmd), as `docker run` would start it.
      if (!image || image.argv.length === 0) throw new CairnError("INVALID_REQUEST", "body.command: required (this sandbox's image names no entrypoint or cmd to run instead)");
      argv = image.argv;
    }
    return this.deps.driver.exec(sb.id, {
      command: req.command ?? "",
      cwd,
      env: { ...sb.spec.env, ...req.env },
      timeoutMs: req.timeoutMs,
      ...(image ? { image: true } : {}),
      ...(image?.user ? { user: image.user } : {}),
      ...(argv ? { argv } : {}),
    });
  }

  /** The host pid of a running sandbox's init (to enter its network namespace). */
  async initPid(projectId: string, id: string): Promise<number> {
    const sb = await this.requireRunning(projectId, id);
    const pid = await this.deps.driver.pid(sb.id);
    if (!pid) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is not running`);
    return pid;
  }

  /** Start a command that runs on; `input`, when given, is its stdin (else stdin is empty). */
  async startBackground(projectId: string, id: string, req: ExecRequest, input?: NodeJS.ReadableStream): Promise<ProcessInfo> {
    const child = await this.exec(projectId, id, req);
    const sb = await this.find(projectId, id);
    return this.processes.add(id, req.command ?? (sb.spec.image?.argv ?? []).join(" "), child, input);
  }

  async process(projectId: string, id: string, processId: string, options: { wait: boolean; logs: boolean }): Promise<ProcessInfo> {
    await this.find(projectId, id);
    return this.processes.get(id, processId, options);
  }

  async kill(projectId: string, id: string): Promise<Sandbox> {
    const { store, driver } = this.deps;
    const sb = await this.find(projectId, id);
    clearTimeout(this.timers.get(sb.id));
    this.timers.delete(sb.id);
    await driver.destroy(sb.id);
    await this.disconnect(sb);
    this.processes.drop(sb.id, { kill: true });
    for (const a of await store.attachments.list(sb.id)) {
      this.mounts.release(a.id);
      if (a.state !== "released" && a.state !== "failed") await store.attachments.update(a.id, { state: "released" });
    }
    if (["starting", "running", "hibernated"].includes(sb.state)) this.uids.give(sb.spec.uidBase);
    if (sb.state !== "stopped") await store.sandboxes.update(sb.id, { state: "stopped" });
    if (sb.state !== "stopped" && sb.state !== "failed") await this.dropOwned(projectId, sb);
    return this.get(projectId, sb.id);
  }

  /** Hot-plug a volume into a running sandbox. */
  async attach(projectId: string, id: string, m: MountRequest): Promise<Attachment> {
    const { store, driver, volumes } = this.deps;
    const sb = await this.requireRunning(projectId, id);
    const mountPath = checkMountPath(m.mountPath);
    const live = (await store.attachments.list(sb.id)).filter((a) => a.state === "pending" || a.state === "mounted");
    if (live.length >= this.deps.maxVolumesPerSandbox) {
      throw new CairnError("TOO_MANY_VOLUMES", `A sandbox may mount at most ${this.deps.maxVolumesPerSandbox} volumes`);
    }
    if (live.some((a) => a.mountPath === mountPath)) throw new CairnError("INVALID_MOUNT", `Something is already mounted on ${mountPath}`);
    const volume = await volumes.find(projectId, m.volume);
    const a = await this.mounts.claim(sb, volume, m, mountPath);
    try {
      const source = await this.mounts.source(a);
      await driver.attach(sb.id, [{ attachmentId: a.id, mount: source }]);
      await store.attachments.update(a.id, { state: "mounted" });
    } catch (err) {
      this.mounts.release(a.id);
      await store.attachments.update(a.id, { state: "failed", error: (err as Error).message });
      throw err;
    }
    return this.attachmentToWire((await store.attachments.list(sb.id)).find((x) => x.id === a.id)!);
  }

  /** Unmount by mount path. A busy mount is a 409 unless `force` (the processes using it are killed). */
  async detach(projectId: string, id: string, rawPath: string, force: boolean): Promise<Attachment> {
    const { store } = this.deps;
    const sb = await this.find(projectId, id);
    const mountPath = normalizeVolumePath(rawPath);
    const a = (await store.attachments.list(sb.id)).find((x) => x.mountPath === mountPath && ["pending", "mounted", "suspended"].includes(x.state));
    if (!a) throw new CairnError("ATTACHMENT_NOT_FOUND", `Nothing is attached at ${mountPath} in sandbox ${id}`);
    if (a.state === "mounted") await this.mounts.unmount(a, force);
    this.mounts.release(a.id);
    await store.attachments.update(a.id, { state: "released" });
    return this.attachmentToWire({ ...a, state: "released", error: a.error, exclusive: false });
  }

  /** Force-detach every read-write attachment of a volume (a restore with `detach`): Mounts.detachWriters. */
  async detachWriters(volumeId: string): Promise<number> {
    return this.mounts.detachWriters(volumeId);
  }

  /** Filesystem-mode hibernate: stop every process, keep the filesystem and the attachment intent, release the volumes. */
  async hibernate(projectId: string, id: string): Promise<Sandbox> {
    const { store, driver } = this.deps;
    const sb = await this.requireRunning(projectId, id);
    await driver.stop(sb.id);
    await this.disconnect(sb);
    this.processes.drop(sb.id, { kill: false });
    for (const a of await store.attachments.list(sb.id)) {
      if (a.state !== "mounted") continue;
      this.mounts.release(a.id);
      await store.attachments.update(a.id, { state: "suspended", error: null });
    }
    await store.sandboxes.update(sb.id, { state: "hibernated" });
    return this.get(projectId, sb.id);
  }

  async resume(projectId: string, id: string): Promise<Sandbox> {
    const { store, driver } = this.deps;
    const sb = await this.find(projectId, id);
    if (sb.state !== "hibernated") throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is ${sb.state}; only a hibernated sandbox resumes`);
    const suspended = (await store.attachments.list(sb.id)).filter((a) => a.state === "suspended");
    try {
      const sources = [];
      for (const a of suspended) sources.push(await this.mounts.source(a));
      await driver.start(sb.id, await this.driverSpec(sb), sources);
      await this.connect(sb).catch(async (err: unknown) => {
        await driver.stop(sb.id);
        await this.disconnect(sb);
        throw err;
      });
    } catch (err) {
      for (const a of suspended) this.mounts.release(a.id);
      throw err;
    }
    for (const a of suspended) await store.attachments.update(a.id, { state: "mounted" });
    await store.sandboxes.update(sb.id, { state: "running" });
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
    delete sb.spec.ports; // routes name a sandbox: the fork exposes its own
    // The same policy, and an address of its own once it runs.
    if (sb.spec.network) sb.spec.network = { egress: sb.spec.network.egress, allow: [...sb.spec.network.allow], deny: [...sb.spec.network.deny] };
    const owned: NonNullable<SandboxRecord["spec"]["owned"]> = { volumes: [], checkpoints: [] };
    const diskBytes = src.spec.diskBytes ?? this.deps.defaultDiskBytes;
    await this.deps.capacity.admit(diskBytes, `a ${formatSize(diskBytes)} disk for the fork`, () => store.sandboxes.insert(sb));
    // A fork is a copy of the same sandbox, files and owners alike: it shares its uid range.
    this.uids.hold(sb.spec.uidBase);
    const claimed: AttachmentRecord[] = [];
    try {
      await driver.copy(src.id, sb.id);
      for (const a of await store.attachments.list(src.id)) {
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
        claimed.push(await this.mounts.claim(sb, target, m, a.mountPath));
      }
      if (owned.volumes.length > 0 || owned.checkpoints.length > 0) {
        sb.spec.owned = owned;
        await store.sandboxes.updateSpec(sb.id, sb.spec);
      }
      const sources = [];
      for (const a of claimed) sources.push(await this.mounts.source(a));
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
    const networked: SandboxRecord[] = [];
    for (const sb of await store.sandboxes.list(undefined, { limit: 100_000, states: ["starting", "running", "hibernated"] })) {
      known.add(sb.id);
      const attachments = await store.attachments.list(sb.id);
      if (sb.state === "hibernated") {
        this.uids.hold(sb.spec.uidBase);
        continue;
      }
      if (sb.state === "running" && running.has(sb.id) && (await driver.isRunning(sb.id))) {
        this.uids.hold(sb.spec.uidBase);
        if (sb.spec.network) networked.push(sb);
        for (const a of attachments) if (a.state === "mounted") await this.mounts.source(a).catch((err) => log.warn({ err }, "re-lease failed"));
        this.armTimeout(sb);
        continue;
      }
      await driver.destroy(sb.id).catch(() => undefined);
      for (const a of attachments) {
        if (a.state === "released" || a.state === "failed") continue;
        await store.attachments.update(a.id, { state: "released" });
      }
      await store.sandboxes.update(sb.id, { state: "stopped", error: "cairnd restarted and the sandbox was gone" });
    }
    for (const id of new Set([...running, ...(await driver.prepared())])) {
      if (!known.has(id)) await driver.destroy(id).catch(() => undefined);
    }
    // Interfaces of sandboxes that still run stay (or come back); everything else this server made on the network goes.
    const addresses = await this.deps.network
      .reconcile(networked.map((sb) => ({ id: sb.id, spec: sb.spec.network!, pid: () => driver.pid(sb.id) })))
      .catch((err: unknown) => {
        log.warn({ err }, "could not reconcile the sandboxes' network");
        return new Map<string, string>();
      });
    for (const sb of networked) {
      const address = addresses.get(sb.id);
      if (address !== sb.spec.network!.address) {
        sb.spec.network = { ...sb.spec.network!, ...(address ? { address } : {}) };
        if (!address) delete sb.spec.network.address;
        await store.sandboxes.updateSpec(sb.id, sb.spec);
      }
    }
    this.warm.fill();
    this.schedulePrune();
  }

  /** Killed and failed sandboxes are listed for a while (to read why), then forgotten. */
  private schedulePrune(): void {
    const retention = this.deps.stoppedRetentionMs;
    if (retention === undefined || this.closed) return;
    const prune = async () => {
      const ids = await this.deps.store.sandboxes.prune(new Date(Date.now() - retention).toISOString());
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
    clearInterval(this.pruneTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.processes.killAll();
    await this.warm.close();
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
