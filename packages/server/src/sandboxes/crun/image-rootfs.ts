/**
 * The root of a sandbox that runs an image (docs/ARCHITECTURE.md "A sandbox's layers"):
 *
 *   lower/<n>/     each layer of the image (the store's, shared by every sandbox), idmapped
 *                  read-only into the sandbox's id range, as /usr is for the base template
 *   upper/root/    the sandbox's own writable layer, on its disk (so on its quota)
 *   rootfs/        the overlay of both, mounted in cairnd's namespace: crun's root
 *
 * The image brings its own /etc: cairnd adds only the sandbox's hostname and hosts, in its layer.
 * The overlay is mounted from the host (crun cannot make an overlay the root itself); its upper
 * files are created by the sandbox's own ids, so on disk they are the sandbox's.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../host/exec.js";
import { findMount } from "../../host/mountinfo.js";
import { MOUNT_HELPER } from "../../host/native.js";
import { UID_RANGE } from "../port.js";
import { writeSandboxEtc } from "./etc-template.js";

export const IN_SANDBOX_PAUSE = "/run/cairn/pause";
/** Where an image sandbox finds cairnd's own `timeout` (native/cairn-timeout.c). */
export const IN_SANDBOX_TIMEOUT = "/run/cairn/timeout";

/** The directories of an image sandbox on its disk (first start only). */
export async function prepareImageDirs(dir: string, hostname: string, init: string): Promise<void> {
  for (const sub of ["upper/root/run/cairn", "work/root", "rootfs", "lower"]) await mkdir(join(dir, sub), { recursive: true });
  await writeSandboxEtc(join(dir, "upper", "root", "etc"), hostname);
  // Targets of the binds of the host's init and idle process (the image may have no /run).
  for (const f of [init, IN_SANDBOX_PAUSE, IN_SANDBOX_TIMEOUT]) await writeFile(join(dir, "upper", "root", f), "");
}

export const isImageSandbox = async (dir: string) => (await readdir(join(dir, "upper")).catch(() => [] as string[])).includes("root");

/** Mount the layers and the overlay, unless they are (a resume in the same boot). */
export async function mountImageRoot(dir: string, layers: string[], uidBase: number | undefined): Promise<void> {
  const rootfs = join(dir, "rootfs");
  if (await findMount(rootfs)) return;
  const pairs: string[] = [];
  for (const [i, layer] of layers.entries()) {
    const target = join(dir, "lower", String(i));
    if (await findMount(target)) continue;
    await mkdir(target, { recursive: true });
    pairs.push(layer, target);
  }
  if (pairs.length > 0) {
    if (uidBase !== undefined) await run(MOUNT_HELPER, ["idmap", pairs[0]!, pairs[1]!, String(uidBase), String(UID_RANGE), ...pairs.slice(2)]);
    else for (let i = 0; i < pairs.length; i += 2) await run("mount", ["--bind", "-o", "ro", pairs[i]!, pairs[i + 1]!]);
  }
  // Named relative to lower/ (the working directory of mount): the option string holds one page.
  const lowers = layers.map((_, i) => String(i)).reverse().join(":");
  await run("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${lowers},upperdir=${join(dir, "upper", "root")},workdir=${join(dir, "work", "root")},nodev,nosuid`, rootfs], {
    cwd: join(dir, "lower"),
  });
}

/** Unmount the overlay and the layers (before the disk goes). */
export async function unmountImageRoot(dir: string): Promise<void> {
  const rootfs = join(dir, "rootfs");
  if (await findMount(rootfs)) await run("umount", [rootfs]);
  for (const name of await readdir(join(dir, "lower")).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const target = join(dir, "lower", name);
    if (await findMount(target)) await run("umount", [target]);
  }
}
