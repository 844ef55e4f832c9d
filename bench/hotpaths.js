/**
 * The hot paths of cairnd, each against the smallest thing that does the same job, measured in
 * the same run on the same machine (interleaved, so drift from other work on the machine hits
 * both sides alike):
 *
 *   stat     `GET /v1/volumes/{v}/files/stat?path=/one.txt` under wrk (2 threads, 16
 *            connections, loopback) vs a ~20-line Node `http` server in its own process doing
 *            `fs.stat` on a file on the host disk and answering JSON.
 *   content  `GET …/files/content?path=/four-k.bin` (4 KiB) vs the same server doing `fs.readFile`.
 *   list     a 200,000-entry directory listed through the SDK, 1,000 per page following
 *            `nextCursor`, vs `ls -l` of the same directory on the volume's mount (hyperfine, in
 *            cairnd's mount namespace); the first and the last page timed on their own, and one
 *            page of a 1,000-entry directory as the size-independent reference.
 *   search   names over 10,000 files (`files.search({ glob })`) vs `find <dir> -name` of the
 *            same tree on the volume's mount (hyperfine).
 *   router   wrk through cairnd's router (Host: <app>.localhost) to a deployed app vs wrk
 *            straight at the same app started on the host; non-2xx answers counted.
 *   redeploy a redeploy until the new version answers through the router vs the app's own
 *            start-up on the host (as bench/deploys.js, fewer repeats).
 *
 * cairnd runs at its default log level (a production server logs every request), its log going
 * to a file; requests use a project's API key, as a client would (the admin key skips the key
 * lookup). Before each row the bench waits (a while) for the machine to be quiet and records the
 * CPU that other work used just before it.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { resolveConfig } from "@cairn/server";
import { appTarball, startHostApp, stopHostApp, writeApp } from "./deploys.js";
import { fmtMs, freePort, httpGet, mdTable, median, now, parseWrk, scratchDir, sh, sleep, textTable, withCairnd } from "./lib.js";

export const name = "hotpaths";
export const title = "Hot paths: stat, small reads, listing, name search and routed requests vs minimal baselines";

const WRK_SECONDS = Number(process.env.CAIRN_BENCH_HOT_SECONDS ?? 5);
const WRK_REPEATS = Number(process.env.CAIRN_BENCH_HOT_REPEATS ?? 3);
const WRK_ARGS = ["-t2", "-c16", `-d${WRK_SECONDS}s`, "--latency"];
const LIST_ENTRIES = Number(process.env.CAIRN_BENCH_HOT_LIST_ENTRIES ?? 200_000);
const PAGE = 1000;
const SEARCH_DIRS = 100;
const SEARCH_PER_DIR = 100;
const REDEPLOYS = Number(process.env.CAIRN_BENCH_HOT_REDEPLOYS ?? 3);
/** The level cairnd logs at when nobody sets CAIRN_LOG_LEVEL. */
const DEFAULT_LOG_LEVEL = resolveConfig({ dataDir: "/nonexistent" }, {}).logLevel;

// The baseline: what a hand-written file server does per request, nothing more.
const BASELINE_SERVER = `import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { join, normalize } from "node:path";
const root = process.argv[2];
createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const path = normalize("/" + (url.searchParams.get("path") ?? ""));
  try {
    if (url.pathname === "/stat") {
      const st = await stat(join(root, path));
      const body = JSON.stringify({ path, name: path.slice(path.lastIndexOf("/") + 1), type: st.isDirectory() ? "directory" : "file", size: st.size, mode: st.mode & 0o7777, mtime: st.mtime.toISOString(), uid: st.uid, gid: st.gid });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
    } else if (url.pathname === "/content") {
      const data = await readFile(join(root, path));
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": data.length }).end(data);
    } else res.writeHead(404).end();
  } catch {
    res.writeHead(404).end();
  }
}).listen(0, "127.0.0.1", function () { process.stdout.write(this.address().port + "\\n"); });
`;

// ------------------------------------------------------------------------------------ machine

let clockTicks = 100;

/** CPU time (user + system) a process has used, in ms. */
async function cpuMs(pid) {
  const text = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

async function cpuTimes() {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Cores busy over `ms` (all processes: sample it while the bench's own are idle). */
async function busyCores(ms) {
  const a = await cpuTimes();
  await sleep(ms);
  const b = await cpuTimes();
  return ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * cpus().length;
}

/**
 * Wait up to 30 s for other work to use less than half a core, then report what it used over the
 * last second: the background each row was measured against.
 */
async function settle() {
  const t0 = now();
  let busy;
  do busy = await busyCores(1000);
  while (busy > 0.5 && now() - t0 < 30_000);
  return busy;
}

// ------------------------------------------------------------------------------------ wrk

async function wrkRun(url, headers, pid) {
  const args = [...WRK_ARGS, ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
  const cpu0 = await cpuMs(pid);
  const out = await sh("wrk", args);
  const r = parseWrk(out);
  return { ...r, cpuUsPerReq: ((await cpuMs(pid)) - cpu0) * 1000 / Math.max(1, r.total) };
}

/** Cairn and baseline wrk runs, interleaved (the order alternating), after a short warm-up of each. */
async function wrkPair(log, label, cairn, base) {
  const background = await settle();
  for (const side of [cairn, base]) {
    const h = Object.entries(side.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
    await sh("wrk", ["-t1", "-c4", "-d1s", ...h, side.url]);
  }
  const runs = { cairn: [], base: [] };
  for (let i = 0; i < WRK_REPEATS; i++) {
    log(`  hotpaths: ${label}, run ${i + 1}/${WRK_REPEATS}`);
    for (const side of i % 2 === 0 ? ["cairn", "base"] : ["base", "cairn"]) {
      const s = side === "cairn" ? cairn : base;
      runs[side].push(await wrkRun(s.url, s.headers, s.pid));
    }
  }
  return { ...runs, background };
}

// ------------------------------------------------------------------------------------ phases

async function startBaselineServer(dir, root) {
  const script = join(dir, "baseline-server.mjs");
  await writeFile(script, BASELINE_SERVER);
  const p = spawn(process.execPath, [script, root], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(Number(out.trim()));
    });
    p.on("exit", (code) => reject(new Error(`baseline server exited ${code}`)));
  });
  return { p, port };
}

async function smallFiles(c, ctx) {
  const { v, key, dir, log } = ctx;
  const host = join(dir, "host-files");
  await mkdir(host);
  const fourK = Buffer.alloc(4096, "cairn hot path\n");
  await writeFile(join(host, "one.txt"), "one file\n");
  await writeFile(join(host, "four-k.bin"), fourK);
  await v.files.write("/one.txt", "one file\n");
  await v.files.write("/four-k.bin", fourK);
  const base = await startBaselineServer(dir, host);
  try {
    const auth = { Authorization: `Bearer ${key}` };
    const api = (route, path) => `${c.url}/v1/volumes/${v.id}/files/${route}?path=${encodeURIComponent(path)}`;
    const local = (route, path) => `http://127.0.0.1:${base.port}/${route}?path=${encodeURIComponent(path)}`;
    const check = await (await fetch(api("stat", "/one.txt"), { headers: auth })).json();
    if (check.size !== 9) throw new Error(`stat through the API: ${JSON.stringify(check)}`);
    const statRuns = await wrkPair(log, "stat", { url: api("stat", "/one.txt"), headers: auth, pid: c.serverPid }, { url: local("stat", "/one.txt"), headers: {}, pid: base.p.pid });
    const contentRuns = await wrkPair(log, "4 KiB content", { url: api("content", "/four-k.bin"), headers: auth, pid: c.serverPid }, { url: local("content", "/four-k.bin"), headers: {}, pid: base.p.pid });
    return { stat: statRuns, content: contentRuns };
  } finally {
    base.p.kill("SIGTERM");
  }
}

/** hyperfine in cairnd's mount namespace (where the volume is mounted); median seconds → ms. */
async function hyperfineInNs(c, dir, command, runs, warmup) {
  const out = join(dir, `hyperfine-${Date.now()}.json`);
  await sh("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "hyperfine", "-N", "--style", "none", "--warmup", String(warmup), "--runs", String(runs), "--export-json", out, command]);
  const r = JSON.parse(await readFile(out, "utf8")).results[0];
  await rm(out, { force: true });
  return { ms: r.median * 1000, min: r.min * 1000, max: r.max * 1000, runs };
}

const inNs = (c, script) => sh("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "sh", "-ec", script]);

async function listing(c, ctx) {
  const { cairn, dir, log } = ctx;
  log(`  hotpaths: making a directory of ${LIST_ENTRIES} entries`);
  const vl = await cairn.volumes.create({ name: "hot-list", sizeGb: 4 }); // 4 GiB of ext4: 262,144 inodes
  await vl.files.mkdir("/many");
  await vl.files.mkdir("/few");
  const mount = join(c.dataDir, "mounts", vl.id);
  await inNs(c, `cd '${mount}/many' && seq -f 'f%06g' 1 ${LIST_ENTRIES} | xargs touch && cd '${mount}/few' && seq -f 'f%06g' 1 ${PAGE} | xargs touch`);
  const background = await settle();
  const ls = await hyperfineInNs(c, dir, `ls -l ${mount}/many`, 3, 1);
  log(`  hotpaths: listing ${LIST_ENTRIES} entries, ${PAGE} per page`);
  const pages = [];
  let n = 0;
  let cursor;
  let lastCursor;
  const t0 = now();
  do {
    const t = now();
    const page = await vl.files.list("/many", { limit: PAGE, ...(cursor ? { cursor } : {}) });
    pages.push(now() - t);
    n += page.items.length;
    if (page.nextCursor) lastCursor = page.nextCursor;
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  const total = now() - t0;
  if (n !== LIST_ENTRIES) throw new Error(`listed ${n} entries, expected ${LIST_ENTRIES}`);
  // The first and the last page again, on their own, and the only page of a 1,000-entry directory.
  const first = [];
  const last = [];
  const small = [];
  for (let i = 0; i < 5; i++) {
    let t = now();
    await vl.files.list("/many", { limit: PAGE });
    first.push(now() - t);
    t = now();
    const end = await vl.files.list("/many", { limit: PAGE, cursor: lastCursor });
    last.push(now() - t);
    if (end.nextCursor !== null) throw new Error("the last page has a nextCursor");
    t = now();
    await vl.files.list("/few", { limit: PAGE });
    small.push(now() - t);
  }
  await vl.delete();
  return { ls, total, pages, first, last, small, background };
}

async function nameSearch(c, ctx) {
  const { cairn, dir, log } = ctx;
  log(`  hotpaths: name search over ${SEARCH_DIRS * SEARCH_PER_DIR} files`);
  const vs = await cairn.volumes.create({ name: "hot-search" });
  await vs.files.mkdir("/tree");
  const tree = join(c.dataDir, "mounts", vs.id, "tree");
  await inNs(c, `cd '${tree}' && for d in $(seq 0 ${SEARCH_DIRS - 1}); do mkdir d$d; (cd d$d && seq -f 'f%g.txt' 0 ${SEARCH_PER_DIR - 1} | xargs touch); done`);
  const background = await settle();
  const find = await hyperfineInNs(c, dir, `find ${tree} -name f7.txt`, 10, 2);
  const found = (await inNs(c, `find '${tree}' -name f7.txt`)).trim().split("\n").length;
  const api = [];
  let matches = 0;
  for (let i = 0; i < 12; i++) {
    const t = now();
    const r = await vs.files.search({ path: "/tree", glob: "f7.txt", limit: 10_000 });
    if (i >= 2) api.push(now() - t); // two warm-ups, as hyperfine's
    matches = r.matches.length;
  }
  await vs.delete();
  return { find, api, found, matches, background };
}

async function routed(c, ctx) {
  const { cairn, dir, log } = ctx;
  const appDir = join(dir, "app");
  await writeApp(appDir);
  const hostFs = join(dir, "app-local-fs");
  await mkdir(hostFs);
  const hostPort = await freePort();
  const hostStarts = [];
  for (let i = 0; i < REDEPLOYS; i++) {
    const { p, ms } = await startHostApp({ appDir, localFs: hostFs, port: hostPort });
    hostStarts.push(ms);
    await stopHostApp(p);
  }
  log("  hotpaths: deploying the app");
  const port = Number(new URL(c.url).port);
  const hostHeader = `hot.localhost:${port}`;
  await cairn.deployments.deploy({ app: "hot", data: await appTarball(appDir, 1) });
  const redeploys = [];
  for (let n = 2; n <= REDEPLOYS + 1; n++) {
    const data = await appTarball(appDir, n);
    const t0 = now();
    await cairn.deployments.deploy({ app: "hot", data });
    let r;
    while (!(r = await httpGet(port, hostHeader)).body.startsWith(`deploy #${n} `)) {
      if (now() - t0 > 60_000) throw new Error(`version ${n} not serving after 60 s: ${r.status} ${r.body}`);
      await sleep(2);
    }
    redeploys.push(now() - t0);
  }
  const hostApp = (await startHostApp({ appDir, localFs: hostFs, port: hostPort })).p;
  try {
    const runs = await wrkPair(
      log,
      "routed requests",
      { url: `http://127.0.0.1:${port}/`, headers: { Host: hostHeader }, pid: c.serverPid },
      { url: `http://127.0.0.1:${hostPort}/`, headers: {}, pid: hostApp.pid },
    );
    return { runs, redeploys, hostStarts };
  } finally {
    await stopHostApp(hostApp);
  }
}

// ------------------------------------------------------------------------------------ run

export async function run({ log }) {
  clockTicks = Number((await sh("getconf", ["CLK_TCK"])).trim()) || 100;
  const dir = await scratchDir("hotpaths");
  const logFile = join(dir, "cairnd.log");
  let res;
  try {
    res = await withCairnd(
      // Its default log level, whatever the harness's own default; volumes stay mounted between rows.
      { CAIRN_LOG_LEVEL: DEFAULT_LOG_LEVEL, CAIRN_IDLE_UNMOUNT_MS: "600000" },
      async (c) => {
        const admin = new Cairn({ url: c.url, apiKey: c.adminKey });
        const { apiKey } = await admin.projects.create("hot");
        const cairn = new Cairn({ url: c.url, apiKey: apiKey.key });
        const v = await cairn.volumes.create({ name: "hot-files" });
        const ctx = { cairn, v, key: apiKey.key, dir, log };
        const files = await smallFiles(c, ctx);
        const list = await listing(c, ctx);
        const search = await nameSearch(c, ctx);
        const route = await routed(c, ctx);
        return { files, list, search, route };
      },
      { logFile },
    );
    const st = await stat(logFile);
    const lines = Number((await sh("wc", ["-l", logFile])).trim().split(/\s+/)[0]);
    res.log = { bytes: st.size, lines };
    res.commit = (await sh("git", ["rev-parse", "--short", "HEAD"]).catch(() => "")).trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return report(res);
}

// ------------------------------------------------------------------------------------ report

const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–");
const ratio = (x) => (Number.isFinite(x) ? x.toFixed(2) : "–");
const okRps = (runs) => median(runs.map((r) => r.okRps));
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

function report({ files, list, search, route, log: logStats, commit }) {
  const nonOk = (runs) => `${int(sum(runs.map((r) => r.errors)))} non-2xx of ${int(sum(runs.map((r) => r.total)))}`;
  const F = (ms) => `${fmtMs(ms)} ms`;
  const lastMs = median(list.last);
  const rows = [
    ["`GET …/files/stat` of one file", `${int(okRps(files.stat.cairn))} req/s`, `${int(okRps(files.stat.base))} req/s (Node \`http\` + \`fs.stat\`)`, ratio(okRps(files.stat.cairn) / okRps(files.stat.base))],
    ["`GET …/files/content` of a 4 KiB file", `${int(okRps(files.content.cairn))} req/s`, `${int(okRps(files.content.base))} req/s (Node \`http\` + \`fs.readFile\`)`, ratio(okRps(files.content.cairn) / okRps(files.content.base))],
    [`list ${int(LIST_ENTRIES)} entries, ${int(PAGE)} per page (${list.pages.length} pages)`, F(list.total), `${F(list.ls.ms)} (\`ls -l\`)`, ratio(list.ls.ms / list.total)],
    [`one page of ${int(PAGE)}: first / last of the ${int(LIST_ENTRIES)}`, `${F(median(list.first))} / ${F(lastMs)}`, `${F(median(list.small))} (the only page of a ${int(PAGE)}-entry directory)`, ratio(median(list.small) / lastMs)],
    [`name search, ${int(SEARCH_DIRS * SEARCH_PER_DIR)} files (\`glob: "f7.txt"\`)`, F(median(search.api)), `${F(search.find.ms)} (\`find -name\`)`, ratio(search.find.ms / median(search.api))],
    ["routed `GET /` to a deployed app", `${int(okRps(route.runs.cairn))} 2xx/s (${nonOk(route.runs.cairn)})`, `${int(okRps(route.runs.base))} 2xx/s, app on the host (${nonOk(route.runs.base)})`, ratio(okRps(route.runs.cairn) / okRps(route.runs.base))],
    ["redeploy → new version answers", F(median(route.redeploys)), `${F(median(route.hostStarts))} (the app's own start → first 200)`, ratio(median(route.hostStarts) / median(route.redeploys))],
  ];
  const header = ["operation", "Cairn", "baseline", "ratio"];

  const wrkHeader = ["row", "side", "run", "req/s", "2xx/s", "p50 ms", "p99 ms", "non-2xx", "socket errors", "server CPU µs/req", "background cores"];
  const wrkRows = [];
  for (const [label, r] of [["stat", files.stat], ["4 KiB content", files.content], ["routed", route.runs]]) {
    for (const side of ["cairn", "base"])
      r[side].forEach((w, i) =>
        wrkRows.push([label, side === "cairn" ? "Cairn" : "baseline", String(i + 1), int(w.rps), int(w.okRps), fmtMs(w.p50), fmtMs(w.p99), int(w.errors), w.socketErrors, int(w.cpuUsPerReq), r.background.toFixed(2)]),
      );
  }
  const pageMs = list.pages;
  const reading =
    `Against the minimal baselines, Cairn serves ${ratio(okRps(files.stat.cairn) / okRps(files.stat.base))} of the requests/s for a stat and ${ratio(okRps(files.content.cairn) / okRps(files.content.base))} for a 4 KiB read; ` +
    `it lists ${int(LIST_ENTRIES)} entries in ${ratio(list.total / list.ls.ms)} times the time of \`ls -l\`, and a page of that directory costs ${ratio(lastMs / median(list.small))} times a page of a ${int(PAGE)}-entry one; ` +
    `a name search takes ${ratio(median(search.api) / search.find.ms)} times the time of \`find\`; through the router the app serves ${ratio(okRps(route.runs.cairn) / okRps(route.runs.base))} of its own 2xx/s, ` +
    `with ${int(sum(route.runs.cairn.map((r) => r.errors)))} non-2xx answers in ${WRK_REPEATS} runs; a redeploy takes ${ratio(median(route.redeploys) / median(route.hostStarts))} times the app's own start-up.`;
  const notes = [
    `**ratio** is Cairn's speed relative to the baseline (1.00 = as fast, 0.25 = a quarter of its requests/s or four times its time); for the page row, the reference page's time over the last page's (1.00 = a page costs the same whatever the directory's size).`,
    `wrk ${WRK_ARGS.join(" ")} on loopback, ${WRK_REPEATS} runs per side, interleaved (the order alternating), after a 1 s warm-up of each side; the table gives the median run. wrk, cairnd and the baseline share the machine's ${cpus().length} cores, so requests/s is bounded by CPU. "server CPU µs/req" is the user+system time of the server process alone (cairnd; the baseline Node server; the host's python3) over the requests wrk made; for the routed row cairnd's share excludes the app, its socat bridge and the sandbox.`,
    `"background cores": CPU used by all processes during the 1 s before the row (the bench's own idle), after waiting up to 30 s for it to drop below 0.5 cores; other agents' work shares this machine.`,
    `Requests carry a project's API key (\`Authorization: Bearer\`, looked up per request); the baseline has no authentication, no path resolution inside a volume, no volume lease, and its files are on the host disk (Cairn's: ext4 volume image on a direct-I/O loop device in the XFS pool image on the same disk). Both warm.`,
    `cairnd logged at its default level (\`${DEFAULT_LOG_LEVEL}\`) to a file: ${int(logStats.lines)} lines, ${(logStats.bytes / 1e6).toFixed(0)} MB during the bench. Idle unmount 10 min, so mounting is not part of any row.`,
    `Listing: pages timed through the SDK (\`files.list\`, following \`nextCursor\`): per page median ${F(median(pageMs))}, min ${F(Math.min(...pageMs))}, max ${F(Math.max(...pageMs))}; in the full pass the first page took ${F(pageMs[0])} and the last ${F(pageMs.at(-1))}. The page row repeats the first, the last and the reference page 5 times each (medians). \`ls -l\`: hyperfine -N, 1 warm-up + 3 runs, median (${F(list.ls.min)}–${F(list.ls.max)}), output to /dev/null, in cairnd's mount namespace on the volume's mount; background before the listing ${list.background.toFixed(2)} cores.`,
    `Name search: ${SEARCH_DIRS} directories × ${SEARCH_PER_DIR} empty files on a volume; the API returned ${search.matches} matches, \`find\` ${search.found}. API: median of 10 after 2 warm-ups; \`find\`: hyperfine -N, 2 warm-ups + 10 runs, median (${F(search.find.min)}–${F(search.find.max)}), in cairnd's mount namespace; background ${search.background.toFixed(2)} cores.`,
    `Routed: the Python \`http.server\` app of bench/deploys.js (HTTP/1.0, a new connection to the app per request), reached with \`Host: hot.localhost:<port>\`; the baseline is the same main.py started on the host. Redeploy: ${REDEPLOYS} redeploys, from the deploy call (tarball in memory) until a GET through the router returns the new version (max ${F(Math.max(...route.redeploys))}); the app's start on the host: ${REDEPLOYS} starts, median (max ${F(Math.max(...route.hostStarts))}).`,
    commit ? `Code measured: commit ${commit}.` : "",
  ].filter(Boolean);
  const markdown = [mdTable(header, rows, "lrrr"), "", `**Reading:** ${reading}`, "", "### wrk runs", "", mdTable(wrkHeader, wrkRows, "lllrrrrrlrr"), "", ...notes.map((n) => `- ${n}`)].join("\n");
  const plain = (r) => r.map((x) => x.replace(/\*\*|`/g, ""));
  const text = [textTable(header, rows.map(plain), "lrrr"), "", textTable(wrkHeader, wrkRows, "lllrrrrrlrr"), "", reading, "", ...notes.map((n) => n.replace(/\*\*|`/g, ""))].join("\n");
  return { markdown, text };
}
