import { readFile } from "node:fs/promises";

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mounts of this process's mount namespace, from /proc/self/mountinfo. */
export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({ mountPoint: unescape(l[4] ?? ""), options: l[5] ?? "", fsType: r[0] ?? "", source: unescape(r[1] ?? "") });
  }
  return out;
}

export async function findMount(mountPoint: string): Promise<MountEntry | undefined> {
  const mounts = await readMounts();
  // The last entry wins: a later mount on the same point hides the earlier one.
  return mounts.filter((m) => m.mountPoint === mountPoint).at(-1);
}
