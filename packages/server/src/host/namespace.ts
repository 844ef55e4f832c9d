/**
 * cairnd does its mount work in one private mount namespace pinned to a file under its data dir
 * (docs/ARCHITECTURE.md "Mount namespace"): mounts stay out of the host's namespace, a restarted cairnd
 * rejoins the same namespace, and two cairnd on one machine never share one.
 */
import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from "node:fs/promises";
import { cgroupPrefix } from "../sandboxes/crun/driver.js";
import { HostNetwork } from "../network/linux/host-network.js";
import { join } from "node:path";
import { run } from "./exec.js";
import { findMount, readMounts } from "./mountinfo.js";
import { DataDirLock, DataDirLocked } from "./data-dir-lock.js";
import { setTimeout as sleep } from "node:timers/promises";

export function pinPath(dataDir: string): string {
  return join(dataDir, "run", "mnt.ns");
}

async function isPinned(pin: string): Promise<boolean> {
  const m = await findMount(pin);
  return m?.fsType === "nsfs";
}

/** Create the pinned namespace if it does not exist yet (first start, or after a reboot). */
export async function ensurePinnedNamespace(dataDir: string): Promise<string> {
  const runDir = join(dataDir, "run");
  const pin = pinPath(dataDir);
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  if (await isPinned(pin)) return pin;
  // A namespace file can only be bound onto a mount that does not propagate: give run/ its own
  // private bind mount.
  if (!(await findMount(runDir))) {
    await run("mount", ["--bind", runDir, runDir]);
    await run("mount", ["--make-private", runDir]);
  }
  await writeFile(pin, "", { flag: "a" });
  // Not `unshare --mount=FILE`: start a process in a new namespace, wait until it has really
  // entered it, and pin that. The kernel refuses (EINVAL) to pin a namespace whose id is not
  // newer than the caller's, and on this kernel ids are not always handed out in order (seen
  // about half the time when the caller itself runs in a young namespace, as tests do): retry
  // with a fresh namespace.
  // Seen on a busy machine: dozens of fresh namespaces in a row with older ids. Keep trying, with
  // a pause, for a bounded while.
  const deadline = Date.now() + 20_000;
  for (let attempt = 1; ; attempt++) {
    try {
      await pinNewNamespace(pin);
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(Math.min(200, 5 * attempt));
    }
  }
  return pin;
}

/** The namespace's identity ("dev:ino"), read through the pin from outside the namespace. */
export async function namespaceId(pin: string): Promise<string> {
  const s = await stat(pin);
  return `${s.dev}:${s.ino}`;
}

async function pinNewNamespace(pin: string): Promise<void> {
  const holder = spawn("unshare", ["--mount", "--propagation", "private", "sleep", "60"], { stdio: "ignore" });
  try {
    const pid = holder.pid;
    if (pid === undefined) throw new Error("could not start unshare");
    for (let i = 0; ; i++) {
      const comm = await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "");
      if (comm.trim() === "sleep") break; // unshare has unshared, set propagation and exec'd
      if (i > 1000) throw new Error("the namespace holder did not start");
      await sleep(5);
    }
    await run("mount", ["--bind", `/proc/${pid}/ns/mnt`, pin]);
  } finally {
    holder.kill("SIGKILL");
  }
}

/** True when this process runs in the namespace with that identity (the pin is not visible from inside). */
export async function inNamespace(id: string): Promise<boolean> {
  try {
    const self = await stat("/proc/self/ns/mnt");
    return `${self.dev}:${self.ino}` === id;
  } catch {
    return false;
  }
}

/**
 * Release the pinned namespace of a stopped cairnd: its mounts go, and with them the loop
 * devices (they are set up with autoclear). Used by tests and `cairn server --release`.
 */
export async function releasePinnedNamespace(dataDir: string): Promise<{ sandboxes: string[]; namespace: boolean }> {
  // Never under a running cairnd: its sandboxes and mounts would vanish beneath it.
  const holder = await DataDirLock.held(dataDir);
  if (holder) throw new DataDirLocked(dataDir, holder);
  const runDir = join(dataDir, "run");
  const pin = pinPath(dataDir);
  // Sandboxes outlive cairnd by design; releasing the data dir ends them too. crun runs in
  // cairnd's namespace, where the cgroup hierarchy looks the way it did when they started.
  const crunRoot = join(runDir, "crun");
  const inNs = (args: string[]) => run("nsenter", [`--mount=${pin}`, "--", "crun", "--root", crunRoot, ...args]);
  const ended: string[] = [];
  const pinned = (await findMount(pin)) !== undefined;
  if (pinned) {
    const { stdout } = await inNs(["list", "-q"]).catch(() => ({ stdout: "" }));
    for (const id of stdout.split("\n").map((l) => l.trim()).filter(Boolean)) {
      ended.push(id);
      await inNs(["kill", id, "KILL"]).catch(() => undefined);
      await inNs(["delete", "--force", id]).catch(() => undefined);
    }
  }
  for (const controller of ["memory", "pids", "cpu", "cpuacct", "blkio", "devices", "freezer", "cpuset", "systemd"]) {
    const parent = join("/sys/fs/cgroup", controller, cgroupPrefix(dataDir));
    // A container whose start was cut short (cairnd killed mid-start) can leave its empty cgroup.
    const children = await readdir(parent, { withFileTypes: true }).catch(() => []);
    for (const child of children) if (child.isDirectory()) await rmdir(join(parent, child.name)).catch(() => undefined);
    await rmdir(parent).catch(() => undefined);
  }
  // Their interfaces went with their network namespaces; the table, the anchor and any interface
  // something else still held go now.
  await HostNetwork.release(dataDir);
  if (await findMount(pin)) await run("umount", [pin]);
  if (await findMount(runDir)) await run("umount", [runDir]);
  // The walkable path of the sandboxes' bundles (crun/driver.ts bundleRoot): empty outside the namespace.
  const bundles = `/run/${cgroupPrefix(dataDir)}`;
  await rmdir(join(bundles, "sandboxes")).catch(() => undefined);
  await rmdir(bundles).catch(() => undefined);
  return { sandboxes: ended, namespace: pinned };
}

/**
 * In cairnd's namespace: drop the copies of other cairnd's mounts that it took from the host when
 * it was made, their namespace pins (a copy would keep that other namespace alive, with its mounts
 * and loop devices, after its own cairnd released it) and the `run` binds that held them. Each
 * cairnd's namespace holds only its own mounts.
 */
export async function dropForeignPins(dataDir: string): Promise<string[]> {
  const own = join(dataDir, "run");
  const dropped: string[] = [];
  const umount = (mp: string) => run("umount", ["-l", mp]).then(() => void dropped.push(mp), () => undefined);
  for (const m of await readMounts()) {
    if (m.fsType === "nsfs" && m.mountPoint !== pinPath(dataDir)) await umount(m.mountPoint);
  }
  for (const m of await readMounts()) {
    if (m.mountPoint === own || !m.mountPoint.endsWith("/run")) continue;
    if (await stat(join(m.mountPoint, "mnt.ns")).then(() => true, () => false)) await umount(m.mountPoint);
  }
  return dropped;
}
