/**
 * A sandbox driver without containers: each sandbox is a directory, its volumes are recorded
 * mounts that the fake shell (`shell.ts`) resolves, and exec runs that shell as a plain child
 * process. For tests of the sandbox service and the HTTP layer without root; it passes the same
 * `driver-suite.ts` as the crun driver, for what both can do.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cp, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CairnError } from "@cairn/protocol";
import type { ExecOptions, MountedVolume, SandboxDriver, SandboxSpecInput, VolumeMount } from "../port.js";

const SHELL = fileURLToPath(new URL("./shell.js", import.meta.url));

interface Running {
  mounts: VolumeMount[];
  limits: { memoryBytes: number; pids: number; cpus?: number };
  children: Set<ChildProcess>;
}

export class FakeSandboxDriver implements SandboxDriver {
  private readonly running = new Map<string, Running>();
  /** Every call, in order: what a test can assert the service asked for. */
  readonly calls: { op: string; id: string; detail?: unknown }[] = [];

  constructor(private readonly root: string) {}

  private dir(id: string): string {
    return join(this.root, id);
  }

  private async writeState(id: string, r: Running): Promise<void> {
    const state = { rootfs: join(this.dir(id), "rootfs"), mounts: r.mounts };
    await writeFile(join(this.dir(id), "state.json"), JSON.stringify(state));
  }

  async prepare(id: string, options: { diskBytes: number; uidBase?: number }): Promise<void> {
    this.calls.push({ op: "prepare", id, detail: options });
    await mkdir(join(this.dir(id), "rootfs", "root"), { recursive: true });
  }

  async start(id: string, spec: SandboxSpecInput, mounts: VolumeMount[]): Promise<void> {
    this.calls.push({ op: "start", id, detail: { spec, mounts } });
    if (this.running.has(id)) throw new Error(`sandbox ${id} is already running`);
    const r: Running = { mounts: [...mounts], limits: { memoryBytes: spec.memoryBytes, pids: spec.pids, ...(spec.cpus ? { cpus: spec.cpus } : {}) }, children: new Set() };
    await mkdir(join(this.dir(id), "rootfs", spec.cwd), { recursive: true });
    await this.writeState(id, r);
    this.running.set(id, r);
  }

  async stop(id: string): Promise<void> {
    this.calls.push({ op: "stop", id });
    const r = this.running.get(id);
    if (!r) return;
    for (const c of r.children) c.kill("SIGKILL");
    this.running.delete(id);
  }

  async destroy(id: string): Promise<void> {
    await this.stop(id);
    this.calls.push({ op: "destroy", id });
    await rm(this.dir(id), { recursive: true, force: true });
  }

  async copy(fromId: string, toId: string): Promise<void> {
    this.calls.push({ op: "copy", id: toId, detail: { from: fromId } });
    await cp(join(this.dir(fromId), "rootfs"), join(this.dir(toId), "rootfs"), { recursive: true, verbatimSymlinks: true });
  }

  async prepared(): Promise<string[]> {
    return readdir(this.root).catch(() => []);
  }

  async isRunning(id: string): Promise<boolean> {
    return this.running.has(id);
  }

  async pid(id: string): Promise<number | undefined> {
    return this.running.has(id) ? process.pid : undefined;
  }

  async list(): Promise<string[]> {
    return [...this.running.keys()];
  }

  /** The mounts a running sandbox has now (destination → host source). */
  mounts(id: string): VolumeMount[] {
    return [...(this.running.get(id)?.mounts ?? [])];
  }

  limits(id: string): Running["limits"] | undefined {
    return this.running.get(id)?.limits;
  }

  exec(id: string, options: ExecOptions): ChildProcess {
    this.calls.push({ op: "exec", id, detail: options.command });
    const r = this.running.get(id);
    // Like `crun exec` on a stopped container: the process starts and fails.
    const child = r
      ? spawn(process.execPath, [SHELL, join(this.dir(id), "state.json"), options.cwd, options.command], {
          env: { PATH: "/usr/bin:/bin", ...options.env },
          stdio: ["pipe", "pipe", "pipe"],
        })
      : spawn(process.execPath, ["-e", `process.stderr.write("container ${id} is not running\\n"); process.exit(1)`], { stdio: ["pipe", "pipe", "pipe"] });
    if (r) {
      r.children.add(child);
      child.on("exit", () => r.children.delete(child));
    }
    if (options.timeoutMs !== undefined) {
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
      child.on("exit", () => clearTimeout(timer));
    }
    return child;
  }

  async attach(id: string, mounts: { attachmentId: string; mount: VolumeMount }[]): Promise<void> {
    this.calls.push({ op: "attach", id, detail: mounts });
    if (mounts.length === 0) return;
    const r = this.running.get(id);
    if (!r) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is not running`);
    for (const { mount } of mounts) {
      if (r.mounts.some((m) => m.destination === mount.destination)) throw new CairnError("INVALID_MOUNT", `${mount.destination} is already a mount point`);
      r.mounts.push(mount);
    }
    await this.writeState(id, r);
  }

  async update(id: string, limits: { memoryBytes: number; pids: number; cpus?: number }): Promise<void> {
    this.calls.push({ op: "update", id, detail: limits });
    const r = this.running.get(id);
    if (!r) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is not running`);
    r.limits = { ...limits };
  }

  async detach(id: string, mount: MountedVolume, options: { force: boolean }): Promise<void> {
    this.calls.push({ op: "detach", id, detail: { mount, force: options.force } });
    const r = this.running.get(id);
    if (!r) return;
    r.mounts = r.mounts.filter((m) => m.destination !== mount.destination);
    await this.writeState(id, r);
  }
}
