/**
 * Volume create-to-first-write latency.
 *
 * Cairn: N × (create a 1 GiB volume with a unique name → write a 4 KiB file) through the SDK
 * against a real cairnd, one after another. The first write mounts the volume, so it is timed
 * apart from the create; a second 4 KiB write to the now-mounted volume shows what the mount
 * costs. Afterwards every volume is deleted through the API (timed too).
 *
 * Baseline, same run and interleaved with it: the raw steps with the shell tools cairnd itself
 * uses, on the host disk (truncate + mkfs.ext4 with cairnd's options, mount -o loop, write 4 KiB
 * with fsync, umount).
 */
import { randomBytes } from "node:crypto";
import { writeFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { fmtMs, mdTable, now, scratchDir, sh, summarize, textTable, withCairnd } from "./lib.js";

export const name = "lifecycle";
export const title = "Volume create → first write";

const VOLUMES = Number(process.env.CAIRN_BENCH_VOLUMES ?? 200);
const BASELINE_ITERATIONS = Number(process.env.CAIRN_BENCH_BASELINE_ITERATIONS ?? 50);
const WARMUP = 5;
/** cairnd's default: a volume stays mounted 30 s after its last request, so nothing unmounts mid-run. */
const IDLE_UNMOUNT_MS = "30000";
const MKFS_ARGS = ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"];

/** One baseline iteration: the raw steps with shell tools on the host disk. */
async function shellIteration(dir, src, i) {
  const img = join(dir, `v${i}.img`);
  const mnt = join(dir, `m${i}`);
  await mkdir(mnt);
  const t0 = now();
  await sh("truncate", ["-s", "1G", img]);
  await sh("mkfs.ext4", [...MKFS_ARGS, img]);
  const t1 = now();
  await sh("mount", ["-o", "loop", img, mnt]);
  let t2, t3, dio;
  try {
    await sh("dd", [`if=${src}`, `of=${join(mnt, "first.bin")}`, "bs=4096", "count=1", "conv=fsync", "status=none"]);
    t2 = now();
    // Not part of the baseline: cairnd switches its loop devices to direct I/O after mounting.
    const dev = (await sh("findmnt", ["-no", "SOURCE", mnt])).trim();
    const d0 = now();
    await sh("losetup", ["--direct-io=on", dev]);
    dio = now() - d0;
  } finally {
    t3 = now();
    await sh("umount", [mnt]);
  }
  const t4 = now();
  await rm(img);
  await rm(mnt, { recursive: true });
  return { create: t1 - t0, first: t2 - t1, total: t2 - t0, umount: t4 - t3, dio };
}

/**
 * Cairn and the baseline interleaved (one shell iteration after every few volumes), so both
 * see the same machine: other work may share it, and its load changes over a run.
 */
async function measure(log) {
  const dir = await scratchDir("lifecycle");
  try {
    const src = join(dir, "payload.bin");
    await writeFile(src, randomBytes(4096));
    const shell = { create: [], first: [], total: [], umount: [], dio: [] };
    const every = Math.max(1, Math.floor(VOLUMES / BASELINE_ITERATIONS));
    let shellRuns = 0;
    for (let i = 0; i < 2; i++) await shellIteration(dir, src, `w${i}`); // warm-up, not counted
    const runShell = async () => {
      const r = await shellIteration(dir, src, shellRuns++);
      for (const k of Object.keys(shell)) shell[k].push(r[k]);
    };
    const cairn = await withCairnd({ CAIRN_IDLE_UNMOUNT_MS: IDLE_UNMOUNT_MS }, async (c) => {
      const client = new Cairn({ url: c.url, apiKey: c.adminKey });
      const payload = randomBytes(4096);
      const tag = randomBytes(3).toString("hex");
      const volumes = [];
      const m = { create: [], first: [], total: [], second: [], del: [] };
      try {
        for (let i = 0; i < WARMUP + VOLUMES; i++) {
          const t0 = now();
          const v = await client.volumes.create({ name: `bench-${tag}-${i}` });
          const t1 = now();
          volumes.push(v);
          await v.files.write("/first.bin", payload);
          const t2 = now();
          await v.files.write("/second.bin", payload);
          const t3 = now();
          if (i < WARMUP) continue;
          const n = i - WARMUP + 1;
          m.create.push(t1 - t0);
          m.first.push(t2 - t1);
          m.total.push(t2 - t0);
          m.second.push(t3 - t2);
          if (n % every === 0 && shellRuns < BASELINE_ITERATIONS) await runShell();
          if (n % 50 === 0) log(`  ${n}/${VOLUMES} volumes, ${shellRuns} shell iterations`);
        }
        while (shellRuns < BASELINE_ITERATIONS) await runShell();
      } finally {
        // Delete everything this run created, also after a failure.
        for (const v of volumes) {
          const t0 = now();
          await v.delete().catch((err) => log(`  could not delete ${v.name}: ${err.message}`));
          m.del.push(now() - t0);
        }
      }
      m.del = m.del.slice(WARMUP);
      m.leftover = (await client.volumes.list({ limit: 1000 })).items.length;
      return m;
    });
    return { cairn, shell };
  } finally {
    // A failed iteration may leave a mount behind: take it down before removing the directory.
    const mounts = await sh("findmnt", ["-rno", "TARGET"]).catch(() => "");
    for (const m of mounts.split("\n").filter((t) => t.startsWith(dir + "/"))) await sh("umount", [m]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run({ log }) {
  log(`lifecycle: ${VOLUMES} volumes through the API, ${BASELINE_ITERATIONS} with shell tools`);
  const { cairn, shell } = await measure(log);

  const rows = [
    ["Cairn", "create (`POST /v1/volumes`, 1 GiB ext4)", cairn.create],
    ["Cairn", "first write, 4 KiB (mounts the volume)", cairn.first],
    ["Cairn", "**create → first write acknowledged**", cairn.total],
    ["Cairn", "second write, 4 KiB (already mounted)", cairn.second],
    ["Cairn", "delete (unmounts, removes the image)", cairn.del],
    ["shell", "truncate + mkfs.ext4", shell.create],
    ["shell", "mount -o loop + dd 4 KiB conv=fsync", shell.first],
    ["shell", "**create → first write**", shell.total],
    ["shell", "umount + rm", shell.umount],
    ["(shell)", "`losetup --direct-io=on` on the live loop device (cairnd's extra step; not in the baseline)", shell.dio],
  ].map(([who, step, values]) => {
    const s = summarize(values);
    return [who, step, String(s.n), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.max)];
  });
  const header = ["", "step", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"];
  const align = "llrrrrr";

  const c = summarize(cairn.total);
  const b = summarize(shell.total);
  const firstQuarter = summarize(cairn.total.slice(0, Math.floor(VOLUMES / 4)));
  const lastQuarter = summarize(cairn.total.slice(-Math.floor(VOLUMES / 4)));
  const mountCost = summarize(cairn.first).p50 - summarize(cairn.second).p50;
  const reading =
    `Create → first write through the API: p50 ${fmtMs(c.p50)} ms, p99 ${fmtMs(c.p99)} ms ` +
    `(${(c.p50 / b.p50).toFixed(1)}× the shell steps' p50 of ${fmtMs(b.p50)} ms, +${fmtMs(c.p50 - b.p50)} ms). ` +
    `The mount on first use costs about ${fmtMs(mountCost)} ms (first minus second write, p50); ` +
    `switching a mounted loop device to direct I/O, which cairnd does after mounting, alone takes ${fmtMs(summarize(shell.dio).p50)} ms in the shell.`;
  const notes = [
    `Sequential, one client; one shell iteration runs after every ${Math.max(1, Math.floor(VOLUMES / BASELINE_ITERATIONS))} volumes, so both see the same machine load. Volumes: ${VOLUMES} (after ${WARMUP} uncounted warm-up volumes), each 1 GiB ext4, ` +
      `cairnd idle unmount ${IDLE_UNMOUNT_MS} ms (its default), so all volumes stay mounted until deleted; ` +
      `cairnd's pool is an XFS image loop-mounted on the host disk (the host's ext4 cannot reflink), volumes are ext4 images in it on direct-I/O loop devices.`,
    `Shell baseline: the same mkfs options on the host disk directly (ext4, no pool), plain \`mount -o loop\`, ` +
      `each tool started with execFile from Node as cairnd does; \`dd conv=fsync\` where cairnd writes a temp file, fdatasyncs, renames and fsyncs the directory.`,
    `Drift over the run (create → first write p50): first quarter ${fmtMs(firstQuarter.p50)} ms, last quarter ${fmtMs(lastQuarter.p50)} ms ` +
      `(the last quarter runs with ~${VOLUMES} volumes mounted).`,
    `Volumes left after the deletes: ${cairn.leftover}.`,
  ];
  return {
    reading,
    markdown: [mdTable(header, rows, align), "", `**Reading:** ${reading}`, "", ...notes.map((n) => `- ${n}`)].join("\n"),
    text: [textTable(header.map((h) => h.replace(/\*/g, "")), rows.map((r) => r.map((x) => x.replace(/\*\*|`/g, ""))), align), "", reading].join("\n"),
  };
}
