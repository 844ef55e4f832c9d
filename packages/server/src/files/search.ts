/**
 * Search: names by glob; contents by literal or regex, with line numbers.
 * Content search runs GNU grep in the volume: it never follows symlinks (`-r`), skips devices,
 * fifos and sockets (`-D skip`) and binary files (`-I`); a regex is PCRE (`-P`), whose
 * backtracking limit keeps a hostile pattern from hanging it. Replace is in replace.ts.
 */
import { spawn } from "node:child_process";
import { type Dirent } from "node:fs";
import { dirname } from "node:path";
import {
  CairnError,
  RESERVED_DIR,
  normalizeVolumePath,
  type FileType,
  type SearchMatch,
  type SearchResult,
} from "@cairn/protocol";
import { resolvePath } from "./core.js";
import { lstatOrUndefined } from "./ops.js";
import { readDirQuick } from "./quick-fs.js";

// ---------------------------------------------------------------------------------------------
// globs

/**
 * A glob as a RegExp over a relative path: `*` and `?` stay within one name, `**` crosses
 * directories, `[a-z]` / `[!a-z]` classes, `{a,b}` alternatives. A glob without `/` is matched
 * against the file name alone (as in .gitignore), with `/` against the whole relative path.
 */
export function globToRegExp(glob: string): { re: RegExp; matchBase: boolean } {
  if (glob.length === 0 || glob.length > 1000) throw new CairnError("INVALID_PATTERN", "glob must be 1-1000 characters");
  let out = "";
  let depth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        const slashAfter = glob[i + 2] === "/";
        const atStart = i === 0 || glob[i - 1] === "/";
        if (atStart && slashAfter) {
          out += "(?:.*/)?";
          i += 2;
        } else {
          out += ".*";
          i += 1;
        }
      } else out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) throw new CairnError("INVALID_PATTERN", `glob ${JSON.stringify(glob)}: [ without ]`);
      let cls = glob.slice(i + 1, end);
      if (cls.startsWith("!")) cls = "^" + cls.slice(1);
      out += `[${cls.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else if (c === "{") {
      depth++;
      out += "(?:";
    } else if (c === "}" && depth > 0) {
      depth--;
      out += ")";
    } else if (c === "," && depth > 0) out += "|";
    else if (c === "\\" && i + 1 < glob.length) out += escapeRegExp(glob[++i]!);
    else out += escapeRegExp(c);
  }
  if (depth !== 0) throw new CairnError("INVALID_PATTERN", `glob ${JSON.stringify(glob)}: { without }`);
  try {
    return { re: new RegExp(`^${out}$`, "su"), matchBase: !glob.includes("/") };
  } catch (err) {
    throw new CairnError("INVALID_PATTERN", `glob ${JSON.stringify(glob)} is not valid: ${(err as Error).message}`);
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

export function globMatcher(glob: string | undefined): (rel: string) => boolean {
  if (glob === undefined || glob === "") return () => true;
  const { re, matchBase } = globToRegExp(glob);
  return matchBase ? (rel) => re.test(rel.slice(rel.lastIndexOf("/") + 1)) : (rel) => re.test(rel);
}

// ---------------------------------------------------------------------------------------------
// walking

export interface Found {
  rel: string;
  hostPath: string;
  /** The entry's type as the directory reports it (no stat needed). */
  type: FileType;
}

function typeOfDirent(d: Dirent): FileType {
  if (d.isFile()) return "file";
  if (d.isDirectory()) return "directory";
  if (d.isSymbolicLink()) return "symlink";
  if (d.isFIFO()) return "fifo";
  if (d.isSocket()) return "socket";
  if (d.isBlockDevice()) return "block-device";
  return "char-device";
}

/**
 * Every entry below a directory, depth first, in directory order, a batch at a time; symlinks are
 * not entered. Each directory is read in one call (its entries are in memory while it is walked),
 * and the next few subdirectories of a directory are read ahead, so the thread pool reads several
 * at once while the walk goes on; one generator walks the whole tree yielding batches (an await
 * per entry, through a generator per level, cost several times what `find` takes).
 */
export async function* walk(hostDir: string, rel: string, hideReserved: boolean): AsyncGenerator<Found[]> {
  const read = (dir: string) => readDirQuick(dir).catch(() => [] as Dirent[]); // removed while we walked
  interface Frame {
    dir: string;
    rel: string;
    entries: Dirent[];
    next: number;
    /** Reads started ahead, by entry index; `ahead` is the next index to look at for one. */
    early: Map<number, Promise<Dirent[]>>;
    ahead: number;
  }
  const frame = (dir: string, rel: string, entries: Dirent[]): Frame => {
    const f: Frame = { dir, rel, entries, next: 0, early: new Map(), ahead: 0 };
    readAhead(f);
    return f;
  };
  const readAhead = (f: Frame) => {
    while (f.early.size < READ_AHEAD && f.ahead < f.entries.length) {
      const i = f.ahead++;
      const d = f.entries[i]!;
      if (d.isDirectory()) f.early.set(i, read(`${f.dir}/${d.name}`));
    }
  };
  const stack: Frame[] = [frame(hostDir, rel, await read(hostDir))];
  let batch: Found[] = [];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next === top.entries.length) {
      stack.pop();
      continue;
    }
    const i = top.next++;
    const d = top.entries[i]!;
    if (hideReserved && stack.length === 1 && d.name === RESERVED_DIR) {
      top.early.delete(i);
      readAhead(top);
      continue;
    }
    const r = top.rel ? `${top.rel}/${d.name}` : d.name;
    // A name from readdir is one component: joined by hand.
    const path = `${top.dir}/${d.name}`;
    const type = typeOfDirent(d);
    batch.push({ rel: r, hostPath: path, type });
    if (batch.length >= 256) {
      yield batch;
      batch = [];
    }
    if (type === "directory") {
      const early = top.early.get(i);
      top.early.delete(i);
      readAhead(top);
      stack.push(frame(path, r, await (early ?? read(path))));
    }
  }
  if (batch.length > 0) yield batch;
}

/** Subdirectories of one directory read ahead of the walk. */
const READ_AHEAD = 4;

export async function searchRoot(root: string, rawPath: string | undefined) {
  const path = normalizeVolumePath(rawPath ?? "/");
  const target = await resolvePath(root, path, { followLast: true });
  const st = await lstatOrUndefined(target.hostPath, path);
  if (!st) throw new CairnError("PATH_NOT_FOUND", `${path} does not exist`);
  if (!st.isDirectory() && !st.isFile()) throw new CairnError("NOT_A_FILE", `${path} is neither a directory nor a regular file`);
  const join2 = (rel: string) => (rel === "" ? path : path === "/" ? `/${rel}` : `${path}/${rel}`);
  return { path, target, st, volumePathOf: join2 };
}

// ---------------------------------------------------------------------------------------------
// search

export interface SearchOptions {
  path?: string | undefined;
  glob?: string | undefined;
  query?: string | undefined;
  regex?: boolean | undefined;
  ignoreCase?: boolean | undefined;
  limit?: number | undefined;
}

const MAX_LINE_CHARS = 1000;
const SEARCH_TIMEOUT_MS = 120_000;

export async function searchFiles(root: string, q: SearchOptions, signal?: AbortSignal): Promise<SearchResult> {
  if (!q.glob && (q.query === undefined || q.query === "")) {
    throw new CairnError("INVALID_REQUEST", "Give glob (to search names), query (to search contents), or both");
  }
  const limit = q.limit ?? 100;
  const matchesGlob = globMatcher(q.glob);
  const { target, st, volumePathOf } = await searchRoot(root, q.path);
  if (q.query === undefined || q.query === "") {
    const matches: SearchMatch[] = [];
    if (st.isFile()) {
      const name = target.volumePath.slice(target.volumePath.lastIndexOf("/") + 1);
      if (matchesGlob(name)) matches.push({ path: volumePathOf(""), type: "file" });
      return { matches, truncated: false };
    }
    for await (const batch of walk(target.hostPath, "", target.volumePath === "/")) {
      if (signal?.aborted) break;
      for (const f of batch) {
        if (!matchesGlob(f.rel)) continue;
        if (matches.length === limit) return { matches, truncated: true };
        matches.push({ path: volumePathOf(f.rel), type: f.type });
      }
    }
    return { matches, truncated: false };
  }
  if (/[\n\r]/.test(q.query)) throw new CairnError("INVALID_PATTERN", "query cannot contain a line break; search one line at a time");
  return grep(target.hostPath, st.isDirectory(), target.volumePath === "/", q, limit, matchesGlob, volumePathOf, signal);
}

function grep(
  hostPath: string,
  isDir: boolean,
  atRoot: boolean,
  q: SearchOptions,
  limit: number,
  matchesGlob: (rel: string) => boolean,
  volumePathOf: (rel: string) => string,
  signal?: AbortSignal,
): Promise<SearchResult> {
  const args = ["-r", "-n", "-H", "-Z", "-I", "-s", "-D", "skip", q.regex ? "-P" : "-F"];
  if (q.ignoreCase) args.push("-i");
  if (atRoot) args.push(`--exclude-dir=${RESERVED_DIR}`);
  args.push("-e", q.query!, "--", isDir ? "." : `./${hostPath.slice(hostPath.lastIndexOf("/") + 1)}`);
  const cwd = isDir ? hostPath : dirname(hostPath);
  const child = spawn("grep", args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C.UTF-8" } });
  const matches: SearchMatch[] = [];
  let truncated = false;
  let stderr = "";
  child.stderr.on("data", (d) => {
    if (stderr.length < 2000) stderr += d;
  });
  const stop = () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  const timer = setTimeout(() => {
    truncated = true;
    stop();
  }, SEARCH_TIMEOUT_MS);
  signal?.addEventListener("abort", stop, { once: true });

  // Records are `./path\0line:text\n`; a line's text is cut at MAX_LINE_CHARS while it streams.
  let state: "name" | "line" = "name";
  let name: Buffer[] = [];
  let nameLen = 0;
  let line: Buffer[] = [];
  let lineLen = 0;
  const emit = () => {
    const rel = Buffer.concat(name).toString("utf8").replace(/^\.\//, "");
    const text = Buffer.concat(line).toString("utf8");
    const colon = text.indexOf(":");
    const relPath = isDir ? rel : "";
    if (matchesGlob(rel)) {
      if (matches.length === limit) {
        truncated = true;
        stop();
      } else {
        matches.push({ path: volumePathOf(relPath), line: Number(text.slice(0, colon)), text: text.slice(colon + 1, colon + 1 + MAX_LINE_CHARS) });
      }
    }
    name = [];
    nameLen = 0;
    line = [];
    lineLen = 0;
  };
  child.stdout.on("data", (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length && !truncated) {
      if (state === "name") {
        const z = chunk.indexOf(0, i);
        const end = z < 0 ? chunk.length : z;
        if (nameLen < 8192) name.push(chunk.subarray(i, end));
        nameLen += end - i;
        i = end;
        if (z >= 0) {
          state = "line";
          i = z + 1;
        }
      } else {
        const nl = chunk.indexOf(10, i);
        const end = nl < 0 ? chunk.length : nl;
        if (lineLen < MAX_LINE_CHARS * 4 + 16) line.push(chunk.subarray(i, Math.min(end, i + MAX_LINE_CHARS * 4 + 16 - lineLen)));
        lineLen += end - i;
        i = end;
        if (nl >= 0) {
          emit();
          state = "name";
          i = nl + 1;
        }
      }
    }
  });
  return new Promise((resolve, reject) => {
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run grep: ${err.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", stop);
      if (code === 2 && !truncated && stderr.trim() !== "" && matches.length === 0) {
        reject(new CairnError("INVALID_PATTERN", `query is not a valid ${q.regex ? "regular expression" : "search string"}: ${stderr.trim().replace(/^grep: /, "").slice(0, 300)}`));
        return;
      }
      resolve({ matches, truncated });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// replace
