/**
 * The processes of a sandbox that use a volume, found from the host: every process in the
 * sandbox's pid namespace whose working directory, root, open files or mapped files are on the
 * volume's device. Everything is read through /proc handles (stat of /proc/<pid>/fd/<n> follows
 * the kernel's link to the open file, not a path inside the sandbox), so nothing the sandbox
 * wrote is resolved.
 */
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { deviceString } from "../../host/devices.js";
import { setTimeout as sleep } from "node:timers/promises";

const devOf = (path: string) => stat(path).then((s) => deviceString(s.dev), () => undefined);

async function usesDevice(pid: string, device: string): Promise<boolean> {
  const base = `/proc/${pid}`;
  if ((await devOf(`${base}/cwd`)) === device || (await devOf(`${base}/root`)) === device) return true;
  for (const fd of await readdir(`${base}/fd`).catch(() => [] as string[])) {
    if ((await devOf(`${base}/fd/${fd}`)) === device) return true;
  }
  // maps: "address perms offset major:minor inode path", device numbers in hex.
  const maps = await readFile(`${base}/maps`, "utf8").catch(() => "");
  for (const line of maps.split("\n")) {
    const dev = line.split(" ")[3];
    if (!dev || dev === "00:00") continue;
    const [maj, min] = dev.split(":").map((h) => parseInt(h, 16));
    if (`${maj}:${min}` === device) return true;
  }
  return false;
}

/** Whether a process has let go of its files: gone, or a zombie (its files are closed at exit). */
async function exited(pid: string): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (st === undefined) return true;
  const state = st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}

/**
 * SIGKILL every process in the pid namespace of `initPid` that uses `device`, and wait (up to
 * `waitMs`) until they have exited; returns how many were killed.
 */
export async function killUsersOf(initPid: number, device: string, waitMs = 10_000): Promise<number> {
  const ns = await readlink(`/proc/${initPid}/ns/pid`);
  const killed: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    if ((await readlink(`/proc/${pid}/ns/pid`).catch(() => undefined)) !== ns) continue;
    if (!(await usesDevice(pid, device))) continue;
    try {
      process.kill(Number(pid), "SIGKILL");
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + waitMs;
  for (const pid of killed) {
    while (!(await exited(pid)) && Date.now() < deadline) await sleep(20);
  }
  return killed.length;
}
