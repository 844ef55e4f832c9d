/**
 * `cairn volume ls <volume> [path]`: the files of a volume. A table on a terminal, a JSON array
 * when piped, both streamed page by page (a 200k-file directory needs no more memory than a page).
 */
import { formatSize, type FileEntry } from "@cairn/protocol";
import type { Context } from "../../context.js";
import { formatAge, renderTable, type Style } from "../../output.js";
import { parseLimit } from "../../args.js";

export interface ListFilesOptions {
  recursive?: boolean;
  prefix?: string;
  limit?: string;
  cursor?: string;
}

const TYPE_CHAR: Record<FileEntry["type"], string> = {
  file: "-",
  directory: "d",
  symlink: "l",
  fifo: "p",
  socket: "s",
  "block-device": "b",
  "char-device": "c",
};

/** `drwxr-xr-x`, as ls prints it (setuid/setgid/sticky included). */
export function modeString(type: FileEntry["type"], mode: number): string {
  const rwx = (bits: number, special: boolean, specialChar: string) =>
    (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (special ? (bits & 1 ? specialChar : specialChar.toUpperCase()) : bits & 1 ? "x" : "-");
  return TYPE_CHAR[type] + rwx(mode >> 6, (mode & 0o4000) !== 0, "s") + rwx(mode >> 3, (mode & 0o2000) !== 0, "s") + rwx(mode, (mode & 0o1000) !== 0, "t");
}

function row(e: FileEntry, recursive: boolean, base: string, style: Style): string[] {
  const shown = recursive ? e.path.slice(base === "/" ? 1 : base.length + 1) : e.name;
  const name = e.type === "directory" ? style.bold(`${shown}/`) : e.type === "symlink" ? `${shown} -> ${e.target ?? ""}` : shown;
  return [modeString(e.type, e.mode), e.type === "directory" ? "-" : formatSize(e.size), formatAge(e.mtime), name];
}

export async function listFilesAction(ctx: Context, ref: string, path: string | undefined, options: ListFilesOptions): Promise<void> {
  const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
  const base = path ?? "/";
  const query = {
    signal: ctx.signal,
    ...(options.recursive ? { recursive: true } : {}),
    ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
  };
  const onePage = options.limit !== undefined || options.cursor !== undefined;
  const pages = async function* () {
    if (onePage) {
      const page = await volume.files.list(base, {
        ...query,
        ...(options.limit !== undefined ? { limit: parseLimit(options.limit) } : {}),
        ...(options.cursor !== undefined ? { cursor: options.cursor } : {}),
      });
      yield page.items;
      if (page.nextCursor) process.stderr.write(`next page: --cursor ${page.nextCursor}\n`);
      return;
    }
    let cursor: string | undefined;
    do {
      const page = await volume.files.list(base, { ...query, limit: 1000, ...(cursor ? { cursor } : {}) });
      yield page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  };
  let count = 0;
  if (ctx.json) {
    // One JSON array, written as the pages come.
    process.stdout.write("[");
    for await (const items of pages()) {
      for (const e of items) process.stdout.write(`${count++ === 0 ? "\n" : ",\n"}  ${JSON.stringify(e)}`);
    }
    process.stdout.write(count === 0 ? "]\n" : "\n]\n");
    return;
  }
  for await (const items of pages()) {
    if (items.length === 0) continue;
    // Column widths per page: a table for the first screenful without waiting for the last page.
    const table = renderTable(["MODE", "SIZE", "MODIFIED", "NAME"], items.map((e) => row(e, options.recursive === true, base, ctx.out)), {
      style: ctx.out,
      rightAlign: [false, true, false, false],
    });
    process.stdout.write(count === 0 ? table : table.slice(table.indexOf("\n") + 1));
    count += items.length;
  }
  if (count === 0) process.stderr.write(ctx.err.dim(`${base} is empty\n`));
}
