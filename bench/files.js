/**
 * The file API (issue 3) against the local tools a user would otherwise reach for, same machine,
 * same run:
 *
 *   small files  10,000 files of 1 KiB in 100 directories, uploaded as one directory:
 *                baseline `tar -x` of their tar into a fresh host directory + `sync -f`;
 *                Cairn `files.uploadArchive` of that tar (extracted in a staging dir on the
 *                volume, synced, moved into place all or nothing) and `cairn volume put <dir>` (the
 *                CLI packs the directory with the local tar while it uploads).
 *                Download: `tar -c` of the host directory vs the API's tar archive of the volume's.
 *   search       a literal in 100 of those 10,000 files: `grep -r -n` on the host directory vs
 *                `files.search` (GNU grep in the volume, results parsed and returned as JSON);
 *                names by glob: `find -name` vs `files.search({ glob })`. Warm caches on both sides.
 *   large        1 GiB: `cp` + `sync` on the host disk vs the resumable (tus) uploads of the SDK
 *                (32 MiB chunks, each checksummed and fsynced before it is acknowledged: `uploadFromFile`
 *                sends from the file with CRC-32, `upload` of a stream holds each chunk with SHA-256), and the
 *                tar.gz / zip archive downloads of a directory holding that file vs `tar -cz` locally.
 *                (Plain PUT/GET of 1 GiB is the throughput bench.)
 *   listing      a directory of 200,000 entries listed page by page (1,000 and 10,000 per page)
 *                vs `ls -f | wc -l` and `ls -l` of it on the volume: total time and cairnd's peak RSS.
 *   memory       cairnd's RSS idle and at its peak during CAIRN_BENCH_FILES_RSS_GIB (default 5) GiB
 *                transfers: PUT by `writeFromFile` and by a stream, a resumable `uploadFromFile`, GET by
 *                `download` and by a stream.
 */
import { randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Cairn } from "@cairn/sdk";
import { GiB, KiB, MiB, fmtMiB, fmtPct, mdTable, median, memoryOf, now, rssSampler, scratchDir, sh, textTable, withCairnd } from "./lib.js";

export const name = "files";
export const title = "File API: 10,000 small files, search, resumable and archive transfers vs tar, grep and cp";

const REPEATS = Number(process.env.CAIRN_BENCH_REPEATS ?? 3);
const RSS_GIB = Number(process.env.CAIRN_BENCH_FILES_RSS_GIB ?? 5);
const FILES = 10_000;
const DIRS = 100;
const CLI = fileURLToPath(new URL("../packages/cli/dist/src/main.js", import.meta.url));

async function makeSmallTree(dir) {
  const buf = Buffer.alloc(KiB);
  for (let d = 0; d < DIRS; d++) {
    await mkdir(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < FILES / DIRS; f++) {
      randomFillSync(buf);
      // Printable text, as source trees are; 1 in 100 files holds the needle.
      const text = Buffer.from(buf.toString("base64").slice(0, KiB - 40));
      const needle = (d * 100 + f) % 100 === 7 ? "\nNEEDLE-cairn-bench found here\n" : "\nnothing to see in this one line\n";
      await writeFile(join(dir, `d${d}`, `f${f}.txt`), Buffer.concat([text, Buffer.from(needle)]));
    }
  }
}

async function makeBig(path, size) {
  const fh = await open(path, "w");
  const buf = Buffer.alloc(16 * MiB);
  try {
    for (let done = 0; done < size; done += buf.length) {
      randomFillSync(buf);
      await fh.write(buf);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const drain = async (stream) => {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
};

async function run1(c, dir, log) {
  const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
  const ms = {};
  const add = (k, v) => (ms[k] ??= []).push(v);
  const timed = async (k, fn) => {
    const t0 = now();
    const r = await fn();
    add(k, now() - t0);
    return r;
  };
  const cliEnv = { ...process.env, CAIRN_URL: c.url, CAIRN_API_KEY: c.adminKey };

  // ---------------------------------------------------------------- small files + search
  log("  files: making 10,000 small files");
  const tree = join(dir, "tree");
  await makeSmallTree(tree);
  const tarFile = join(dir, "tree.tar");
  await sh("tar", ["-c", "-f", tarFile, "-C", tree, "."]);
  const v = await cairn.volumes.create({ name: "bench-files", sizeGb: 4 });
  await v.files.write("/.warm", "x");
  let searchCheck = "";
  for (let r = 0; r < REPEATS; r++) {
    log(`  files: small files, repeat ${r + 1}/${REPEATS}`);
    const out = join(dir, `x${r}`);
    await mkdir(out);
    await timed("tarx", async () => {
      await sh("tar", ["-x", "-f", tarFile, "-C", out]);
      await sh("sync", ["-f", out]);
    });
    await rm(out, { recursive: true, force: true });
    const res = await timed("apiExtract", () => v.files.uploadArchive(`/small-${r}`, createReadStream(tarFile, { highWaterMark: MiB })));
    if (res.files !== FILES) throw new Error(`extracted ${res.files} files, expected ${FILES}`);
    await timed("cliPut", () => sh(process.execPath, [CLI, "volume", "put", tree, "bench-files", `/cli-${r}`], { env: cliEnv }));
    // Through cat: GNU tar skips reading file contents when its archive is /dev/null itself.
    await timed("tarc", () => sh("sh", ["-c", `tar -c -f - -C '${tree}' . | cat > /dev/null`]));
    await timed("apiArchive", async () => drain(await v.files.downloadArchive(`/small-${r}`)));
    // search, warm on both sides (the tree was just written / read)
    await sh("grep", ["-r", "-n", "NEEDLE-cairn-bench", tree]).catch(() => "");
    const grepOut = await timed("grep", () => sh("grep", ["-r", "-n", "NEEDLE-cairn-bench", tree]));
    const found = await timed("apiSearch", () => v.files.search({ path: `/small-${r}`, query: "NEEDLE-cairn-bench", limit: 10_000 }));
    const grepCount = grepOut.trim().split("\n").length;
    searchCheck = `grep found ${grepCount} lines, the API ${found.matches.length}${found.matches.length === grepCount ? " (same)" : " (DIFFERENT)"}`;
    await timed("find", () => sh("find", [tree, "-name", "f7.txt"]));
    await timed("apiGlob", () => v.files.search({ path: `/small-${r}`, glob: "f7.txt", limit: 10_000 }));
    await v.files.remove(`/small-${r}`, { recursive: true });
    await v.files.remove(`/cli-${r}`, { recursive: true });
  }
  await v.delete();

  // ---------------------------------------------------------------- 1 GiB: tus and archives
  log("  files: writing a 1 GiB source file");
  const big = join(dir, "big.bin");
  await makeBig(big, GiB);
  const bigDir = join(dir, "bigdir");
  await mkdir(bigDir);
  await sh("cp", [big, join(bigDir, "big.bin")]);
  const vb = await cairn.volumes.create({ name: "bench-big", sizeGb: 4 });
  await vb.files.write("/.warm", "x");
  await vb.files.write("/dir/big.bin", createReadStream(big, { highWaterMark: MiB })); // warm-up: pool blocks
  for (let r = 0; r < REPEATS; r++) {
    log(`  files: 1 GiB, repeat ${r + 1}/${REPEATS}`);
    const dst = join(dir, "dst.bin");
    await sh("dd", [`if=${big}`, "of=/dev/null", "bs=4M", "status=none"]);
    await timed("cp", async () => {
      await sh("cp", [big, dst]);
      await sh("sync", [dst]);
    });
    await rm(dst, { force: true });
    // As `cairn volume put` sends a large file: chunks straight from the file, CRC-32-checked.
    await timed("tus", async () => vb.files.uploadFromFile(`/tus-${r}.bin`, big));
    await vb.files.remove(`/tus-${r}.bin`);
    // Any stream (here a file's, with large reads, its length given): chunks held in memory, SHA-256-checked.
    await timed("tusStream", async () => vb.files.upload(`/tus-${r}.bin`, createReadStream(big, { highWaterMark: 4 * MiB }), { length: GiB }));
    await vb.files.remove(`/tus-${r}.bin`);
    await timed("tarczLocal", () => sh("sh", ["-c", `tar -cz -f - -C '${bigDir}' . | cat > /dev/null`]));
    await timed("apiTarGz", async () => drain(await vb.files.downloadArchive("/dir", { format: "tar.gz" })));
    await timed("apiZip", async () => drain(await vb.files.downloadArchive("/dir", { format: "zip" })));
    await timed("apiTar", async () => drain(await vb.files.downloadArchive("/dir", { format: "tar" })));
  }
  await vb.delete();
  await rm(bigDir, { recursive: true, force: true });

  // ---------------------------------------------------------------- 200,000 entries, page by page
  log("  files: listing a directory of 200,000 entries");
  const vl = await cairn.volumes.create({ name: "bench-list", sizeGb: 4 }); // 4 GiB of ext4: 262,144 inodes
  await vl.files.mkdir("/many");
  const inNs = (script) => sh("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "sh", "-c", script]);
  const manyDir = join(c.dataDir, "mounts", vl.id, "many");
  await inNs(`cd '${manyDir}' && seq -f 'f%06g' 1 200000 | xargs touch`);
  const listing = {};
  await inNs(`ls -f '${manyDir}' | wc -l`);
  let t1 = now();
  await inNs(`ls -f '${manyDir}' | wc -l`);
  listing.lsf = now() - t1;
  t1 = now();
  await inNs(`ls -l '${manyDir}' > /dev/null`);
  listing.lsl = now() - t1;
  for (const limit of [1000, 10_000]) {
    const sampler = rssSampler(c.serverPid, 25);
    const before = (await memoryOf(c.serverPid)).rss;
    const t = now();
    let n = 0;
    let pages = 0;
    let cursor;
    do {
      const page = await vl.files.list("/many", { limit, ...(cursor ? { cursor } : {}) });
      n += page.items.length;
      pages++;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    if (n !== 200_000) throw new Error(`listed ${n} entries, expected 200000`);
    listing[limit] = { ms: now() - t, pages, rssBefore: before, rssPeak: await sampler.stop() };
  }
  await vl.delete();

  return { ms, searchCheck, listing };
}

/**
 * cairnd's RSS during large transfers, in a cairnd of its own: idle means idle (after the listing
 * above, cairnd's RSS is still coming down from that page work).
 */
async function memoryCheck(c, dir, log) {
  log(`  files: ${RSS_GIB} GiB upload and download, watching a fresh cairnd's RSS`);
  const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
  const huge = join(dir, "huge.bin");
  await makeBig(huge, RSS_GIB * GiB);
  // Room for the file and a second copy: a replacing write keeps the old file until its rename.
  const vh = await cairn.volumes.create({ name: "bench-rss", sizeGb: 2 * RSS_GIB + 1 });
  await vh.files.write("/.warm", "x");
  const rssIdle = (await memoryOf(c.serverPid)).rss;
  const transfers = [];
  /** One transfer, its rate and cairnd's peak RSS while it ran (against the idle RSS above, not the previous transfer's). */
  const watched = async (what, fn) => {
    const sampler = rssSampler(c.serverPid, 25);
    const t0 = now();
    const bytes = await fn();
    const ms = now() - t0;
    const peak = await sampler.stop();
    if (bytes !== RSS_GIB * GiB) throw new Error(`${what}: moved ${bytes} bytes, expected ${RSS_GIB * GiB}`);
    transfers.push({ what, ms, peak });
  };
  const down = join(dir, "huge.down");
  await watched("PUT, SDK `files.writeFromFile`", async () => (await vh.files.writeFromFile("/huge.bin", huge)).size);
  await watched("PUT, SDK `files.write` of a read stream", async () => (await vh.files.write("/huge.bin", createReadStream(huge, { highWaterMark: MiB }))).size);
  await watched("resumable upload (tus), SDK `files.uploadFromFile`", async () => (await vh.files.uploadFromFile("/huge.bin", huge)).size);
  await watched("GET, SDK `files.download` to a host file", async () => {
    await vh.files.download("/huge.bin", down);
    const { size } = await stat(down);
    await rm(down, { force: true });
    return size;
  });
  await watched("GET, SDK `files.read` stream", async () => {
    let bytes = 0;
    for await (const chunk of await vh.files.read("/huge.bin")) bytes += chunk.byteLength;
    return bytes;
  });
  const rssEnd = (await memoryOf(c.serverPid)).rss;
  await vh.delete();
  await rm(huge, { force: true });
  return { idle: rssIdle, end: rssEnd, transfers };
}

export async function run({ log }) {
  log(`files: ${FILES} files, ${REPEATS} repeats, ${RSS_GIB} GiB for the memory check`);
  const dir = await scratchDir("files");
  let res;
  try {
    res = await withCairnd({ CAIRN_IDLE_UNMOUNT_MS: "600000" }, (c) => run1(c, dir, log));
    await rm(join(dir, "big.bin"), { force: true });
    res.rss = await withCairnd({ CAIRN_IDLE_UNMOUNT_MS: "600000" }, (c) => memoryCheck(c, dir, log));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const m = (k) => median(res.ms[k]);
  const filesPerS = (k) => FILES / (m(k) / 1000);
  const mbs = (k, bytes = GiB) => bytes / 1e6 / (m(k) / 1000);
  const f0 = (x) => x.toFixed(0);
  const f1 = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const rows = [
    ["10,000 × 1 KiB files in", "`tar -x` + `sync -f` (host disk)", f1(m("tarx")), `${f0(filesPerS("tarx"))} files/s`, "100%"],
    ["", "API: tar upload, extracted all or nothing", f1(m("apiExtract")), `${f0(filesPerS("apiExtract"))} files/s`, fmtPct(m("tarx") / m("apiExtract"))],
    ["", "CLI: `cairn volume put <dir>` (local tar + upload)", f1(m("cliPut")), `${f0(filesPerS("cliPut"))} files/s`, fmtPct(m("tarx") / m("cliPut"))],
    ["10,000 × 1 KiB files out", "`tar -c \\| cat > /dev/null` (host disk)", f1(m("tarc")), `${f0(filesPerS("tarc"))} files/s`, "100%"],
    ["", "API: tar archive download", f1(m("apiArchive")), `${f0(filesPerS("apiArchive"))} files/s`, fmtPct(m("tarc") / m("apiArchive"))],
    ["content search, 10,000 files", "`grep -r -n` (host disk, warm)", f1(m("grep")), `${f0(filesPerS("grep"))} files/s`, "100%"],
    ["", "API: `files.search({ query })`", f1(m("apiSearch")), `${f0(filesPerS("apiSearch"))} files/s`, fmtPct(m("grep") / m("apiSearch"))],
    ["name search, 10,000 files", "`find -name` (host disk, warm)", f1(m("find")), `${f0(filesPerS("find"))} files/s`, "100%"],
    ["", "API: `files.search({ glob })`", f1(m("apiGlob")), `${f0(filesPerS("apiGlob"))} files/s`, fmtPct(m("find") / m("apiGlob"))],
    ["1 GiB in", "`cp` + `sync` (host disk, warm source)", f0(m("cp")), `${f0(mbs("cp"))} MB/s`, "100%"],
    ["", "SDK resumable upload of a file, `files.uploadFromFile` (tus, 32 MiB chunks; as `cairn volume put`)", f0(m("tus")), `${f0(mbs("tus"))} MB/s`, fmtPct(m("cp") / m("tus"))],
    ["", "SDK resumable upload of a stream, `files.upload` (tus, 32 MiB chunks)", f0(m("tusStream")), `${f0(mbs("tusStream"))} MB/s`, fmtPct(m("cp") / m("tusStream"))],
    ["1 GiB directory out", "`tar -cz \\| cat > /dev/null` (host disk)", f0(m("tarczLocal")), `${f0(mbs("tarczLocal"))} MB/s`, "100%"],
    ["", "API: tar.gz archive download", f0(m("apiTarGz")), `${f0(mbs("apiTarGz"))} MB/s`, fmtPct(m("tarczLocal") / m("apiTarGz"))],
    ["", "API: zip archive download (deflate)", f0(m("apiZip")), `${f0(mbs("apiZip"))} MB/s`, fmtPct(m("tarczLocal") / m("apiZip"))],
    ["", "API: tar archive download", f0(m("apiTar")), `${f0(mbs("apiTar"))} MB/s`, "–"],
  ];
  const L = res.listing;
  rows.push(
    ["200,000 entries in one directory", "`ls -f \| wc -l` (names only) / `ls -l` (with stat), on the volume", `${f0(L.lsf)} / ${f0(L.lsl)}`, "–", "–"],
    ["", `API list, 1,000 per page (${L[1000].pages} pages)`, f0(L[1000].ms), `${f0(200_000 / (L[1000].ms / 1000))} entries/s`, fmtPct(L.lsl / L[1000].ms)],
    ["", `API list, 10,000 per page (${L[10000].pages} pages)`, f0(L[10000].ms), `${f0(200_000 / (L[10000].ms / 1000))} entries/s`, fmtPct(L.lsl / L[10000].ms)],
  );
  const header = ["what", "how", "median ms", "rate", "vs baseline"];
  const rss = res.rss;
  const big = RSS_GIB * GiB;
  const worst = rss.transfers.reduce((a, t) => (t.peak > a.peak ? t : a));
  const memLine = `cairnd RSS: ${fmtMiB(rss.idle)} idle; at most ${fmtMiB(worst.peak)} (+${fmtMiB(worst.peak - rss.idle)}) during ${RSS_GIB} GiB transfers (the largest during: ${worst.what}).`;
  const memRows = rss.transfers.map((t) => [t.what, f0(big / 1e6 / (t.ms / 1000)), fmtMiB(t.peak), `+${fmtMiB(t.peak - rss.idle)}`]);
  memRows.push(["after all five", "–", fmtMiB(rss.end), `+${fmtMiB(rss.end - rss.idle)}`]);
  const memHeader = [`${RSS_GIB} GiB transfer, one after another`, "MB/s", "cairnd peak RSS", "over idle"];
  const listLine = `Listing 200,000 entries: cairnd's RSS peaked ${fmtMiB(L[1000].rssPeak)} (from ${fmtMiB(L[1000].rssBefore)}) at 1,000 per page and ${fmtMiB(L[10000].rssPeak)} at 10,000 per page; each page is one pass over the directory, memory follows the page size, not the directory.`;
  const reading = `Small files: ${fmtPct(m("tarx") / m("apiExtract"))} of local \`tar -x\` through the API (target ≥ 30%); content search ${fmtPct(m("grep") / m("apiSearch"))} of \`grep -r\`; resumable 1 GiB upload of a file ${fmtPct(m("cp") / m("tus"))} of \`cp\` + \`sync\` (${fmtPct(m("cp") / m("tusStream"))} from a stream; the ≥ 70% target is for plain PUT and GET, in the throughput section). ${memLine}`;
  const markdown = [
    mdTable(header, rows, "llrrr"),
    "",
    `**Reading:** ${reading}`,
    "",
    `- ${listLine}`,
    `- Memory, in a cairnd of its own, idle at ${fmtMiB(rss.idle)} (sampled every 25 ms; "over idle" is against the RSS before the first transfer, so what one transfer keeps counts in the next):`,
    "",
    mdTable(memHeader, memRows, "lrrr"),
    "",
    "  What stays after a transfer is reused by the next, not grown: the pool of 4 MiB I/O blocks (at most 4 kept idle, shared by reads and writes), V8's young generation, and the malloc heap that cairnd keeps instead of trimming (its `GLIBC_TUNABLES`, see the throughput section). Dead socket buffers of request bodies do not pile up in that heap: cairnd collects its young generation after every 8 MiB of body (`files/body-gc.ts`).",
    `- Median of ${REPEATS} repeats (the listing and memory rows: one run). "vs baseline" is the baseline's time divided by Cairn's (100% = as fast). Search check: ${res.searchCheck}.`,
    "- The API rows include HTTP on loopback, the SDK in the same Node process as the bench, and cairnd's durability work: an extraction is staged, `syncfs`'d, moved into place and `syncfs`'d again; each resumable chunk is checksummed (CRC-32 from a file, SHA-256 from a stream) and fdatasync'ed before it is acknowledged. The baselines sync too (`sync -f` / `sync`).",
    "- Volumes are ext4 images on direct-I/O loop devices in an XFS pool image on the same host disk; cairnd idle unmount 10 min, so mounts are not part of the numbers.",
    "- The `cp` + `sync` baseline writes new page-cache pages, which are expensive on this machine (see the throughput section): from run to run it has measured anywhere between ~280 and ~1300 MB/s, so compare the resumable row's MB/s, not only its percentage. cairnd writes bodies in 4 MiB O_DIRECT blocks (no page cache); a file just uploaded is therefore not cached, and the 5 GiB GET reads it from the disk.",
  ].join("\n");
  const text = [textTable(header, rows, "llrrr"), "", textTable(memHeader, memRows, "lrrr"), "", reading].join("\n");
  return { markdown, text, reading };
}
