/**
 * Checkpoint create and restore latency by data size, and the space 10 checkpoints take (issue 5).
 *
 * For each size S: a volume is filled through the API with 100 files of S/100 random bytes (the
 * same bytes are written to a host directory for restic). Then 10 rounds: round k > 0 rewrites one
 * file (1% of the data) in the volume and on the host; every round takes a checkpoint (timed),
 * copies the volume's image with `cp --sparse=always` (timed) and runs `restic backup` of the host
 * directory (timed). Afterwards the volume is restored to checkpoints 1, 5 and 10 (timed, the
 * content checked) and the host copy is restored once with `restic restore`.
 *
 * Space: Cairn's is the growth of the pool's used bytes (statfs of the pool inside cairnd's mount
 * namespace) from before the first checkpoint to after the tenth, which includes the volume's own
 * divergence from the checkpoints; also the sum of the checkpoints' `exclusiveBytes`. cp's is the
 * allocated size of the 10 copies; restic's the size of its repository.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { GiB, MiB, fmtMs, mdTable, median, now, scratchDir, sh, textTable, withCairnd } from "./lib.js";

export const name = "checkpoints";
export const title = "Checkpoint create / restore by size, space of 10 checkpoints";

const SIZES_MIB = (process.env.CAIRN_BENCH_CHECKPOINT_SIZES_MIB ?? "100,1024").split(",").map(Number);
const FILES = 100;
const ROUNDS = 10;
const RESTORE_TO = [1, 5, 10];

const fmtSize = (b) => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`);
const hash = (buf) => createHash("sha256").update(buf).digest("hex").slice(0, 16);

async function duBytes(path) {
  return Number((await sh("du", ["-s", "-B1", path])).split(/\s/)[0]);
}

async function oneSize(c, cairn, dir, sizeMiB, log) {
  const bytes = sizeMiB * MiB;
  const fileBytes = Math.floor(bytes / FILES);
  const ns = ["--mount=" + join(c.dataDir, "run", "mnt.ns"), "--"];
  const pool = join(c.dataDir, "pool");
  const poolUsed = async () => {
    const out = await sh("nsenter", [...ns, "sh", "-c", `sync -f ${pool} && df -B1 --output=used ${pool}`]);
    return Number(out.trim().split("\n").pop());
  };
  const host = join(dir, `files-${sizeMiB}`);
  const copies = join(dir, `copies-${sizeMiB}`);
  const repo = join(dir, `restic-${sizeMiB}`);
  await mkdir(host);
  await mkdir(copies);
  const restic = (args) => sh("restic", ["-r", repo, "-q", ...args], { env: { ...process.env, RESTIC_PASSWORD: "bench", RESTIC_CACHE_DIR: join(dir, "restic-cache"), LC_ALL: "C" } });
  await restic(["init"]);

  const v = await cairn.volumes.create({ name: `bench-cp-${sizeMiB}-${randomBytes(3).toString("hex")}`, sizeGb: Math.ceil((bytes * 1.5) / GiB) });
  try {
    const t0 = now();
    for (let i = 0; i < FILES; i++) {
      const buf = randomBytes(fileBytes);
      await v.files.write(`/d/f${i}`, buf);
      await writeFile(join(host, `f${i}`), buf);
    }
    log(`  checkpoints ${sizeMiB} MiB: filled in ${((now() - t0) / 1000).toFixed(1)} s`);
    const image = join(pool, "volumes", `${v.id}.img`);
    const used0 = await poolUsed();
    const m = { create: [], cp: [], restic: [], changed: [] };
    for (let k = 1; k <= ROUNDS; k++) {
      if (k > 1) {
        const buf = randomBytes(fileBytes);
        await v.files.write(`/d/f${k}`, buf);
        await writeFile(join(host, `f${k}`), buf);
        m.changed.push(hash(buf));
      }
      let t = now();
      await v.checkpoints.create({ name: `c${k}` });
      m.create.push(now() - t);
      t = now();
      await sh("nsenter", [...ns, "cp", "--sparse=always", image, join(copies, `c${k}.img`)]);
      m.cp.push(now() - t);
      t = now();
      await restic(["backup", host]);
      m.restic.push(now() - t);
    }
    const used1 = await poolUsed();
    const list = await v.checkpoints.list();
    const exclusive = list.reduce((a, cp) => a + cp.exclusiveBytes, 0);
    const cpSpace = await duBytes(copies);
    const resticSpace = await duBytes(repo);
    const volumeAllocated = Number((await sh("nsenter", [...ns, "du", "-s", "-B1", image])).split(/\s/)[0]);

    // Restore to 1, 5, 10; check the file rewritten in round 5 (first rewritten in round 5, unchanged before).
    const restore = [];
    for (const k of RESTORE_TO) {
      const t = now();
      await v.checkpoints.restore(`c${k}`);
      restore.push(now() - t);
      const h = hash(Buffer.from(await v.files.readBytes(`/d/f5`)));
      const expect = k >= 5 ? m.changed[3] : undefined; // m.changed[j] is round j+2
      if (expect && h !== expect) throw new Error(`after restoring c${k}, /d/f5 has the wrong content`);
      if (!expect && h === m.changed[3]) throw new Error(`after restoring c${k}, /d/f5 still has round 5's content`);
    }
    const target = join(dir, `restored-${sizeMiB}`);
    let t = now();
    await restic(["restore", "latest", "--target", target]);
    const resticRestore = now() - t;
    await rm(target, { recursive: true, force: true });

    return { sizeMiB, m, restore, resticRestore, cairnSpace: used1 - used0, exclusive, cpSpace, resticSpace, volumeAllocated };
  } finally {
    await v.delete().catch((err) => log(`  could not delete ${v.name}: ${err.message}`));
    await rm(copies, { recursive: true, force: true });
    await rm(host, { recursive: true, force: true });
    await rm(repo, { recursive: true, force: true });
  }
}

export async function run({ log }) {
  const dir = await scratchDir("checkpoints");
  try {
    const results = await withCairnd({}, async (c) => {
      const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
      const out = [];
      for (const s of SIZES_MIB) out.push(await oneSize(c, cairn, dir, s, log));
      return out;
    });
    return report(results);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function report(results) {
  const header = ["data", "checkpoint create (Cairn)", "`cp --sparse=always` image", "`restic backup` (1st / later)", "restore (Cairn)", "`restic restore`"];
  const rows = results.map((r) => [
    fmtSize(r.sizeMiB * MiB),
    `${fmtMs(median(r.m.create))} ms (max ${fmtMs(Math.max(...r.m.create))})`,
    `${fmtMs(median(r.m.cp))} ms`,
    `${fmtMs(r.m.restic[0])} / ${fmtMs(median(r.m.restic.slice(1)))} ms`,
    `${fmtMs(median(r.restore))} ms (max ${fmtMs(Math.max(...r.restore))})`,
    `${fmtMs(r.resticRestore)} ms`,
  ]);
  const spaceHeader = ["data", "Cairn: pool growth", "Cairn: Σ exclusiveBytes", "cp: 10 copies", "restic: repository"];
  const spaceRows = results.map((r) => [fmtSize(r.sizeMiB * MiB), fmtSize(r.cairnSpace), fmtSize(r.exclusive), fmtSize(r.cpSpace), fmtSize(r.resticSpace)]);
  const first = results[0];
  const last = results[results.length - 1];
  const reading =
    `Checkpoint create takes ${fmtMs(median(first.m.create))} ms at ${fmtSize(first.sizeMiB * MiB)} and ${fmtMs(median(last.m.create))} ms at ${fmtSize(last.sizeMiB * MiB)} (median of ${ROUNDS}); ` +
    `restore ${fmtMs(median(first.restore))} / ${fmtMs(median(last.restore))} ms, where copying the image with \`cp --sparse=always\` takes ${fmtMs(median(first.m.cp))} / ${fmtMs(median(last.m.cp))} ms ` +
    `and an incremental \`restic backup\` ${fmtMs(median(first.m.restic.slice(1)))} / ${fmtMs(median(last.m.restic.slice(1)))} ms. ` +
    `${ROUNDS} checkpoints with 1% rewritten between them grew the pool by ${fmtSize(last.cairnSpace)} at ${fmtSize(last.sizeMiB * MiB)}, vs ${fmtSize(last.cpSpace)} for ${ROUNDS} image copies and ${fmtSize(last.resticSpace)} for restic's repository.`;
  const notes = [
    `Data: ${FILES} files of random bytes per size, written through \`v.files.write\`; round k > 1 rewrites one whole file (1% of the data) before checkpoint k. Volume size: 1.5× the data rounded up to a GiB (ext4 in a loop-mounted XFS pool on the host disk).`,
    `\`cp --sparse=always\` copies the live volume image (in the pool, inside cairnd's mount namespace via nsenter) to the host disk while the volume is mounted: a crash-consistent copy at best, and faster than a correct one would be (no freeze). ` +
      `restic (Debian's, ${"`restic backup`"} of the host copy of the same files, page cache warm) dedupes and compresses nothing here (random data), and its incremental runs only read the changed file.`,
    `Pool growth includes the volume's own divergence (the rewritten files' new blocks) and XFS metadata; Σ exclusiveBytes counts blocks only one checkpoint holds, ` +
      `and stays small here because a rewritten file's old blocks are shared by every checkpoint taken before the rewrite (deleting one checkpoint frees little; deleting all of them frees the pool growth). The volume image itself had ${results.map((r) => fmtSize(r.volumeAllocated)).join(" / ")} allocated.`,
    `Restore is in place (\`POST …/checkpoints/c{k}/restore\`, k = ${RESTORE_TO.join(", ")}), no sandbox attached; after each, a rewritten file's content was checked. \`restic restore\` writes the latest snapshot into an empty host directory.`,
  ];
  return {
    markdown: [mdTable(header, rows, "lrrrrr"), "", "### Space after 10 checkpoints", "", mdTable(spaceHeader, spaceRows, "lrrrr"), "", `**Reading:** ${reading}`, "", ...notes.map((n) => `- ${n}`)].join("\n"),
    text: [textTable(header, rows, "lrrrrr"), "", textTable(spaceHeader, spaceRows, "lrrrr"), "", reading].join("\n"),
  };
}
