/**
 * Printing: JSON for scripts, aligned tables for people. Whether a stream is a terminal decides
 * the format and whether there is colour, so `cairn volume list | jq` needs no flag.
 */
import { VOLUME_FIELDS, formatSize, type Volume } from "@cairn/protocol";

export type VolumeField = keyof Volume;

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
}

const plain: Style = { bold: (s) => s, dim: (s) => s, red: (s) => s, green: (s) => s, yellow: (s) => s };
const sgr = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`;
const ansi: Style = { bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39) };

/** Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org) or TERM=dumb. */
export function colorEnabled(stream: { isTTY?: boolean }): boolean {
  if (!stream.isTTY) return false;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  return process.env.TERM !== "dumb";
}

export function paint(stream: { isTTY?: boolean }): Style {
  return colorEnabled(stream) ? ansi : plain;
}

const ANSI_PATTERN = /\u001b\[[0-9;]*m/g;
const visibleLength = (s: string) => s.replace(ANSI_PATTERN, "").length;

/** Columns separated by two spaces, left-aligned except those marked numeric; no trailing blanks. */
export function renderTable(headers: string[], rows: string[][], options: { style?: Style; rightAlign?: boolean[] } = {}): string {
  const style = options.style ?? plain;
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ""))));
  const line = (cells: string[], head: boolean) =>
    cells
      .map((cell, i) => {
        const pad = " ".repeat(widths[i]! - visibleLength(cell));
        const text = head ? style.bold(cell) : cell;
        return options.rightAlign?.[i] && !head ? pad + text : text + pad;
      })
      .join("  ")
      .trimEnd();
  return [line(headers, true), ...rows.map((r) => line(r, false))].join("\n") + "\n";
}

export function printJson(value: unknown, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `3m ago`, `5h ago`, `2d ago`; older than a month: the date. Like `kubectl`'s AGE, but explicit. */
export function formatAge(iso: string, now: number = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  if (s < 30 * 86400) return `${Math.floor(s / 86400)}d ago`;
  return iso.slice(0, 10);
}

export function formatLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length === 0 ? "-" : entries.map(([k, v]) => `${k}=${v}`).join(",");
}

interface Column {
  header: string;
  cell(v: Partial<Volume>, style: Style): string;
  numeric?: boolean;
}

const str = (x: unknown) => (x === undefined || x === null ? "-" : String(x));
const size = (x: number | undefined) => (x === undefined ? "-" : formatSize(x));

/** One column per field, so `--field` selects table columns and JSON keys alike. */
export const VOLUME_COLUMNS: Record<VolumeField, Column> = {
  id: { header: "ID", cell: (v) => str(v.id) },
  name: { header: "NAME", cell: (v, s) => s.bold(str(v.name)) },
  projectId: { header: "PROJECT", cell: (v) => str(v.projectId) },
  region: { header: "REGION", cell: (v) => str(v.region) },
  sizeBytes: { header: "SIZE", cell: (v) => size(v.sizeBytes), numeric: true },
  usedBytes: { header: "USED", cell: (v) => size(v.usedBytes), numeric: true },
  filesystem: { header: "FS", cell: (v) => str(v.filesystem) },
  accessMode: { header: "ACCESS MODE", cell: (v) => str(v.accessMode) },
  status: {
    header: "STATUS",
    cell: (v, s) => (v.status === "ready" ? s.green(v.status) : v.status === undefined ? "-" : s.yellow(v.status)),
  },
  labels: { header: "LABELS", cell: (v) => formatLabels(v.labels) },
  createdAt: { header: "CREATED", cell: (v) => (v.createdAt ? formatAge(v.createdAt) : "-") },
  updatedAt: { header: "UPDATED", cell: (v) => (v.updatedAt ? formatAge(v.updatedAt) : "-") },
};

export const DEFAULT_LIST_FIELDS: VolumeField[] = ["name", "sizeBytes", "usedBytes", "filesystem", "accessMode", "status", "labels", "createdAt"];

export function volumeTable(volumes: Partial<Volume>[], fields: VolumeField[] = DEFAULT_LIST_FIELDS, style: Style = plain): string {
  const cols = fields.map((f) => VOLUME_COLUMNS[f]);
  return renderTable(
    cols.map((c) => c.header),
    volumes.map((v) => cols.map((c) => c.cell(v, style))),
    { style, rightAlign: cols.map((c) => c.numeric === true) },
  );
}

/**
 * One volume, one line per field: `get` and `create` show everything, with exact byte counts
 * and timestamps that a list row abbreviates.
 */
export function volumeDetails(v: Partial<Volume>, fields: VolumeField[] = VOLUME_FIELDS, style: Style = plain): string {
  const rows = fields.map((f): [string, string] => {
    const col = VOLUME_COLUMNS[f];
    const raw = v[f];
    let value: string;
    if (f === "sizeBytes" || f === "usedBytes") value = raw === undefined ? "-" : `${formatSize(raw as number)} (${raw} bytes)`;
    else if (f === "createdAt" || f === "updatedAt") value = raw === undefined ? "-" : `${String(raw)} (${formatAge(String(raw))})`;
    else value = col.cell(v, style);
    return [`${col.header}:`, value];
  });
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, value]) => `${style.dim(k.padEnd(width))}  ${value}`).join("\n") + "\n";
}

/** The chosen keys of a volume, in the chosen order (missing keys are left out, not invented). */
export function pickFields(v: Partial<Volume>, fields: VolumeField[] | undefined): Partial<Volume> {
  if (!fields) return v;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in v) out[f] = v[f];
  return out as Partial<Volume>;
}
