/**
 * Search (names by glob; contents by literal or regex with line numbers) and replace across files.
 * Content search runs GNU grep in the volume: it never follows symlinks (`-r`), skips devices,
 * fifos and sockets (`-D skip`) and binary files (`-I`); a regex is PCRE (`-P`), whose
 * backtracking limit keeps a hostile pattern from hanging it. Replace runs JavaScript regexes in a
 * worker thread with a time limit, so a catastrophic pattern cannot stall cairnd.
 */
import { spawn } from "node:child_process";
import { constants as fsc, type Dirent } from "node:fs";
import { lstat, mkdir, open, opendir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import {
  CairnError,
  RESERVED_DIR,
  normalizeVolumePath,
  type FileType,
  type ReplaceRequest,
  type ReplaceResult,
  type SearchMatch,
  type SearchResult,
} from "@cairn/protocol";
import { checkPreconditions, etagOf, isNoSpace, quotaError, resolvePath, safeMode } from "./core.js";
import { lstatOrUndefined, MAX_EDIT_BYTES, readWhole } from "./ops.js";
import { commitTree, Staging, syncFilesystem } from "./staging.js";

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
    return { re: new RegExp(`^${out}$`, "s"), matchBase: !glob.includes("/") };
  } catch (err) {
    throw new CairnError("INVALID_PATTERN", `glob ${JSON.stringify(glob)} is not valid: ${(err as Error).message}`);
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function globMatcher(glob: string | undefined): (rel: string) => boolean {
  if (glob === undefined || glob === "") return () => true;
  const { re, matchBase } = globToRegExp(glob);
  return matchBase ? (rel) => re.test(rel.slice(rel.lastIndexOf("/") + 1)) : (rel) => re.test(rel);
}

// ---------------------------------------------------------------------------------------------
// walking

interface Found {
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

/** Every entry below a directory, depth first, in directory order; symlinks are not entered. */
async function* walk(hostDir: string, rel: string, hideReserved: boolean): AsyncGenerator<Found> {
  let handle;
  try {
    handle = await opendir(hostDir, { bufferSize: 1024 });
  } catch {
    return; // removed while we walked
  }
  try {
    for (let d = await handle.read(); d !== null; d = await handle.read()) {
      if (hideReserved && rel === "" && d.name === RESERVED_DIR) continue;
      const r = rel ? `${rel}/${d.name}` : d.name;
      const hostPath = join(hostDir, d.name);
      const type = typeOfDirent(d);
      yield { rel: r, hostPath, type };
      if (type === "directory") yield* walk(hostPath, r, false);
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function searchRoot(root: string, rawPath: string | undefined) {
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
    for await (const f of walk(target.hostPath, "", target.volumePath === "/")) {
      if (signal?.aborted) break;
      if (!matchesGlob(f.rel)) continue;
      if (matches.length === limit) return { matches, truncated: true };
      matches.push({ path: volumePathOf(f.rel), type: f.type });
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

interface ReplaceSpec {
  pattern: string;
  flags: string;
  replacement: string;
  /** A literal replacement: `$` in it means `$`. */
  literal: boolean;
  dry: boolean;
}

interface Applied {
  count: number;
  output?: string;
  changes: { line: number; before: string; after: string }[];
}

/**
 * Replace every match of `spec` in `text`. The same function runs in the worker (its source is
 * sent there), so it must not refer to anything outside itself.
 */
function applyReplace(text: string, spec: ReplaceSpec): Applied {
  const re = new RegExp(spec.pattern, spec.flags);
  const parts: string[] = [];
  const changes: { line: number; before: string; after: string }[] = [];
  let last = 0;
  let count = 0;
  let line = 1;
  let lineScan = 0;
  // GetSubstitution of the ECMAScript spec: $$, $&, $`, $', $1..$99, $<name>.
  const substitute = (m: RegExpExecArray): string => {
    if (spec.literal) return spec.replacement;
    const r = spec.replacement;
    let out = "";
    for (let i = 0; i < r.length; i++) {
      const c = r[i];
      if (c !== "$" || i + 1 >= r.length) {
        out += c;
        continue;
      }
      const n = r[i + 1]!;
      if (n === "$") (out += "$"), i++;
      else if (n === "&") (out += m[0]), i++;
      else if (n === "`") (out += text.slice(0, m.index)), i++;
      else if (n === "'") (out += text.slice(m.index + m[0].length)), i++;
      else if (n >= "0" && n <= "9") {
        const two = r.slice(i + 1, i + 3);
        if (/^\d\d$/.test(two) && Number(two) > 0 && Number(two) < m.length) (out += m[Number(two)] ?? ""), (i += 2);
        else if (Number(n) > 0 && Number(n) < m.length) (out += m[Number(n)] ?? ""), i++;
        else out += c;
      } else if (n === "<" && m.groups) {
        const end = r.indexOf(">", i + 2);
        if (end < 0) out += c;
        else {
          out += m.groups[r.slice(i + 2, end)] ?? "";
          i = end;
        }
      } else out += c;
    }
    return out;
  };
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0].length === 0) re.lastIndex++; // no endless loop on empty matches
    const rep = substitute(m);
    count++;
    if (spec.dry && changes.length < 50) {
      for (; lineScan < m.index; lineScan++) if (text.charCodeAt(lineScan) === 10) line++;
      const start = text.lastIndexOf("\n", m.index - 1) + 1;
      let end = text.indexOf("\n", m.index + m[0].length);
      if (end < 0) end = text.length;
      changes.push({
        line,
        before: text.slice(start, end).slice(0, 1000),
        after: (text.slice(start, m.index) + rep + text.slice(m.index + m[0].length, end)).slice(0, 1000),
      });
    }
    if (!spec.dry) parts.push(text.slice(last, m.index), rep);
    last = m.index + m[0].length;
    if (!re.global) break;
  }
  if (spec.dry || count === 0) return { count, changes };
  parts.push(text.slice(last));
  return { count, output: parts.join(""), changes };
}

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const applyReplace = ${applyReplace.toString()};
parentPort.on("message", ({ text, spec }) => {
  try { parentPort.postMessage({ ok: true, result: applyReplace(text, spec) }); }
  catch (err) { parentPort.postMessage({ ok: false, error: String(err && err.message || err) }); }
});`;

const REGEX_TIME_LIMIT_MS = 10_000;

/** Runs user regexes off the event loop; a pattern that takes too long is killed with its worker. */
class RegexRunner {
  private worker: Worker | undefined;

  async run(text: string, spec: ReplaceSpec, path: string): Promise<Applied> {
    this.worker ??= new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 512 } });
    const worker = this.worker;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        void this.close();
        reject(new CairnError("INVALID_PATTERN", `The pattern took longer than ${REGEX_TIME_LIMIT_MS / 1000} s on ${path}; simplify it (nested quantifiers backtrack catastrophically)`));
      }, REGEX_TIME_LIMIT_MS);
      const onMessage = (m: { ok: boolean; result?: Applied; error?: string }) => {
        cleanup();
        if (m.ok) resolve(m.result!);
        else reject(new CairnError("INVALID_PATTERN", m.error ?? "invalid pattern"));
      };
      const onError = (err: Error) => {
        cleanup();
        this.worker = undefined;
        reject(new CairnError("PAYLOAD_TOO_LARGE", `Replacing in ${path} needed too much memory: ${err.message}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        worker.off("message", onMessage);
        worker.off("error", onError);
      };
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.postMessage({ text, spec });
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export async function replaceInFiles(
  root: string,
  req: ReplaceRequest,
  options: { volumeName: string; onCommit?: (volumePath: string, created: boolean) => void; signal?: AbortSignal },
): Promise<ReplaceResult> {
  const maxFiles = req.maxFiles ?? 1000;
  const spec: ReplaceSpec = {
    pattern: req.regex ? req.search : escapeRegExp(req.search),
    // `m`: ^ and $ match at line ends, as people expect in source files.
    flags: "g" + (req.ignoreCase ? "i" : "") + (req.regex ? "m" : ""),
    replacement: req.replacement,
    literal: !req.regex,
    dry: req.dryRun === true,
  };
  try {
    new RegExp(spec.pattern, spec.flags);
  } catch (err) {
    throw new CairnError("INVALID_PATTERN", `search is not a valid regular expression: ${(err as Error).message}`);
  }
  const matchesGlob = globMatcher(req.glob);
  const { target, st, volumePathOf } = await searchRoot(root, req.path);
  const runner = new RegexRunner();
  const files: ReplaceResult["files"] = [];
  const etags = new Map<string, string>();
  let total = 0;
  let staging: Staging | undefined;
  try {
    const candidates: AsyncIterable<Found> = st.isFile()
      ? (async function* () {
          yield { rel: "", hostPath: target.hostPath, type: "file" as const };
        })()
      : walk(target.hostPath, "", target.volumePath === "/");
    for await (const f of candidates) {
      if (options.signal?.aborted) throw new CairnError("INVALID_REQUEST", "The request was cancelled; nothing was changed");
      if (f.type !== "file" || (f.rel !== "" && !matchesGlob(f.rel))) continue;
      const fst = await lstat(f.hostPath).catch(() => undefined);
      if (!fst?.isFile() || fst.size === 0 || fst.size > MAX_EDIT_BYTES) continue;
      const path = volumePathOf(f.rel);
      let data: Buffer;
      let etag: string;
      try {
        ({ data, etag } = await readWhole(root, path, MAX_EDIT_BYTES));
      } catch {
        continue; // changed or removed meanwhile
      }
      if (data.subarray(0, 8000).includes(0)) continue; // binary
      let text: string;
      try {
        text = utf8.decode(data);
      } catch {
        continue; // not UTF-8: rewriting it as text would corrupt it
      }
      if (spec.literal && !req.ignoreCase && !text.includes(req.search)) continue;
      const applied = spec.literal ? applyReplace(text, spec) : await runner.run(text, spec, path);
      if (applied.count === 0) continue;
      if (files.length === maxFiles) {
        throw new CairnError("INVALID_REQUEST", `More than ${maxFiles} files would change; narrow path or glob, or raise maxFiles. Nothing was changed.`, {
          meta: { maxFiles },
        });
      }
      total += applied.count;
      if (spec.dry) {
        files.push({ path, replacements: applied.count, changes: applied.changes });
        continue;
      }
      staging ??= await Staging.create(root, "staging");
      const resolved = await resolvePath(root, path, { followLast: true });
      const staged = join(staging.dir, "tree", resolved.volumePath);
      await mkdir(dirname(staged), { recursive: true });
      const fh = await open(staged, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        const out = Buffer.from(applied.output!, "utf8");
        let off = 0;
        while (off < out.length) off += (await fh.write(out, off)).bytesWritten;
        await fh.chown(fst.uid, fst.gid);
        await fh.chmod(safeMode(fst.mode));
      } finally {
        await fh.close();
      }
      etags.set(resolved.volumePath, etag);
      files.push({ path: resolved.volumePath, replacements: applied.count });
    }
    if (staging && files.length > 0) {
      await syncFilesystem(staging.dir);
      await commitTree({
        staged: join(staging.dir, "tree"),
        targetHost: root,
        targetPath: "/",
        backupDir: join(staging.dir, "backup"),
        check: (volumePath, existing) => {
          const etag = etags.get(volumePath);
          if (etag !== undefined) checkPreconditions(volumePath, existing, { ifMatch: etag });
        },
        ...(options.onCommit ? { onCommit: options.onCommit } : {}),
      });
      await syncFilesystem(root);
      for (const f of files) f.etag = etagOf(await lstat(join(root, f.path)));
    }
  } catch (err) {
    if (isNoSpace(err)) throw quotaError(options.volumeName, err);
    throw err;
  } finally {
    await runner.close();
    await staging?.discard();
  }
  return { dryRun: spec.dry, filesChanged: files.length, replacements: total, files };
}
