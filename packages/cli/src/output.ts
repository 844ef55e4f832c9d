/**
 * Printing: JSON for scripts, aligned tables for people. Whether a stream is a terminal decides
 * the format and whether there is colour, so `cairn volume list | jq` needs no flag.
 */
import { VOLUME_FIELDS, formatSize, type Attachment, type Checkpoint, type Deployment, type Sandbox, type Volume } from "@cairn/protocol";

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
  return renderDetails(rows, style);
}

/** `LABEL:  value` lines with the values aligned, for one object (`get`, `create`). */
export function renderDetails(rows: [string, string][], style: Style = plain): string {
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

/** `2025-01-10T11:55:00Z (5m ago)`: exact for `get`, readable at a glance. */
const when = (iso: string) => `${iso} (${formatAge(iso)})`;
const exactSize = (bytes: number) => `${formatSize(bytes)} (${bytes} bytes)`;

/** Green when all is well, yellow on the way, red when it failed: only the colour changes. */
function stateCell(state: string, style: Style): string {
  if (state === "ready" || state === "running" || state === "mounted") return style.green(state);
  if (state === "failed") return style.red(state);
  return style.yellow(state);
}

export function checkpointTable(items: Checkpoint[], style: Style = plain): string {
  return renderTable(
    ["NAME", "ID", "CREATED", "SIZE", "ALLOCATED", "EXCLUSIVE"],
    items.map((c) => [style.bold(c.name), c.id, formatAge(c.createdAt), formatSize(c.sizeBytes), formatSize(c.allocatedBytes), formatSize(c.exclusiveBytes)]),
    { style, rightAlign: [false, false, false, true, true, true] },
  );
}

export function checkpointDetails(c: Checkpoint, style: Style = plain): string {
  return renderDetails(
    [
      ["NAME:", style.bold(c.name)],
      ["ID:", c.id],
      ["VOLUME:", c.volumeId],
      ["SIZE:", exactSize(c.sizeBytes)],
      ["ALLOCATED:", exactSize(c.allocatedBytes)],
      ["EXCLUSIVE:", exactSize(c.exclusiveBytes)],
      ["FROZEN:", `${c.frozenMs} ms`],
      ["LABELS:", formatLabels(c.labels)],
      ["CREATED:", when(c.createdAt)],
    ],
    style,
  );
}

/** `team-data:/workspace (ro)`: one attachment in a cell. */
const mountCell = (a: Attachment) =>
  `${a.volumeName}${a.checkpoint ? `@${a.checkpoint}` : ""}${a.subpath && a.subpath !== "/" && a.subpath !== "" ? `/${a.subpath.replace(/^\/+/, "")}` : ""}:${a.mountPath}${a.mode === "ro" ? " (ro)" : ""}`;

/** Attachments that still hold or intend a mount; released and failed ones are history. */
const liveMounts = (sb: Sandbox) => sb.attachments.filter((a) => a.state !== "released" && a.state !== "failed");

export function sandboxTable(items: Sandbox[], style: Style = plain): string {
  return renderTable(
    ["ID", "TEMPLATE", "STATE", "VOLUMES", "CREATED"],
    items.map((sb) => [sb.id, sb.image ? sb.image.ref : sb.template, stateCell(sb.state, style), liveMounts(sb).map(mountCell).join(", ") || "-", formatAge(sb.createdAt)]),
    { style },
  );
}

/** `none`, `egress`, `egress, allow 10.0.0.5/32:5432, deny …`, with the address while it runs. */
function networkCell(n: Sandbox["network"] | undefined): string {
  if (!n || (!n.egress && n.allow.length === 0)) return "none (loopback only)";
  const parts = [n.egress ? "egress" : "only what is allowed"];
  if (n.allow.length) parts.push(`allow ${n.allow.join(" ")}`);
  if (n.deny.length) parts.push(`deny ${n.deny.join(" ")}`);
  return parts.join(", ") + (n.address ? ` (${n.address})` : "");
}

export function sandboxDetails(sb: Sandbox, style: Style = plain): string {
  const env = Object.entries(sb.env);
  const text = renderDetails(
    [
      ["ID:", style.bold(sb.id)],
      ["TEMPLATE:", sb.image ? `image ${sb.image.ref} (${sb.image.digest.slice(0, 19)}…)` : sb.template],
      ["STATE:", stateCell(sb.state, style) + (sb.error ? ` (${sb.error})` : "")],
      ["CWD:", sb.cwd],
      ["ENV:", env.length === 0 ? "-" : env.map(([k, v]) => `${k}=${v}`).join(" ")],
      ["MEMORY:", `${sb.memoryMb} MiB`],
      ["PIDS:", String(sb.pids)],
      ["CPUS:", sb.cpus ? String(sb.cpus) : "-"],
      ["DISK:", `${sb.diskGb} GiB`],
      ["TIMEOUT:", sb.timeoutMs === null ? "-" : formatDuration(sb.timeoutMs)],
      ["NETWORK:", networkCell(sb.network)],
      ["CREATED:", when(sb.createdAt)],
    ],
    style,
  );
  if (sb.attachments.length === 0) return `${text}${style.dim("VOLUMES:")}   -\n`;
  return `${text}\n${attachmentTable(sb.attachments, style)}`;
}

export function attachmentTable(items: Attachment[], style: Style = plain): string {
  return renderTable(
    ["MOUNT", "VOLUME", "MODE", "SUBPATH", "CHECKPOINT", "STATE", "ERROR"],
    items.map((a) => [a.mountPath, a.volumeName, a.mode, a.subpath || "-", a.checkpoint ?? "-", stateCell(a.state, style), a.error ?? ""]),
    { style },
  );
}

export function deploymentTable(items: Deployment[], style: Style = plain): string {
  return renderTable(
    ["APP", "ENV", "VERSION", "STATE", "URL", "COMMAND", "CREATED"],
    items.map((d) => [style.bold(d.app), d.env, String(d.version), stateCell(d.state, style), d.state === "running" ? d.url : "-", d.command, formatAge(d.createdAt)]),
    { style, rightAlign: [false, false, true, false, false, false, false] },
  );
}

/** 600000 → `10m`, 90000 → `1m30s`: the inverse of `--timeout`. */
export function formatDuration(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return [h ? `${h}h` : "", m ? `${m}m` : "", s ? `${s}s` : ""].join("") || "0s";
}
