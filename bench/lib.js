/**
 * Helpers shared by the benches: timing, statistics, shell tools, the machine description and
 * Markdown tables. No dependency beyond Node and the built Cairn packages.
 */
import { execFile } from "node:child_process";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from "node:os";
import { createServer, request } from "node:http";
import { join } from "node:path";
import { releasePinnedNamespace } from "@cairn/server";
import { startCairnd } from "@cairn/server/testing";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Run a tool without a shell; resolves with stdout, rejects with its stderr in the message. */
export function sh(file, args, options = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 64 * MiB, env: { ...process.env, LC_ALL: "C" }, ...options }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${[file, ...args].join(" ")} failed: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** A free TCP port on loopback (closed again, for another process to listen on). */
export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** GET / on a loopback port (with a Host header if given); status 0 when the connection fails. */
export function httpGet(port, host) {
  return new Promise((resolve) => {
    const r = request({ host: "127.0.0.1", port, path: "/", headers: host ? { host } : {} }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on("error", () => resolve({ status: 0, body: "" }));
    r.end();
  });
}

/** wrk's report (run with --latency): requests/s, 2xx-or-3xx/s, latency percentiles in ms, non-2xx/3xx answers, socket errors. */
export function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const toMs = (v, unit) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? NaN);
  const lat = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? "0";
  const socketErrors = /Socket errors: ([^\n]+)/.exec(out)?.[1] ?? "none";
  const [, total, secs] = /(\d+) requests in ([\d.]+)(m?s)/.exec(out) ?? [];
  const seconds = Number(secs) / (/requests in [\d.]+ms/.test(out) ? 1000 : 1);
  const okRps = (Number(total) - Number(errors)) / seconds;
  return { rps, okRps, total: Number(total), p50: lat(50), p90: lat(90), p99: lat(99), errors: Number(errors), socketErrors };
}

/** Nearest-rank percentile of a sample (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(values) {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  };
}

/** The middle value; the mean of the two middle values for an even count. */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const fmtMs = (ms) => (Number.isFinite(ms) ? (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1)) : "–");
export const fmtMBs = (mbs) => (Number.isFinite(mbs) ? mbs.toFixed(0) : "–");
export const fmtPct = (ratio) => (Number.isFinite(ratio) ? `${Math.round(ratio * 100)}%` : "–");
export const fmtMiB = (bytes) => `${(bytes / MiB).toFixed(0)} MiB`;

/** A Markdown table; `align` is a string of l/r per column. */
export function mdTable(header, rows, align = "") {
  const a = header.map((_, i) => (align[i] === "r" ? "---:" : "---"));
  return [header, a, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The same table for a terminal: padded columns. */
export function textTable(header, rows, align = "") {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (align[i] === "r" ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ");
  return [line(all[0]), widths.map((w) => "-".repeat(w)).join("  "), ...all.slice(1).map(line)].join("\n");
}

/**
 * What an interrupted run must still undo. The private mount namespace takes the mounts away
 * with it, but not the files: on SIGINT/SIGTERM/SIGHUP the running cairnds are destroyed and
 * the scratch directories removed before the process exits.
 */
const servers = new Set();
const scratch = new Set();
let handlersInstalled = false;

function installSignalHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  let cleaning = false;
  const onSignal = (sig) => {
    if (cleaning) return;
    cleaning = true;
    process.stderr.write(`bench: ${sig}: stopping cairnd and removing scratch files\n`);
    (async () => {
      await Promise.allSettled([...servers].map((c) => c.destroy()));
      for (const dir of scratch) await removeScratch(dir).catch(() => undefined);
    })().finally(() => process.exit(130));
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, onSignal);
}

/** Unmount whatever is still mounted under a scratch dir (deepest first), then delete it. */
async function removeScratch(dir) {
  const mounts = (await sh("findmnt", ["-rno", "TARGET"]).catch(() => "")).split("\n").filter((t) => t.startsWith(dir + "/"));
  for (const m of mounts.sort((a, b) => b.length - a.length)) await sh("umount", ["-l", m]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

/** A scratch directory on the host disk, named so a leftover is easy to spot; removed on a signal too. */
export async function scratchDir(label) {
  installSignalHandlers();
  const dir = await mkdtemp(join(tmpdir(), `cairn-bench-${label}-`));
  scratch.add(dir);
  return dir;
}

/**
 * Start cairnd with its data dir on the host disk. Started inside a non-initial mount namespace
 * (as run.js is), pinning cairnd's own namespace sometimes fails with EINVAL on this kernel
 * (`unshare --mount=<pin>`: "Invalid argument"); a new attempt gets a new namespace and works.
 */
async function startWithRetry(env, options, attempts = 5) {
  for (let i = 1; ; i++) {
    const dataDir = await scratchDir("cairnd");
    try {
      return await startCairnd({ dataDir, env: { CAIRN_LOG_LEVEL: "warn", ...env }, ...options });
    } catch (err) {
      await releasePinnedNamespace(dataDir).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
      if (i >= attempts || !/mnt\.ns failed: Invalid argument/.test(err.message)) throw err;
      process.stderr.write(`  cairnd start attempt ${i} failed pinning its mount namespace (EINVAL); retrying\n`);
      startRetries++;
    }
  }
}

/** How many cairnd starts needed a retry in this process (reported by run.js). */
export let startRetries = 0;

/**
 * A cairnd for one bench; stopped, unmounted and deleted afterwards whatever happens. It logs at
 * `warn` unless `env` says otherwise; `options.logFile` sends its log to a file instead of memory.
 */
export async function withCairnd(env, fn, options = {}) {
  const c = await startWithRetry(env, options);
  servers.add(c);
  let failed = false;
  try {
    return await fn(c);
  } catch (err) {
    failed = true;
    const fileTail = options.logFile ? await tailOf(options.logFile, 4000) : "";
    process.stderr.write(`cairnd logs:\n${fileTail}${c.logs().slice(-4000)}\n`);
    throw err;
  } finally {
    try {
      await c.destroy();
      servers.delete(c);
    } catch (err) {
      // Do not let a cleanup error hide the bench's own failure.
      if (!failed) throw err;
      process.stderr.write(`cleanup of ${c.dataDir} failed too: ${err.message}\n`);
    }
  }
}

/** The last `bytes` of a file (a log may be far too large to read whole); "" when unreadable. */
export async function tailOf(file, bytes) {
  let fh;
  try {
    fh = await open(file, "r");
    const { size } = await fh.stat();
    const buf = Buffer.alloc(Math.min(bytes, size));
    await fh.read(buf, 0, buf.length, size - buf.length);
    return buf.toString("utf8");
  } catch {
    return "";
  } finally {
    await fh?.close();
  }
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
export async function memoryOf(pid) {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Samples a process's RSS every `everyMs` until stopped; `stop()` returns the highest sample. */
export function rssSampler(pid, everyMs = 50) {
  let peak = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        peak = Math.max(peak, (await memoryOf(pid)).rss);
      } catch {
        return;
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return peak;
    },
  };
}

async function tryRead(file) {
  return readFile(file, "utf8").catch(() => "");
}

async function trySh(file, args) {
  return sh(file, args).catch(() => "");
}

/** What the numbers were measured on: cores, memory, kernel, disk, node version, date. */
export async function describeMachine() {
  const osRelease = await tryRead("/etc/os-release");
  const distro = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? "unknown";
  const dir = tmpdir();
  const [source, fstype] = (await trySh("findmnt", ["-no", "SOURCE,FSTYPE", "--target", dir])).trim().split(/\s+/);
  let disk = "unknown";
  if (source) {
    const dev = source.replace(/\[.*\]$/, "");
    const info = (await trySh("lsblk", ["-dno", "SIZE,ROTA,MODEL", dev])).trim().split(/\s+/);
    const [size, rota, ...model] = info;
    const virtio = /vd[a-z]+$/.test(dev) ? "virtio block device" : model.join(" ") || "disk";
    if (size) disk = `${dev} (${virtio}, ${size}, rotational=${rota}), ${fstype} at ${dir}`;
  }
  const cpu = cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    host: (await tryRead("/etc/hostname")).trim() || "unknown",
    cores: `${cpu.length} × ${cpu[0]?.model.trim() ?? "unknown"}`,
    memory: `${(totalmem() / GiB).toFixed(1)} GiB (${(freemem() / GiB).toFixed(1)} GiB free at start)`,
    kernel: release(),
    distro,
    disk,
    node: process.version,
    load: loadavg().map((l) => l.toFixed(2)).join(" "),
  };
}

/** One line for a section: the date and what would change the numbers. */
export function machineLine(m) {
  return `${m.date} · ${m.cores.split(" × ")[0]} cores · ${m.memory.split(" (")[0]} · kernel ${m.kernel} · node ${m.node} · load at start ${m.load}`;
}
