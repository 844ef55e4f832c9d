/**
 * Sandboxes as Linux containers run by crun (docs/ARCHITECTURE.md "Sandboxes"). All of it happens in
 * cairnd's private mount namespace, where the unified cgroup hierarchy is hidden (crun refuses to
 * run on the v1/v2 hybrid otherwise).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { access, chmod, chown, lchown, lstat, mkdir, open, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CairnError } from "@cairn/protocol";
import { run, type ExecError } from "../../host/exec.js";
import { findMount, readMounts } from "../../host/mountinfo.js";
import { buildConfig, CPU_PERIOD_US, UID_RANGE, type OciMount } from "./oci-config.js";
import { killUsersOf } from "./volume-users.js";
import { SandboxDisks } from "./sandbox-disk.js";
import type { ExecOptions, MountedVolume, SandboxDriver, SandboxSpecInput, VolumeMount } from "../port.js";
import { etcTemplate, writeSandboxEtc } from "./etc-template.js";
import { IN_SANDBOX_PAUSE, IN_SANDBOX_TIMEOUT, isImageSandbox, mountImageRoot, prepareImageDirs, unmountImageRoot } from "./image-rootfs.js";
import { setTimeout as sleep } from "node:timers/promises";

/** Built by scripts/setup.sh from packages/server/native/cairn-mount.c. */
export { MOUNT_HELPER } from "../../host/native.js";
import { MOUNT_HELPER } from "../../host/native.js";
/** Built by scripts/setup.sh from packages/server/native/cairn-pause.c: an image sandbox's idle process. */
const PAUSE = fileURLToPath(new URL("../../../native/cairn-pause", import.meta.url));
/** Built by scripts/setup.sh from packages/server/native/cairn-timeout.c: an image sandbox's exec timeout. */
const TIMEOUT = fileURLToPath(new URL("../../../native/cairn-timeout", import.meta.url));
/** The sandbox's init (Debian's static tini), bound read-only from the host. */
export const INIT = "/usr/bin/tini-static";
const IN_SANDBOX_INIT = "/run/cairn/init";
const hostnameOf = (id: string) => id.replace(/_/g, "-").slice(0, 63);

/** The helper's exit statuses that are answers, not failures (cairn-mount.c lists them). */
const HELPER_EXIT = { notMounted: 3, busy: 4, moved: 5, unsafePath: 6 } as const;

/** The cgroup parent of one data dir's sandboxes (two cairnd never share one). */
export function cgroupPrefix(dataDir: string): string {
  return `cairn-${createHash("sha256").update(dataDir).digest("hex").slice(0, 8)}`;
}

const exists = (path: string) => access(path).then(() => true, () => false);

export class CrunDriver implements SandboxDriver {
  private readonly stateRoot: string;
  private readonly disks: SandboxDisks;
  private etc: Promise<string> | undefined;

  constructor(
    private readonly root: string,
    stateRoot: string,
    private readonly cgroupPrefix: string,
    /** Where generated /etc templates live (in the pool, beside the sandboxes' disks). */
    private readonly templatesRoot: string,
    /** The resolver sandboxes' /etc/resolv.conf names (the network's DNS forwarder). */
    private readonly nameserver = "127.0.0.1",
  ) {
    this.stateRoot = stateRoot;
    this.disks = new SandboxDisks(root);
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  private crun(args: string[], timeoutMs = 30_000) {
    return run("crun", ["--root", this.stateRoot, ...args], { timeoutMs });
  }

  /** The generated /etc every sandbox has below its own layer (built once per host state). */
  private etcTemplate(): Promise<string> {
    this.etc ??= etcTemplate(this.templatesRoot, "/etc", this.nameserver);
    return this.etc;
  }

  async prepare(id: string, options: { diskBytes: number; uidBase?: number; image?: boolean }): Promise<void> {
    await this.disks.create(id, options.diskBytes);
    const d = this.dir(id);
    if (options.image) {
      await prepareImageDirs(d, hostnameOf(id), IN_SANDBOX_INIT);
      if (options.uidBase !== undefined) for (const sub of ["rootfs", "upper", "work"]) await shiftOwners(join(d, sub), options.uidBase);
      return;
    }
    const rootfs = join(d, "rootfs");
    const dirs = [
      ...["usr", "etc"].flatMap((sub) => [join(d, "upper", sub), join(d, "work", sub)]),
      ...["usr", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "var/tmp", "run/cairn", "opt", "srv", "mnt"].map((sub) => join(rootfs, sub)),
    ];
    await Promise.all(dirs.map((dir) => mkdir(dir, { recursive: true })));
    await Promise.all([
      writeFile(join(rootfs, IN_SANDBOX_INIT), ""),
      chown(join(rootfs, "home/user"), 1000, 1000),
      chmod(join(rootfs, "var/tmp"), 0o1777),
      writeSandboxEtc(join(d, "upper", "etc"), hostnameOf(id)),
      ...["bin", "lib", "lib64", "sbin"].map(async (l) => {
        if (await access(join("/usr", l)).then(() => true, () => false)) await symlink(`usr/${l}`, join(rootfs, l)).catch(() => undefined);
      }),
    ]);
    // The host's /usr/local/etc is the host's configuration (a global npmrc with a registry token,
    // say), not software: an opaque directory in the upper layer hides it from the sandbox's /usr
    // and is the sandbox's own, empty, to fill.
    if (await access("/usr/local/etc").then(() => true, () => false)) {
      await mkdir(join(d, "upper", "usr", "local", "etc"), { recursive: true });
      await run(MOUNT_HELPER, ["opaque", join(d, "upper", "usr", "local", "etc")]);
    }
    // Everything the sandbox may write belongs to its own root (ids shifted into its range).
    if (options.uidBase !== undefined) for (const sub of ["rootfs", "upper", "work"]) await shiftOwners(join(d, sub), options.uidBase);
  }

  /**
   * The host's /usr and the generated /etc as the sandbox's user namespace sees them: idmapped,
   * read-only views (host root's files are the sandbox root's, so installs copy up and work).
   * Mounted under the sandbox's directory in cairnd's namespace, once per boot.
   */
  private async idmappedLowers(id: string, uidBase: number): Promise<Record<string, string>> {
    const sources: Record<string, string> = { usr: "/usr", etc: await this.etcTemplate() };
    const lowers: Record<string, string> = {};
    for (const [sub, source] of Object.entries(sources)) {
      const target = join(this.dir(id), "lower", sub);
      if (!(await findMount(target))) {
        await mkdir(target, { recursive: true });
        await run(MOUNT_HELPER, ["idmap", source, target, String(uidBase), String(UID_RANGE)]);
      }
      lowers[sub] = target;
    }
    return lowers;
  }

  private async unmountLowers(id: string): Promise<void> {
    for (const sub of ["usr", "etc"]) {
      const target = join(this.dir(id), "lower", sub);
      if (await findMount(target)) await run("umount", [target]);
    }
  }

  async start(id: string, spec: SandboxSpecInput, mounts: VolumeMount[], options: { background?: boolean } = {}): Promise<void> {
    const d = this.dir(id);
    await this.disks.mount(id); // after a reboot, a hibernated sandbox's disk is not mounted
    // In a user namespace, volumes are hot-plugged once it runs, idmapped into it (cairn-mount.c).
    const userns = spec.uidBase !== undefined;
    const volumeMounts: OciMount[] = (userns ? [] : mounts).map((m) => ({
      destination: m.destination,
      type: "bind",
      source: m.source,
      // crun binds, then remounts with exactly these flags: the host's noexec/nosymfollow go.
      options: ["rbind", "nosuid", "nodev", ...(m.readonly ? ["ro"] : [])],
    }));
    let overlays: { destination: string; lower: string; upper: string; work: string }[] = [];
    if (spec.image) {
      // An image: its layers below the sandbox's own, as the root (image-rootfs.ts).
      await mountImageRoot(d, spec.image.layers, spec.uidBase);
    } else {
      // The host's /usr below (read-only), a generated /etc, never the host's (etc-template.ts).
      const lowers: Record<string, string> = userns ? await this.idmappedLowers(id, spec.uidBase!) : { usr: "/usr", etc: await this.etcTemplate() };
      await writeFile(join(d, "rootfs", IN_SANDBOX_INIT), "", { flag: "a" }); // the bind's target (older sandboxes lack it)
      overlays = ["usr", "etc"].map((sub) => ({ destination: `/${sub}`, lower: lowers[sub]!, upper: join(d, "upper", sub), work: join(d, "work", sub) }));
    }
    const config = buildConfig({
      hostname: hostnameOf(id),
      rootfs: join(d, "rootfs"),
      overlays,
      init: IN_SANDBOX_INIT,
      ...(spec.image ? { idle: [IN_SANDBOX_PAUSE] } : {}),
      mounts: [
        // A static init from the host, read-only: it reaps orphans and forwards signals.
        { destination: IN_SANDBOX_INIT, type: "bind", source: INIT, options: ["bind", "ro", "nosuid", "nodev"] },
        ...(spec.image
          ? [
              { destination: IN_SANDBOX_PAUSE, type: "bind", source: PAUSE, options: ["bind", "ro", "nosuid", "nodev"] },
              { destination: IN_SANDBOX_TIMEOUT, type: "bind", source: TIMEOUT, options: ["bind", "ro", "nosuid", "nodev"] },
            ]
          : []),
        ...volumeMounts,
      ],
      env: spec.env,
      cwd: spec.cwd,
      memoryBytes: spec.memoryBytes,
      ...(spec.cpus !== undefined ? { cpus: spec.cpus } : {}),
      ...(userns ? { uidBase: spec.uidBase! } : {}),
      pids: spec.pids,
      cgroupsPath: `/${this.cgroupPrefix}/${id}`,
    });
    await writeFile(join(d, "config.json"), JSON.stringify(config, null, 1));
    // A container left from an earlier start (resume after a crash) is in the way; a new one has no state.
    if (await exists(join(this.stateRoot, id))) {
      await this.crun(["delete", "--force", id]).catch(() => undefined);
    }
    // The container inherits crun's stdio: give it a log file, not a pipe (a pipe would stay open
    // as long as the sandbox runs, and whoever waits for it would wait that long).
    const logPath = join(d, "init.log");
    const log = await open(logPath, "w");
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const argv = ["crun", "--root", this.stateRoot, "run", "--detach", "--bundle", d, id];
        if (options.background) argv.unshift("nice", "-n", "19");
        const child = spawn(argv[0]!, argv.slice(1), {
          stdio: ["ignore", log.fd, log.fd],
        });
        child.on("error", reject);
        child.on("exit", (c) => resolve(c));
      });
      if (code !== 0) {
        const text = (await readFile(logPath, "utf8").catch(() => "")).trim();
        throw new CairnError("INTERNAL", `the sandbox did not start: ${text || `crun exited with ${code}`}`);
      }
    } finally {
      await log.close();
    }
    // crun remounts the root with flags of its own: make it nosuid,nodev before any command runs.
    const pid = await this.pid(id);
    try {
      if (!pid) throw new Error("the sandbox's init is not running");
      await run(MOUNT_HELPER, ["seal", String(pid)]);
      if (userns && mounts.length > 0) await this.attach(id, mounts.map((mount, i) => ({ attachmentId: String(i), mount })));
    } catch (err) {
      await this.stop(id);
      if (err instanceof CairnError) throw err;
      throw new CairnError("INTERNAL", `the sandbox did not start: ${((err as ExecError).stderr ?? (err as Error).message).trim()}`);
    }
    // crun brings `lo` up in the new network namespace; a sandbox with a network gets its
    // interface from the sandbox service once this returns (network/).
  }

  /**
   * The sandbox's init process on the host, while it runs: crun's state file names it with its
   * start time, which must match /proc (as `crun state` checks it, without spawning crun).
   */
  async pid(id: string): Promise<number | undefined> {
    try {
      const st = JSON.parse(await readFile(join(this.stateRoot, id, "status"), "utf8")) as { pid?: unknown; "process-start-time"?: unknown };
      if (typeof st.pid !== "number" || !Number.isInteger(st.pid) || st.pid <= 1) return undefined;
      const stat = await readFile(`/proc/${st.pid}/stat`, "utf8");
      // Fields after the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" || fields[0] === "X") return undefined;
      return fields[19] === String(st["process-start-time"]) ? st.pid : undefined;
    } catch {
      return undefined;
    }
  }

  async prepared(): Promise<string[]> {
    return this.disks.list();
  }

  async isRunning(id: string): Promise<boolean> {
    return (await this.pid(id)) !== undefined;
  }

  async list(): Promise<string[]> {
    try {
      const { stdout } = await this.crun(["list", "--format", "json"]);
      const items = JSON.parse(stdout || "[]") as { id: string }[] | null;
      return (items ?? []).map((c) => c.id);
    } catch {
      return [];
    }
  }

  async stop(id: string): Promise<void> {
    // `delete --force` kills every process of the container (SIGKILL) and removes it in one call.
    await this.crun(["delete", "--force", id]).catch(() => undefined);
    if (!(await this.pid(id)) && !(await exists(join(this.stateRoot, id)))) return;
    // Still there (a process that took its time to die): kill, wait, delete again.
    await this.crun(["kill", id, "KILL"]).catch(() => undefined);
    for (let i = 0; i < 50; i++) {
      if (!(await this.pid(id))) break;
      await sleep(20);
    }
    await this.crun(["delete", "--force", id]).catch(() => undefined);
  }

  async destroy(id: string): Promise<void> {
    await this.stop(id);
    const d = this.dir(id);
    await unmountImageRoot(d);
    await this.unmountLowers(id);
    await this.disks.unmount(id);
    // Never delete through a mount: what is mounted there would be a volume's content (cairnd
    // itself mounts nothing under a sandbox's directory but its disk; this guards against what it did before).
    if ((await readMounts()).some((m) => m.mountPoint === d || m.mountPoint.startsWith(d + "/"))) {
      throw new CairnError("INTERNAL", `sandbox ${id}: something is still mounted under ${d}`);
    }
    await this.disks.remove(id);
    await rm(d, { recursive: true, force: true });
  }

  async copy(fromId: string, toId: string): Promise<void> {
    const from = this.dir(fromId);
    const to = this.dir(toId);
    if (await this.disks.has(fromId)) {
      await this.disks.clone(fromId, toId);
      // The bundle's per-start files are the source's: a new start writes its own.
      await rm(join(to, "config.json"), { force: true });
      for (const sub of (await isImageSandbox(to)) ? ["root"] : ["usr", "etc"]) {
        await rm(join(to, "work", sub), { recursive: true, force: true });
        await mkdir(join(to, "work", sub), { recursive: true });
      }
      return;
    }
    await mkdir(to, { recursive: true });
    for (const sub of ["rootfs", "upper"]) {
      // Reflinks where the pool allows (XFS): a fork costs no space until it diverges.
      await run("cp", ["-a", "--reflink=auto", join(from, sub), join(to, sub)]);
    }
    for (const sub of ["usr", "etc"]) await mkdir(join(to, "work", sub), { recursive: true });

  }

  exec(id: string, options: ExecOptions): ChildProcess {
    // --no-new-privs: no exec'd process (nor anything it starts) gains privileges through setuid files.
    const args = ["--root", this.stateRoot, "exec", "--no-new-privs", "--cwd", options.cwd];
    for (const [k, v] of Object.entries(options.env)) args.push("--env", `${k}=${v}`);
    if (options.user) args.push("--user", `${options.user.uid}:${options.user.gid}`);
    args.push(id);
    if (options.timeoutMs !== undefined) {
      // The timeout runs inside the sandbox, with the sandbox's privileges: GNU timeout kills the
      // command's whole process group (busybox's kills only the shell, and its children would keep
      // the output open). cairnd has its own backstop in case the sandbox broke its timeout. An
      // image may have no timeout (or busybox's): it gets cairnd's static one, which does the same.
      const seconds = `${Math.max(0.1, options.timeoutMs / 1000)}`;
      args.push(...(options.image ? [IN_SANDBOX_TIMEOUT, seconds] : ["/usr/bin/timeout", "-s", "KILL", seconds]));
    }
    if (options.argv) args.push(...options.argv);
    else args.push("/bin/sh", "-c", options.command);
    return spawn("crun", args, { stdio: ["pipe", "pipe", "pipe"] });
  }

  async attach(id: string, mounts: { attachmentId: string; mount: VolumeMount }[]): Promise<void> {
    if (mounts.length === 0) return;
    const pid = await this.pid(id);
    if (!pid) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is not running`);
    // One process for all mounts: detached clones of the sources with the sandbox's flags,
    // attached inside the sandbox's mount namespace (native/cairn-mount.c says how and why).
    const args = ["attach", String(pid), ...mounts.flatMap(({ mount }) => [mount.readonly ? "ro" : "rw", mount.source, mount.destination])];
    try {
      await run(MOUNT_HELPER, args);
    } catch (err) {
      const text = ((err as ExecError).stderr ?? (err as Error).message).trim();
      if ((err as ExecError).exitCode === HELPER_EXIT.unsafePath) {
        throw new CairnError("INVALID_MOUNT", `${text.replace(/^cairn-mount: /, "")}: a symlink or a file inside the sandbox is in the way; pick another mount path`);
      }
      throw new CairnError("INTERNAL", `could not mount into sandbox ${id}: ${text}`);
    }
  }

  async update(id: string, limits: { memoryBytes: number; pids: number; cpus?: number }): Promise<void> {
    const cpu = limits.cpus !== undefined ? [`--cpu-period=${CPU_PERIOD_US}`, `--cpu-quota=${Math.round(limits.cpus * CPU_PERIOD_US)}`] : [];
    await this.crun(["update", `--memory=${limits.memoryBytes}`, `--pids-limit=${limits.pids}`, ...cpu, id]);
  }

  async detach(id: string, mount: MountedVolume, options: { force: boolean }): Promise<void> {
    const { destination, device } = mount;
    for (let attempt = 1; ; attempt++) {
      const pid = await this.pid(id);
      if (!pid) return; // nothing runs: nothing is mounted
      const code = await run(MOUNT_HELPER, ["detach", String(pid), device, destination]).then(
        () => 0,
        (err: ExecError) => {
          if (typeof err.exitCode !== "number" || err.exitCode === 1 || err.exitCode === 2) {
            throw new CairnError("INTERNAL", `could not unmount ${destination} in sandbox ${id}: ${(err.stderr ?? err.message).trim()}`);
          }
          return err.exitCode;
        },
      );
      if (code === 0 || code === HELPER_EXIT.notMounted) return;
      if (code === HELPER_EXIT.moved) {
        throw new CairnError(
          "MOUNT_CHANGED",
          `The mount at ${destination} was moved or replaced inside the sandbox; the volume stays attached until the sandbox is killed or hibernated`,
        );
      }
      if (!options.force) {
        throw new CairnError("VOLUME_BUSY", `${destination} is busy in the sandbox (a process has files open there); stop it or detach with force`);
      }
      if (attempt > 5) throw new CairnError("VOLUME_BUSY", `${destination} is still busy in the sandbox after its users were killed ${attempt - 1} times`);
      await killUsersOf(pid, device);
    }
  }

  /** Read the init pid's status, for tests and diagnostics. */
  async status(id: string): Promise<string | undefined> {
    const pid = await this.pid(id);
    return pid ? readFile(`/proc/${pid}/status`, "utf8") : undefined;
  }

  /** Hide the unified cgroup hierarchy in cairnd's namespace (docs/ARCHITECTURE.md "Sandboxes": crun on a v1/v2 hybrid). */
  static async prepareHost(): Promise<void> {
    if ((await findMount("/sys/fs/cgroup/unified")) !== undefined) {
      await run("umount", ["/sys/fs/cgroup/unified"]).catch(() => undefined);
    }
  }

  /**
   * Where sandboxes' bundles live, as crun sees them. crun sets a sandbox up partly as the
   * sandbox's own root (a host uid of its range), which must be able to walk to the bundle; the
   * data dir is 0700 and stays so. So the pool's sandbox directory is bound, in cairnd's namespace
   * only, at `/run/<cgroup prefix>/sandboxes`, a path every component of which can be walked
   * (0711: not listed).
   */
  static async bundleRoot(poolSandboxes: string, prefix: string): Promise<string> {
    const top = `/run/${prefix}`;
    const root = join(top, "sandboxes");
    await mkdir(poolSandboxes, { recursive: true, mode: 0o711 });
    await chmod(poolSandboxes, 0o711);
    await mkdir(root, { recursive: true, mode: 0o711 });
    await chmod(top, 0o711);
    if (!(await findMount(root))) await run("mount", ["--bind", poolSandboxes, root]);
    return root;
  }
}

/** Shift the owners of a tree the sandbox will own into its range (0 → uidBase, 1000 → uidBase+1000). */
async function shiftOwners(path: string, uidBase: number): Promise<void> {
  const st = await lstat(path);
  if (st.uid < UID_RANGE && st.gid < UID_RANGE) await lchown(path, uidBase + st.uid, uidBase + st.gid);
  if (st.isDirectory()) for (const name of await readdir(path)) await shiftOwners(join(path, name), uidBase);
}
