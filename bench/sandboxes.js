/**
 * Sandbox create → first exec latency, and a small-file workload on a volume (issue 4).
 *
 * Cairn: `cairn.sandboxes.create({ volumes })` with 0, 1 and 4 volumes, then `sb.exec("true")`,
 * then `sb.kill()` (timed apart), on two cairnds: one with the warm pool (the default) and one
 * without. The volumes are created (and first mounted) once, before the timed runs, and reused.
 *
 * Baselines, same run and interleaved round by round: `crun run` of the same bundle (a copy of a
 * Cairn sandbox's own bundle, volume binds included, running /usr/bin/true), and `crun run` of a
 * minimal `crun spec` bundle.
 *
 * Small files: `for i in $(seq 1 N); do echo $i > f$i; done` in a fresh directory, inside a
 * sandbox on a volume (through `sb.exec`) vs the same `sh -c` on the host disk (execFile).
 */
import { mkdir, rm, symlink, writeFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Cairn } from "@cairn/sdk";
import { cgroupPrefix, MOUNT_HELPER } from "../packages/server/dist/src/sandboxes/crun-driver.js";
import { fmtMs, fmtPct, mdTable, median, now, scratchDir, sh, summarize, textTable, withCairnd } from "./lib.js";

export const name = "sandboxes";
export const title = "Sandbox create → first exec, small files on a volume";

const RUNS = Number(process.env.CAIRN_BENCH_SANDBOX_RUNS ?? 20);
const WARMUP = 2;
const FILES = Number(process.env.CAIRN_BENCH_SMALL_FILES ?? 5000);
const FILE_REPEATS = 5;
const VOLUME_COUNTS = [0, 1, 4];

async function makeBundle(dir) {
  const bundle = join(dir, "bundle");
  const rootfs = join(bundle, "rootfs");
  for (const d of ["usr", "etc", "proc", "dev", "sys", "tmp"]) await mkdir(join(rootfs, d), { recursive: true });
  for (const l of ["bin", "lib", "lib64", "sbin"]) await symlink(`usr/${l}`, join(rootfs, l)).catch(() => undefined);
  await sh("crun", ["spec", "--rootless=false"], { cwd: bundle }).catch(() => sh("crun", ["spec"], { cwd: bundle }));
  const spec = JSON.parse(await readFile(join(bundle, "config.json"), "utf8"));
  spec.process.terminal = false;
  spec.process.args = ["/usr/bin/true"];
  spec.root = { path: "rootfs", readonly: true };
  spec.mounts.push(
    { destination: "/usr", type: "bind", source: "/usr", options: ["rbind", "ro"] },
    { destination: "/etc", type: "bind", source: "/etc", options: ["rbind", "ro"] },
    { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev"] },
  );
  await writeFile(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
  return bundle;
}

async function crunOnce(dir, bundle, i) {
  const t0 = now();
  await sh("crun", ["--root", join(dir, "state"), "run", "-b", bundle, `cairn-bench-${i}`]);
  return now() - t0;
}

async function hostSmallFiles(dir, k, sub = "") {
  const d = join(dir, sub, `files-${k}`);
  await mkdir(d);
  const t0 = now();
  await sh("sh", ["-c", `cd ${d} && for i in $(seq 1 ${FILES}); do echo $i > f$i; done`]);
  const ms = now() - t0;
  await rm(d, { recursive: true, force: true });
  return ms;
}

/** Run a command in a cairnd's mount namespace (nsenter execs it: no extra fork). */
function inNs(c, file, args) {
  return sh("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", file, ...args]);
}

/**
 * The same bundle, raw: a copy of a cold-started Cairn sandbox's directory (rootfs, overlay
 * dirs, its config.json with its user namespace, seccomp, limits), its process replaced by
 * /usr/bin/true and its cgroup renamed, run with `crun run` in cairnd's namespace. The sandbox's
 * directory is its disk, mounted where crun reaches it (/run/cairn-<prefix>/sandboxes); the copy
 * gets idmapped /usr and /etc lowers of its own, as Cairn makes them. Volumes are hot-plugged
 * into a sandbox with a user namespace after it starts, so the raw copy runs without them.
 */
async function captureBundle(c, id, n) {
  const sandboxes = `/run/${cgroupPrefix(c.dataDir)}/sandboxes`;
  const from = join(sandboxes, id);
  const to = join(sandboxes, `bench-raw-${n}`);
  await inNs(c, "cp", ["-ax", from, to]);
  const config = JSON.parse((await inNs(c, "cat", [join(to, "config.json")])));
  const text = JSON.stringify({
    ...config,
    process: { ...config.process, args: ["/usr/bin/true"] },
    linux: { ...config.linux, cgroupsPath: `/cairn-bench-raw/${n}` },
  }).replaceAll(from, to);
  await sh("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "python3", "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", join(to, "config.json"), text]);
  const base = config.linux.uidMappings?.[0]?.hostID;
  if (base !== undefined) {
    const etcSource = (await inNs(c, "sh", ["-c", `ls -d ${join(c.dataDir, "pool", "templates")}/etc-* | head -1`])).trim();
    for (const [sub, source] of [["usr", "/usr"], ["etc", etcSource]]) {
      await inNs(c, MOUNT_HELPER, ["idmap", source, join(to, "lower", sub), String(base), "65536"]);
    }
  }
  return to;
}

/** Undo captureBundle: its idmapped lowers, then the copy. */
async function dropBundle(c, bundle) {
  for (const sub of ["usr", "etc"]) await inNs(c, "umount", [join(bundle, "lower", sub)]).catch(() => undefined);
  await inNs(c, "rm", ["-rf", bundle]);
}

async function rawSameBundle(c, bundle, i) {
  const t0 = now();
  await inNs(c, "crun", ["--root", join(c.dataDir, "run", "bench-crun"), "run", "-b", bundle, `bench-raw-${i}`]);
  return now() - t0;
}

async function waitWarm(cairn) {
  for (let i = 0; i < 400; i++) {
    const h = await cairn.health();
    if (h.warmSandboxes.ready >= h.warmSandboxes.target) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the warm pool did not refill in 10 s");
}

export async function run({ log }) {
  const dir = await scratchDir("sandboxes");
  try {
    // crun refuses the v1/v2 hybrid's unified hierarchy; run.js's namespace is private, so hiding it here does not touch the host.
    await sh("umount", ["/sys/fs/cgroup/unified"]).catch(() => undefined);
    const bundle = await makeBundle(dir);
    for (let i = 0; i < WARMUP; i++) await crunOnce(dir, bundle, `w${i}`);

    const result = await withCairnd({ CAIRN_WARM_SANDBOXES: "0", CAIRN_IDLE_UNMOUNT_MS: "600000" }, (cold) =>
      withCairnd({ CAIRN_WARM_SANDBOXES: "2", CAIRN_IDLE_UNMOUNT_MS: "600000" }, async (warm) => {
        const modes = { warm, cold };
        const clients = {};
        const volumes = {};
        for (const [mode, c] of Object.entries(modes)) {
          clients[mode] = new Cairn({ url: c.url, apiKey: c.adminKey });
          volumes[mode] = [];
          for (let i = 0; i < 4; i++) {
            const v = await clients[mode].volumes.create({ name: `bench-sb-${mode}-${i}` });
            await v.files.write("/hello.txt", "hi");
            volumes[mode].push(v);
          }
        }
        // The raw bundles: one cold-started sandbox per volume count, copied while it runs.
        const bundles = {};
        for (const n of VOLUME_COUNTS) {
          const sb = await clients.cold.sandboxes.create({ volumes: volumes.cold.slice(0, n).map((v, j) => v.mount(`/v${j}`)) });
          bundles[n] = await captureBundle(cold, sb.id, n);
          await sb.kill();
        }
        const m = {};
        for (const n of VOLUME_COUNTS) {
          m[n] = { raw: [], minimal: [] };
          for (const mode of Object.keys(modes)) m[n][mode] = { create: [], exec: [], total: [], kill: [] };
        }
        const once = async (mode, n, record) => {
          if (mode === "warm") await waitWarm(clients.warm);
          const t0 = now();
          const sb = await clients[mode].sandboxes.create({ volumes: volumes[mode].slice(0, n).map((v, j) => v.mount(`/v${j}`)) });
          const t1 = now();
          let t2;
          try {
            const r = await sb.exec("true");
            t2 = now();
            if (r.exitCode !== 0) throw new Error(`exec true exited ${r.exitCode}: ${r.stderr}`);
          } finally {
            const t3 = now();
            await sb.kill();
            if (record) m[n][mode].kill.push(now() - t3);
          }
          if (record) {
            m[n][mode].create.push(t1 - t0);
            m[n][mode].exec.push(t2 - t1);
            m[n][mode].total.push(t2 - t0);
          }
        };
        for (let i = 0; i < WARMUP; i++) {
          for (const n of VOLUME_COUNTS) {
            await rawSameBundle(cold, bundles[n], `w${n}-${i}`);
            for (const mode of Object.keys(modes)) await once(mode, n, false);
          }
        }
        for (let i = 0; i < RUNS; i++) {
          for (const n of VOLUME_COUNTS) {
            await waitWarm(clients.warm);
            m[n].minimal.push(await crunOnce(dir, bundle, `${n}-${i}`));
            m[n].raw.push(await rawSameBundle(cold, bundles[n], `${n}-${i}`));
            for (const mode of Object.keys(modes)) await once(mode, n, true);
          }
          if ((i + 1) % 5 === 0) log(`  sandboxes: ${i + 1}/${RUNS} rounds`);
        }
        const nsenterTrue = [];
        for (let i = 0; i < 10; i++) {
          const t0 = now();
          await inNs(cold, "true", []);
          nsenterTrue.push(now() - t0);
        }
        for (const n of VOLUME_COUNTS) await dropBundle(cold, bundles[n]);
        for (const ctl of ["memory", "pids", "cpu,cpuacct", "blkio", "devices", "freezer", "cpuset", "systemd", "net_cls,net_prio", "perf_event", "hugetlb", "rdma", "misc"]) {
          for (const n of VOLUME_COUNTS) await sh("rmdir", [`/sys/fs/cgroup/${ctl}/cairn-bench-raw/${n}`]).catch(() => undefined);
          await sh("rmdir", [`/sys/fs/cgroup/${ctl}/cairn-bench-raw`]).catch(() => undefined);
        }

        // Small files: one sandbox with one volume, a fresh directory per repeat; host runs interleaved.
        const cairn = clients.warm;
        const files = { cairn: [], host: [], loop: [] };
        // Second baseline: what a volume is without Cairn, an ext4 image (cairnd's mkfs options) loop-mounted from the host disk.
        await sh("truncate", ["-s", "1G", join(dir, "loop.img")]);
        await sh("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", join(dir, "loop.img")]);
        await mkdir(join(dir, "loop"));
        await sh("mount", ["-o", "loop", join(dir, "loop.img"), join(dir, "loop")]);
        const sb = await cairn.sandboxes.create({ volumes: [volumes.warm[0].mount("/v")] });
        try {
          await sb.exec(`mkdir -p /v/w && cd /v/w && for i in $(seq 1 ${FILES}); do echo $i > f$i; done && rm -rf /v/w`); // warm-up
          await hostSmallFiles(dir, "w");
          await hostSmallFiles(dir, "w", "loop");
          for (let k = 0; k < FILE_REPEATS; k++) {
            const t0 = now();
            const r = await sb.exec(`mkdir /v/r${k} && cd /v/r${k} && for i in $(seq 1 ${FILES}); do echo $i > f$i; done`);
            files.cairn.push(now() - t0);
            if (r.exitCode !== 0) throw new Error(`small-file loop exited ${r.exitCode}: ${r.stderr}`);
            files.host.push(await hostSmallFiles(dir, k));
            files.loop.push(await hostSmallFiles(dir, k, "loop"));
          }
          const count = (await sb.exec(`ls /v/r0 | wc -l`)).stdout.trim();
          if (Number(count) !== FILES) throw new Error(`expected ${FILES} files in the volume, found ${count}`);
          files.execOverhead = [];
          for (let k = 0; k < 10; k++) {
            const t0 = now();
            await sb.exec("true");
            files.execOverhead.push(now() - t0);
          }
        } finally {
          await sb.kill();
        }
        for (const mode of Object.keys(modes)) for (const v of volumes[mode]) await v.delete();
        return { m, files, nsenterTrue };
      }),
    );
    return report(result);
  } finally {
    await sh("umount", [join(dir, "loop")]).catch(() => undefined);
    await sh("crun", ["--root", join(dir, "state"), "list", "-q"])
      .then(async (ids) => {
        for (const id of ids.split("\n").filter(Boolean)) await sh("crun", ["--root", join(dir, "state"), "delete", "-f", id]).catch(() => undefined);
      })
      .catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

function report({ m, files, nsenterTrue }) {
  const header = ["", "step", "n", "p50 ms", "p90 ms", "max ms", "p50 vs raw (same bundle)"];
  const row = (who, step, values, raw) => {
    const s = summarize(values);
    return [who, step, String(s.n), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.max), raw ? `${(s.p50 / summarize(raw).p50).toFixed(1)}×` : ""];
  };
  const rows = [];
  for (const n of VOLUME_COUNTS) {
    const raw = m[n].raw;
    rows.push(row(`${n} vol`, "**raw `crun run` of the same bundle** (`/usr/bin/true`)", raw, raw));
    rows.push(row(`${n} vol`, "raw `crun run` of a minimal `crun spec` bundle", m[n].minimal, raw));
    for (const [mode, label] of [["warm", "Cairn, warm pool"], ["cold", "Cairn, no pool"]]) {
      rows.push(row(`${n} vol`, `${label}: create (\`POST /v1/sandboxes\`)`, m[n][mode].create));
      rows.push(row(`${n} vol`, `${label}: first \`exec true\``, m[n][mode].exec));
      rows.push(row(`${n} vol`, `**${label}: create → first exec done**`, m[n][mode].total, raw));
      rows.push(row(`${n} vol`, `${label}: kill (not in the total)`, m[n][mode].kill));
    }
  }
  const fc = median(files.cairn);
  const fh = median(files.host);
  const fl = median(files.loop);
  const fileRows = [
    ["Cairn", `\`sb.exec\` in a sandbox, volume at /v`, String(files.cairn.length), fmtMs(fc), String(Math.round(FILES / (fc / 1000))), fmtPct(fh / fc)],
    ["host", "`sh -c` from Node, host disk (/tmp, ext4)", String(files.host.length), fmtMs(fh), String(Math.round(FILES / (fh / 1000))), "100%"],
    ["host", "`sh -c` from Node, ext4 image loop-mounted from the host disk", String(files.loop.length), fmtMs(fl), String(Math.round(FILES / (fl / 1000))), fmtPct(fh / fl)],
  ];
  const fileHeader = ["", "where", "n", "median ms", "files/s", "speed vs host"];
  const p50 = (v) => summarize(v).p50;
  const ratio = (n, mode) => `${(p50(m[n][mode].total) / p50(m[n].raw)).toFixed(1)}×`;
  const reading =
    `Create → first exec p50 with the warm pool: ${VOLUME_COUNTS.map((n) => `${fmtMs(p50(m[n].warm.total))} ms with ${n} volume${n === 1 ? "" : "s"} (${ratio(n, "warm")})`).join(", ")} ` +
    `of a raw \`crun run\` of the same bundle (p50 ${VOLUME_COUNTS.map((n) => fmtMs(p50(m[n].raw))).join(" / ")} ms; the issue's target is ≤ 2×). ` +
    `Without a pool: ${VOLUME_COUNTS.map((n) => `${fmtMs(p50(m[n].cold.total))} ms (${ratio(n, "cold")})`).join(", ")}. ` +
    `Writing ${FILES} small files in a sandbox on a volume runs at ${fmtPct(fh / fc)} of the host disk's speed (${fmtMs(fc)} vs ${fmtMs(fh)} ms; target ≥ 80%) and at ${fmtPct(fl / fc)} of a plain loop-mounted ext4 image's (${fmtMs(fl)} ms).`;
  const notes = [
    `Two cairnds in the same run: one with the warm pool (\`CAIRN_WARM_SANDBOXES=2\`, the default), one without (\`0\`). ${RUNS} rounds after ${WARMUP} warm-up rounds; in each round and for 0, 1 and 4 volumes: the minimal raw run, the same-bundle raw run, then one sandbox from each cairnd, so all see the same load. ` +
      `Before every raw run and every warm-pool create the bench waits until the pool is full again (\`GET /healthz\` → \`warmSandboxes\`): the warm rows are the latency at a create rate the pool sustains (here one per ~50 ms of refill); a burst beyond the pool's size gets the no-pool numbers for the excess.`,
    `Warm pool: the create takes a started \`base\` sandbox, hot-plugs the volumes (one helper process: \`open_tree\` clone with the sandbox's flags, \`move_mount\` inside the sandbox's namespace) and sets the requested limits if they differ (not here); a replacement starts in the background at nice 19, so it may overlap the first exec. ` +
      `No pool: the create prepares the sandbox's directories and runs \`crun run --detach\` with the volumes bound in the bundle.`,
    `Same-bundle baseline: the directory of a cold-started Cairn sandbox with 0, 1 or 4 volumes (writable rootfs, /usr and /etc overlays, seccomp profile, memory and pids limits, the volume binds) copied, its process replaced by \`/usr/bin/true\`, ` +
      `run by \`crun run\` (to completion, then deleted) in cairnd's mount namespace through \`nsenter\`, which adds one exec (\`nsenter true\` p50 ${fmtMs(p50(nsenterTrue))} ms). ` +
      `Minimal bundle: \`crun spec\` defaults with the host's /usr and /etc bound read-only, run from the bench's own namespace: no overlay, no limits, no seccomp profile beyond crun's default, a floor rather than an equivalent.`,
    `Volumes: 1 GiB ext4, created and first mounted before the timed runs (idle unmount 10 min); every create attaches them afresh and \`kill\` detaches them. Client and both cairnds share the machine's 2 cores.`,
    `Small files (warm-pool cairnd): \`for i in $(seq 1 ${FILES}); do echo $i > f$i; done\` in a fresh directory, no fsync in either; the Cairn time includes one exec round trip (\`exec true\` on the same sandbox: p50 ${fmtMs(summarize(files.execOverhead).p50)} ms). ` +
      `The host disk's own ext4 (/ on /dev/vda, mounted with \`discard,resv_strict\`) is unusually slow at creating files on this machine: nearly all of its time is system time (about 0.3 ms per create, measured with /usr/bin/time), ` +
      `so the loop-mounted ext4 image (cairnd's mkfs options, \`mount -o loop\`, no direct I/O, on that same disk) is the fairer baseline for the volume. ` +
      `The shell is the host's dash in both (the sandbox sees the host's /usr). Repeats interleaved: ${FILE_REPEATS} each after one warm-up.`,
  ];
  return {
    markdown: [
      mdTable(header, rows, "llrrrrr"),
      "",
      `### ${FILES} small files`,
      "",
      mdTable(fileHeader, fileRows, "llrrrr"),
      "",
      `**Reading:** ${reading}`,
      "",
      ...notes.map((n) => `- ${n}`),
    ].join("\n"),
    text: [
      textTable(header, rows.map((x) => x.map((y) => y.replace(/\*\*|`/g, ""))), "llrrrrr"),
      "",
      textTable(fileHeader, fileRows.map((x) => x.map((y) => y.replace(/`/g, ""))), "llrrrr"),
      "",
      reading,
    ].join("\n"),
  };
}
