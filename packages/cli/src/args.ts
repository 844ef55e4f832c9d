/**
 * Parsing of option values that commander leaves as strings. Errors carry the same codes the
 * server would use (INVALID_SIZE, INVALID_LABEL, …) so hints and exit codes are the same whether
 * the CLI or cairnd notices the mistake.
 */
import { CairnError, VOLUME_FIELDS, parseSize, type MountRequest } from "@cairn/protocol";
import { UsageError } from "./errors.js";
import type { VolumeField } from "./output.js";

/** For repeatable options: commander calls this once per occurrence. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `--size 10GiB` → bytes. Units as in `truncate`: single letters and xiB are binary, GB is decimal. */
export function parseSizeOption(text: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined || bytes <= 0) {
    throw new CairnError("INVALID_SIZE", `Invalid size "${text}": give a number with an optional unit, e.g. 10GiB, 512MiB or 1.5G`);
  }
  return bytes;
}

export function parseSizeGb(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new CairnError("INVALID_SIZE", `Invalid --size-gb "${text}": give a whole number of GiB, e.g. 10`);
  }
  return n;
}

/** `--size` or `--size-gb`, not both; `undefined` leaves the choice to the server's default. */
export function sizeFrom(options: { size?: string; sizeGb?: string }): { sizeBytes?: number; sizeGb?: number } {
  if (options.size !== undefined && options.sizeGb !== undefined) {
    throw new UsageError("Give --size or --size-gb, not both");
  }
  if (options.size !== undefined) return { sizeBytes: parseSizeOption(options.size) };
  if (options.sizeGb !== undefined) return { sizeGb: parseSizeGb(options.sizeGb) };
  return {};
}

/** `["team=ml", "env=prod"]` → `{team: "ml", env: "prod"}`. The value may contain `=`; the key may not be empty. */
export function parseLabels(pairs: string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const i = pair.indexOf("=");
    if (i <= 0) throw new CairnError("INVALID_LABEL", `Label "${pair}" must be key=value`);
    labels[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return labels;
}

/**
 * `--field name --field sizeBytes` or `--field name,sizeBytes` → validated field names, in the
 * order given, without duplicates. Unknown names are a usage error listing the valid ones.
 */
export function parseFields(values: string[] | undefined): VolumeField[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const out: VolumeField[] = [];
  for (const f of values.flatMap((v) => v.split(",")).map((s) => s.trim()).filter(Boolean)) {
    if (!(VOLUME_FIELDS as string[]).includes(f)) {
      throw new UsageError(`Unknown field "${f}"`, `fields are ${VOLUME_FIELDS.join(", ")}`);
    }
    if (!out.includes(f as VolumeField)) out.push(f as VolumeField);
  }
  return out.length > 0 ? out : undefined;
}

/** `--range 0-1023` (end inclusive, as in HTTP) or `--range 1024-` (to the end of the file). */
export function parseRange(text: string): { start: number; end?: number } {
  const m = /^\s*(\d+)\s*-\s*(\d*)\s*$/.exec(text);
  const start = m ? Number(m[1]) : NaN;
  const end = m && m[2] !== "" ? Number(m[2]) : undefined;
  if (!m || !Number.isSafeInteger(start) || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new CairnError("INVALID_RANGE", `Invalid range "${text}": use start-end in bytes (end inclusive, end ≥ start) or start-`);
  }
  return end === undefined ? { start } : { start, end };
}

export function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > 1000) throw new UsageError(`Invalid --limit "${text}": give 1-1000`);
  return n;
}

/** What `--volume` accepts, in the order the hint shows them. */
const MOUNT_KEYS = ["ref", "mount", "mode", "subpath", "checkpoint"] as const;
type MountKey = (typeof MOUNT_KEYS)[number];
const MOUNT_FORM = "ref=<volume>,mount=</path/in/sandbox>[,mode=ro][,subpath=<dir>][,checkpoint=<name>]";

/**
 * `--volume ref=team-data,mount=/proj,mode=ro,subpath=projects/p1,checkpoint=cp` → a mount for the
 * SDK. Strict on purpose: a misspelt key (`path=`, `readonly`) must not silently mount rw at `/`.
 */
export function parseMount(spec: string): MountRequest {
  const hint = `write --volume ${MOUNT_FORM}, e.g. --volume ref=team-data,mount=/workspace/shared`;
  const seen: Partial<Record<MountKey, string>> = {};
  for (const item of spec.split(",")) {
    const i = item.indexOf("=");
    const key = (i < 0 ? item : item.slice(0, i)).trim();
    if (!(MOUNT_KEYS as readonly string[]).includes(key)) {
      const what = key === "" ? "an empty item" : i < 0 ? `"${key}" (not key=value)` : `unknown key "${key}"`;
      throw new UsageError(`Invalid --volume "${spec}": ${what}; keys are ${MOUNT_KEYS.join(", ")}`, hint);
    }
    if (i < 0 || item.slice(i + 1) === "") throw new UsageError(`Invalid --volume "${spec}": ${key}= needs a value`, hint);
    if (seen[key as MountKey] !== undefined) throw new UsageError(`Invalid --volume "${spec}": ${key} is given twice`, hint);
    seen[key as MountKey] = item.slice(i + 1);
  }
  const missing = (["ref", "mount"] as const).filter((k) => seen[k] === undefined);
  if (missing.length > 0) throw new UsageError(`Invalid --volume "${spec}": ${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} missing`, hint);
  if (!seen.mount!.startsWith("/")) throw new UsageError(`Invalid --volume "${spec}": mount must be an absolute path, e.g. mount=/data`, hint);
  if (seen.mode !== undefined && seen.mode !== "rw" && seen.mode !== "ro") {
    throw new UsageError(`Invalid --volume "${spec}": mode is rw or ro, not "${seen.mode}"`, hint);
  }
  const mount: MountRequest = { volume: seen.ref!, mountPath: seen.mount! };
  if (seen.mode !== undefined) mount.mode = seen.mode as "rw" | "ro";
  if (seen.subpath !== undefined) mount.subpath = seen.subpath;
  if (seen.checkpoint !== undefined) mount.checkpoint = seen.checkpoint;
  return mount;
}

/** `--env K=V` (repeatable) → a record; the value may contain `=`, the name must be a shell name. */
export function parseEnv(pairs: string[] | undefined): Record<string, string> | undefined {
  if (pairs === undefined || pairs.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const i = pair.indexOf("=");
    const name = i < 0 ? pair : pair.slice(0, i);
    if (i < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new UsageError(`Invalid --env "${pair}": write NAME=value, e.g. --env NODE_ENV=production`);
    }
    env[name] = pair.slice(i + 1);
  }
  return env;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `--timeout 10m` → milliseconds. Units ms, s, m, h; a bare number is seconds. */
export function parseDuration(text: string, option = "--timeout"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? "s"]!) : NaN;
  if (!m || !Number.isSafeInteger(ms) || ms <= 0) {
    throw new UsageError(`Invalid ${option} "${text}": give a duration such as 30s, 10m or 1h (a bare number is seconds)`);
  }
  return ms;
}

/** A whole positive number for options such as `--pids 256`. */
export function parsePositiveInt(text: string, option: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new UsageError(`Invalid ${option} "${text}": give a whole number, e.g. ${option} 256`);
  return n;
}

/** `--memory 512` (MiB) or `--memory 1GiB` → whole MiB. */
export function parseMemoryMb(text: string): number {
  if (/^\s*\d+\s*$/.test(text)) return parsePositiveInt(text.trim(), "--memory");
  const bytes = parseSize(text);
  if (bytes === undefined || bytes <= 0) throw new UsageError(`Invalid --memory "${text}": give MiB (e.g. 512) or a size (e.g. 1GiB)`);
  return Math.ceil(bytes / 2 ** 20);
}

/**
 * Join argv words into one `/bin/sh -c` command that runs exactly those words: a word that the
 * shell would change (spaces, quotes, `$`, globs, …) is single-quoted; plain words stay readable.
 */
export function shellJoin(words: string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/** `team-data:before-migration` → checked `volume:checkpoint`, as `--from-checkpoint` takes it. */
export function parseCheckpointRef(text: string): string {
  if (!/^[^:\s]+:[^:\s]+$/.test(text)) {
    throw new UsageError(`Invalid --from-checkpoint "${text}": write <volume>:<checkpoint>, e.g. team-data:before-migration`);
  }
  return text;
}
