/**
 * Sandbox create → first exec latency, and a small-file workload on a volume (issue 4).
 *
 * Cairn: `cairn.sandboxes.create({ volumes })` with 0, 1 and 4 volumes, then `sb.exec("true")`,
 * then `sb.kill()` (timed apart). The volumes are created (and first mounted) once, before the
 * timed runs, and reused: each run attaches them again.
 *
 * Baseline, same run and interleaved round by round: `crun run` of an equivalent bundle made with
 * `crun spec` (rootfs with the host's /usr and /etc bound read-only, running /usr/bin/true),
 * started with execFile from Node, state under a scratch `--root`.
 *
 * Small files: `for i in $(seq 1 N); do echo $i > f$i; done` in a fresh directory, inside a
 * sandbox on a volume (through `sb.exec`) vs the same `sh -c` on the host disk (execFile).
 */
import { mkdir, rm, symlink, writeFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Cairn } from "@cairn/sdk";
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

export async function run({ log }) {
  const dir = await scratchDir("sandboxes");
  try {
    // crun refuses the v1/v2 hybrid's unified hierarchy; run.js's namespace is private, so hiding it here does not touch the host.
    await sh("umount", ["/sys/fs/cgroup/unified"]).catch(() => undefined);
    const bundle = await makeBundle(dir);
    const raw = [];
    for (let i = 0; i < WARMUP; i++) await crunOnce(dir, bundle, `w${i}`);

    const result = await withCairnd({}, async (c) => {
      const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
      const tag = randomBytes(3).toString("hex");
      const volumes = [];
      for (let i = 0; i < 4; i++) {
        const v = await cairn.volumes.create({ name: `bench-sb-${tag}-${i}` });
        await v.files.write("/hello.txt", "hi");
        volumes.push(v);
      }
      const m = Object.fromEntries(VOLUME_COUNTS.map((n) => [n, { create: [], exec: [], total: [], kill: [] }]));
      const once = async (n, record) => {
        const t0 = now();
        const sb = await cairn.sandboxes.create({ volumes: volumes.slice(0, n).map((v, j) => v.mount(`/v${j}`)) });
        const t1 = now();
        let t2;
        try {
          const r = await sb.exec("true");
          t2 = now();
          if (r.exitCode !== 0) throw new Error(`exec true exited ${r.exitCode}: ${r.stderr}`);
        } finally {
          const t3 = now();
          await sb.kill();
          if (record) m[n].kill.push(now() - t3);
        }
        if (record) {
          m[n].create.push(t1 - t0);
          m[n].exec.push(t2 - t1);
          m[n].total.push(t2 - t0);
        }
      };
      for (let i = 0; i < WARMUP; i++) for (const n of VOLUME_COUNTS) await once(n, false);
      for (let i = 0; i < RUNS; i++) {
        raw.push(await crunOnce(dir, bundle, i));
        for (const n of VOLUME_COUNTS) await once(n, true);
        if ((i + 1) % 5 === 0) log(`  sandboxes: ${i + 1}/${RUNS} rounds`);
      }

      // Small files: one sandbox with one volume, a fresh directory per repeat; host runs interleaved.
      const files = { cairn: [], host: [], loop: [] };
      // Second baseline: what a volume is without Cairn, an ext4 image (cairnd's mkfs options) loop-mounted from the host disk.
      await sh("truncate", ["-s", "1G", join(dir, "loop.img")]);
      await sh("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", join(dir, "loop.img")]);
      await mkdir(join(dir, "loop"));
      await sh("mount", ["-o", "loop", join(dir, "loop.img"), join(dir, "loop")]);
      const sb = await cairn.sandboxes.create({ volumes: [volumes[0].mount("/v")] });
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
      for (const v of volumes) await v.delete();
      return { m, files };
    });
    return report({ ...result, raw });
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

function report({ m, files, raw }) {
  const r = summarize(raw);
  const header = ["", "step", "n", "p50 ms", "p90 ms", "max ms", "p50 vs raw crun"];
  const row = (who, step, values, vsRaw) => {
    const s = summarize(values);
    return [who, step, String(s.n), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.max), vsRaw ? `${(s.p50 / r.p50).toFixed(1)}×` : ""];
  };
  const rows = [row("crun", "**`crun run` of the bundle (`/usr/bin/true`)**", raw, true)];
  for (const n of VOLUME_COUNTS) {
    rows.push(row(`Cairn, ${n} vol`, "create (`POST /v1/sandboxes`)", m[n].create));
    rows.push(row(`Cairn, ${n} vol`, "first `exec true`", m[n].exec));
    rows.push(row(`Cairn, ${n} vol`, "**create → first exec done**", m[n].total, true));
    rows.push(row(`Cairn, ${n} vol`, "kill (not in the total)", m[n].kill));
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
  const t = (n) => summarize(m[n].total).p50;
  const reading =
    `Create → first exec p50: ${fmtMs(t(0))} ms with no volume, ${fmtMs(t(1))} ms with 1, ${fmtMs(t(4))} ms with 4 — ` +
    `${(t(0) / r.p50).toFixed(1)}×, ${(t(1) / r.p50).toFixed(1)}× and ${(t(4) / r.p50).toFixed(1)}× a raw \`crun run\` (p50 ${fmtMs(r.p50)} ms; the issue's target is ≤ 2×). ` +
    `Writing ${FILES} small files in a sandbox on a volume runs at ${fmtPct(fh / fc)} of the host disk's speed (${fmtMs(fc)} vs ${fmtMs(fh)} ms; target ≥ 80%) and at ${fmtPct(fl / fc)} of a plain loop-mounted ext4 image's (${fmtMs(fl)} ms).`;
  const notes = [
    `Sequential, one client; ${RUNS} rounds after ${WARMUP} warm-up rounds, each round one raw crun run, then a sandbox with 0, 1 and 4 volumes, so all see the same load. ` +
      `Volumes (1 GiB ext4, created and first mounted before the timed runs) are attached afresh by every create; \`kill\` detaches them.`,
    `Raw baseline: \`crun spec\` defaults (pid, network, ipc, uts, mount, cgroup namespaces), read-only rootfs with the host's /usr and /etc bound read-only and a tmpfs /tmp, ` +
      `\`crun --root <scratch> run\` started with execFile, which runs the container to completion and deletes it. It has no overlay, no cgroup limits set by us, no seccomp profile beyond crun's default, no HTTP and no exec channel, so it is a floor, not an equivalent service.`,
    `Small files: \`for i in $(seq 1 ${FILES}); do echo $i > f$i; done\` in a fresh directory, no fsync in either; the Cairn time includes one exec round trip (\`exec true\` on the same sandbox: p50 ${fmtMs(summarize(files.execOverhead).p50)} ms). ` +
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
