/**
 * Parsing of option values that commander leaves as strings. Errors carry the same codes the
 * server would use (INVALID_SIZE, INVALID_LABEL, …) so hints and exit codes are the same whether
 * the CLI or cairnd notices the mistake.
 */
import { CairnError, VOLUME_FIELDS, parseSize } from "@cairn/protocol";
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
