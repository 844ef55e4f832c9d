/**
 * Replace across files: JavaScript regexes (or literals) run in a worker thread with a time limit,
 * so a catastrophic pattern cannot stall cairnd; each changed file is committed atomically.
 */
import { constants as fsc } from "node:fs";
import { lstat, mkdir, open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { CairnError, type ReplaceRequest, type ReplaceResult } from "@cairn/protocol";
import { checkPreconditions, etagOf, isNoSpace, quotaError, resolvePath, safeMode } from "./core.js";
import { MAX_EDIT_BYTES, readWhole } from "./ops.js";
import { commitTree, Staging, syncFilesystem } from "./staging.js";
import { escapeRegExp, globMatcher, searchRoot, walk, type Found } from "./search.js";

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
    const candidates: AsyncIterable<Found[]> = st.isFile()
      ? (async function* () {
          yield [{ rel: "", hostPath: target.hostPath, type: "file" as const }];
        })()
      : walk(target.hostPath, "", target.volumePath === "/");
    for await (const f of flatten(candidates)) {
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

async function* flatten<T>(batches: AsyncIterable<T[]>): AsyncGenerator<T> {
  for await (const batch of batches) yield* batch;
}
