/** Helpers shared by the file API tests (files*.test.ts). */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CairnError } from "@cairn/sdk";
import type { CairndProcess } from "./harness.js";
import { run } from "../src/host/exec.js";

export async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<CairnError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CairnError, `expected CairnError ${code}, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

export const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where cairnd mounts a volume (inside its private mount namespace). */
export const mountPathOf = (c: CairndProcess, volumeId: string) => `${c.dataDir}/mounts/${volumeId}`;

/**
 * Run a shell script inside cairnd's mount namespace, as a sandbox or any other process with the
 * volume mounted would change it (not through the API). `$M` is the volume's mount point; the
 * volume must be mounted (a lease held, e.g. by a watch).
 */
export async function shellOnMount(c: CairndProcess, volumeId: string, script: string): Promise<string> {
  const { stdout } = await run("nsenter", [`--mount=${c.dataDir}/run/mnt.ns`, "--", "sh", "-ec", `M=${mountPathOf(c, volumeId)}; ${script}`]);
  return stdout;
}

/** Mount points in cairnd's namespace. */
export async function cairndMounts(c: CairndProcess): Promise<string> {
  const { stdout } = await run("nsenter", [`--mount=${c.dataDir}/run/mnt.ns`, "--", "findmnt", "-rn", "-o", "TARGET"]);
  return stdout;
}

export function auth(c: CairndProcess, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${c.adminKey}`, ...extra };
}
