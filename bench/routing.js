/**
 * The deployment router's cost, and how long a redeploy takes, each against the same app's own
 * numbers in the same run.
 *
 * Router: `wrk` through cairnd (Host: <app>.localhost) vs `wrk` straight at the same app process
 * — run inside the sandbox's network namespace (`nsenter -t <app pid> -n wrk …`), so both hit
 * the very process that serves, on the same kernel loopback. Two apps: the Python
 * `http.server` app of the deployments test (HTTP/1.0: a new connection per request) and a
 * Node `http` app (HTTP/1.1 keep-alive: connections are reused). Runs are interleaved.
 *
 * Redeploy: `deployments.deploy` of the Python app until a GET through the router answers the
 * new version (a second apart, so that one redeploy's background work, the old version stopping
 * and the warm pool refilling, is not timed in the next), vs starting the same main.py on the
 * host until its first 200, and inside the app's sandbox (no exec into it: a Python poller there
 * starts it). Then more redeploys, untimed, while 4 clients loop GETs through the router and
 * count every answer that is not a 200.
 */
import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, request, Agent } from "node:http";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { fmtMs, mdTable, median, now, scratchDir, sh, sleep, textTable, withCairnd } from "./lib.js";
// The deployments test's app; APP_DIR lets the same file run on the host.
import { MAIN_PY } from "./deploys.js";

export const name = "routing";
export const title = "Deployment router and redeploy";

const REDEPLOYS = Number(process.env.CAIRN_BENCH_REDEPLOYS ?? 5);
const WRK_REPEATS = Number(process.env.CAIRN_BENCH_WRK_REPEATS ?? 5);
const WRK_ARGS = ["-t2", "-c16", `-d${process.env.CAIRN_BENCH_WRK_SECONDS ?? 5}s`, "--latency"];

const SERVER_JS = `require("http").createServer((q, s) => s.end("node ok")).listen(process.env.PORT, "127.0.0.1");`;
// Inside the sandbox: start main.py on another port and poll it, as the host baseline does.
const START_IN_SANDBOX_PY = `import os, subprocess, time, urllib.request
os.makedirs("/tmp/fs", exist_ok=True)
env = dict(os.environ, PORT="8081", CAIRN_LOCAL_FS="/tmp/fs")
for _ in range(REPEATS):
    t0 = time.perf_counter()
    p = subprocess.Popen(["python3", "main.py"], cwd="/data/app", env=env)
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:8081/").read()
            break
        except OSError:
            time.sleep(0.002)
    print((time.perf_counter() - t0) * 1000)
    p.terminate(); p.wait()
`;

const agent = new Agent({ keepAlive: true });

function get(port, host) {
  return new Promise((resolve) => {
    const r = request({ host: "127.0.0.1", port, path: "/", agent, headers: host ? { host } : {} }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", () => resolve({ status: 0, body: "" }));
    });
    r.on("error", () => resolve({ status: 0, body: "" }));
    r.end();
  });
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** The host pid of the process that runs the app: its environment names the app. */
async function appPid(app, command) {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const [environ, cmdline] = await Promise.all([readFile(`/proc/${entry}/environ`, "latin1"), readFile(`/proc/${entry}/cmdline`, "latin1")]);
      if (environ.split("\0").includes(`CAIRN_APP=${app}`) && cmdline.split("\0").join(" ").includes(command)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no process runs ${command} for ${app}`);
}

function parseWrk(out) {
  const toMs = (v, unit) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? NaN);
  const lat = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const [, total, secs, unit] = /(\d+) requests in ([\d.]+)(m?s)/.exec(out) ?? [];
  const seconds = Number(secs) / (unit === "ms" ? 1000 : 1);
  return { okRps: (Number(total) - non2xx) / seconds, total: Number(total), p50: lat(50), p99: lat(99), non2xx, socketErrors };
}

export async function run({ log }) {
  const dir = await scratchDir("routing");
  let hostApp;
  try {
    const appDir = join(dir, "app");
    await mkdir(appDir);
    await writeFile(join(appDir, "main.py"), MAIN_PY);
    const tarOf = async (n) => {
      await writeFile(join(appDir, "version.txt"), String(n));
      return Buffer.from(await sh("tar", ["-czf", "-", "-C", appDir, "main.py", "version.txt"], { encoding: "latin1" }), "latin1");
    };
    const nodeDir = join(dir, "node");
    await mkdir(nodeDir);
    await writeFile(join(nodeDir, "server.js"), SERVER_JS);
    const nodeTar = Buffer.from(await sh("tar", ["-czf", "-", "-C", nodeDir, "."], { encoding: "latin1" }), "latin1");

    // The app's own start, on the host: spawn → first 200.
    const hostFs = join(dir, "local-fs");
    await mkdir(hostFs);
    const hostPort = await freePort();
    const hostStarts = [];
    for (let i = 0; i < REDEPLOYS; i++) {
      const t0 = now();
      const p = spawn("/usr/bin/python3", ["main.py"], { cwd: appDir, env: { ...process.env, PORT: String(hostPort), CAIRN_LOCAL_FS: hostFs, APP_DIR: appDir }, stdio: "ignore" });
      hostApp = p;
      while ((await get(hostPort)).status !== 200) {
        if (p.exitCode !== null) throw new Error(`host main.py exited ${p.exitCode}`);
        await sleep(2);
      }
      hostStarts.push(now() - t0);
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    }

    return await withCairnd({}, async (c) => {
      const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
      const port = Number(new URL(c.url).port);
      await cairn.deployments.deploy({ app: "py", data: await tarOf(1) });
      await cairn.deployments.deploy({ app: "nodeapp", data: nodeTar, cmd: "node server.js" });

      const pyHost = `py.localhost:${port}`;
      const redeploy = { call: [], serving: [] };
      for (let n = 2; n <= REDEPLOYS + 1; n++) {
        const data = await tarOf(n);
        await sleep(1000);
        const t0 = now();
        await cairn.deployments.deploy({ app: "py", data });
        const t1 = now();
        let r;
        while (!(r = await get(port, pyHost)).body.startsWith(`deploy #${n} `)) {
          if (now() - t0 > 60_000) throw new Error(`version ${n} not serving after 60 s: ${r.status} ${r.body}`);
          await sleep(1);
        }
        redeploy.call.push(t1 - t0);
        redeploy.serving.push(now() - t0);
      }
      const [serving] = await cairn.deployments.list({ app: "py" });
      const sandbox = await cairn.sandboxes.get(serving.sandbox);
      const inSandbox = await sandbox.exec(`python3 -c '${START_IN_SANDBOX_PY.replace("REPEATS", String(REDEPLOYS)).replaceAll("'", "'\\''")}'`);
      if (inSandbox.exitCode !== 0) throw new Error(`starting main.py in the sandbox failed: ${inSandbox.stderr}`);
      const sandboxStarts = inSandbox.stdout.trim().split("\n").map(Number);

      // More redeploys, untimed, with clients looping GETs through the router all along.
      const looping = { ok: 0, bad: {}, stop: false, redeploys: 0 };
      const loops = Array.from({ length: 4 }, async () => {
        while (!looping.stop) {
          const r = await get(port, pyHost);
          if (r.status === 200) looping.ok++;
          else looping.bad[r.status] = (looping.bad[r.status] ?? 0) + 1;
        }
      });
      for (let n = REDEPLOYS + 2; n <= 2 * REDEPLOYS + 1; n++, looping.redeploys++) await cairn.deployments.deploy({ app: "py", data: await tarOf(n) });
      looping.stop = true;
      await Promise.all(loops);
      log(`  routing: ${REDEPLOYS} redeploys done; wrk`);

      const wrk = {};
      for (const [app, command] of [
        ["py", "main.py"],
        ["nodeapp", "server.js"],
      ]) {
        const pid = await appPid(app, command);
        const host = `${app}.localhost:${port}`;
        wrk[app] = { router: [], direct: [] };
        await sh("wrk", ["-t1", "-c4", "-d1s", "-H", `Host: ${host}`, `http://127.0.0.1:${port}/`]); // warm-up
        for (let i = 0; i < WRK_REPEATS; i++) {
          wrk[app].router.push(parseWrk(await sh("wrk", [...WRK_ARGS, "-H", `Host: ${host}`, `http://127.0.0.1:${port}/`])));
          wrk[app].direct.push(parseWrk(await sh("nsenter", ["-t", String(pid), "-n", "wrk", ...WRK_ARGS, "http://127.0.0.1:8080/"])));
        }
      }
      return report({ hostStarts, sandboxStarts, redeploy, looping, wrk });
    });
  } finally {
    if (hostApp && hostApp.exitCode === null) hostApp.kill("SIGTERM");
    agent.destroy();
    await sleep(100);
    await rm(dir, { recursive: true, force: true });
  }
}

function report({ hostStarts, sandboxStarts, redeploy, looping, wrk }) {
  const serving = median(redeploy.serving);
  const start = median(hostStarts);
  const rows = [
    ["redeploy: `deployments.deploy` returns", String(redeploy.call.length), fmtMs(median(redeploy.call)), fmtMs(Math.max(...redeploy.call))],
    ["**redeploy: upload → new version answers through the router**", String(redeploy.serving.length), fmtMs(serving), fmtMs(Math.max(...redeploy.serving))],
    ["**the app's own start: `python3 main.py` on the host → first 200**", String(hostStarts.length), fmtMs(start), fmtMs(Math.max(...hostStarts))],
    ["the same inside the app's sandbox (started there, no exec)", String(sandboxStarts.length), fmtMs(median(sandboxStarts)), fmtMs(Math.max(...sandboxStarts))],
  ];
  const wrkHeader = ["app", "path", "run", "2xx/s", "p50 ms", "p99 ms", "non-2xx", "socket errors"];
  const wrkRows = [];
  const ratios = [];
  for (const [app, w] of Object.entries(wrk)) {
    for (const kind of ["router", "direct"])
      w[kind].forEach((x, i) =>
        wrkRows.push([app, kind === "router" ? "wrk → cairnd router → app" : "wrk → app (in its netns)", String(i + 1), x.okRps.toFixed(0), fmtMs(x.p50), fmtMs(x.p99), String(x.non2xx), String(x.socketErrors)]),
      );
    const r = median(w.router.map((x) => x.okRps));
    const d = median(w.direct.map((x) => x.okRps));
    const bad = w.router.reduce((a, x) => a + x.non2xx + x.socketErrors, 0);
    ratios.push(`${app}: router ${r.toFixed(0)} vs direct ${d.toFixed(0)} 2xx/s (${Math.round((r / d) * 100)}%), ${bad} non-2xx or socket errors through the router`);
  }
  const reading =
    `Redeploy until the new version answers: ${fmtMs(serving)} ms vs the app's own start ${fmtMs(start)} ms (${(serving / start).toFixed(1)}×); ` +
    `4 clients looping through ${looping.redeploys} more redeploys got ${looping.ok} × 200 and ${JSON.stringify(looping.bad)} otherwise. Router: ${ratios.join("; ")}.`;
  const notes = [
    `wrk ${WRK_ARGS.join(" ")}, ${WRK_REPEATS} runs per path, interleaved, medians; wrk, cairnd and the app share the same 2 cores. "direct" runs wrk inside the sandbox's network namespace against the process the router reaches.`,
    `Apps: "py" is the deployments test's Python http.server (HTTP/1.0, so every request is a new connection to the app, routed or not); "nodeapp" is Node's http answering "node ok" (HTTP/1.1 keep-alive).`,
  ];
  const header = ["step", "n", "median ms", "max ms"];
  return {
    markdown: [mdTable(header, rows, "lrrr"), "", mdTable(wrkHeader, wrkRows, "llrrrrrr"), "", `**Reading:** ${reading}`, "", ...notes.map((n) => `- ${n}`)].join("\n"),
    text: [textTable(header, rows.map((r) => r.map((x) => x.replace(/\*\*|`/g, ""))), "lrrr"), "", textTable(wrkHeader, wrkRows, "llrrrrrr"), "", reading, "", ...notes].join("\n"),
  };
}
