/**
 * Large-file write and read through the API, against `cp` of the same file on the host disk.
 *
 * One file of CAIRN_BENCH_SIZE_GIB (default 1 GiB, random bytes) on the host disk. Each repeat:
 *   baseline  `cp src dst && sync dst` (host disk → host disk, fsynced), source cold and warm;
 *             `cp src /dev/null`, source cold and warm
 *   storage   `dd bs=4M conv=fsync` of the same file straight into a mounted volume, inside
 *             cairnd's mount namespace: what the volume's storage stack allows with no HTTP
 *   API       SDK `files.writeFromFile(path, src)` into a fresh volume of size + 1 GiB
 *             (acknowledged = fdatasynced and renamed), source cold and warm; `files.write` of
 *             `fs.createReadStream(src)` (any stream); `curl -T` of the same file (a C client, to tell client cost from server cost);
 *             SDK `files.download` to a host file (synced, renamed) and `files.read` to nothing, volume cache cold and warm;
 *             `curl` GET to /dev/null.
 *   machine   `dd oflag=direct` to the host disk while `curl` GETs the volume's file to /dev/null, at
 *             once: what this machine gives a client that writes its disk while it receives.
 * "Cold" drops that one file's pages (`dd iflag=nocache count=0`, checked with `fincore`); the
 * machine-wide cache is never dropped (other work may share the machine). cairnd's RSS is
 * sampled every 50 ms during each API transfer.
 */
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import {
  GiB,
  MiB,
  fmtMBs,
  fmtMiB,
  fmtPct,
  mdTable,
  median,
  memoryOf,
  now,
  rssSampler,
  scratchDir,
  sh,
  textTable,
  withCairnd,
} from "./lib.js";

export const name = "throughput";

const SIZE_GIB = Number(process.env.CAIRN_BENCH_SIZE_GIB ?? 1);
const REPEATS = Number(process.env.CAIRN_BENCH_REPEATS ?? 5);
const SIZE = SIZE_GIB * GiB;
/** Other sizes get their own section in RESULTS.md, after the 1 GiB one. */
export const section = SIZE_GIB === 1 ? "throughput" : `throughput-${SIZE_GIB}gib`;
export const title = `${SIZE_GIB} GiB write and read through the API vs cp`;
const MBs = (ms) => SIZE / 1e6 / (ms / 1000);

/** Run a command in cairnd's pinned mount namespace, where its volume mounts live. */
const inCairnd = (c, file, args) => sh("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", file, ...args]);

/** Where cairnd mounts a volume for its file API (an internal layout: the bench checks it exists). */
const volumeMount = (c, id) => join(c.dataDir, "mounts", id);

/** User + system CPU time of a process so far, in ms. */
async function cpuMsOf(pid) {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

async function dropCache(path, c) {
  const args = [`if=${path}`, "iflag=nocache", "count=0", "status=none"];
  if (c) await inCairnd(c, "dd", args);
  else await sh("dd", args);
}

/** Fraction of the file in the page cache. */
async function cached(path, c) {
  const args = ["--bytes", "--noheadings", "--output", "RES,SIZE", path];
  const out = c ? await inCairnd(c, "fincore", args) : await sh("fincore", args);
  const [res, size] = out.trim().split(/\s+/).map(Number);
  return size > 0 ? res / size : NaN;
}

/** Bring a file fully into the page cache (for the "warm" cases) by reading it once. */
async function warm(path, c) {
  if ((await cached(path, c)) >= 0.99) return;
  const args = [`if=${path}`, "of=/dev/null", "bs=4M", "status=none"];
  if (c) await inCairnd(c, "dd", args);
  else await sh("dd", args);
}

async function makeSource(path) {
  const fh = await open(path, "w");
  const hash = createHash("sha256");
  const buf = Buffer.alloc(16 * MiB);
  try {
    for (let done = 0; done < SIZE; done += buf.length) {
      randomFillSync(buf);
      hash.update(buf);
      await fh.write(buf);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}

async function sha256(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return hash.digest("hex");
}

/** Consume a response stream into a host file with large writes, then fsync it (as cairnd's write path does). */
async function run1(c, dir, log) {
  const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
  const src = join(dir, "src.bin");
  const dst = join(dir, "dst.bin");
  log(`  throughput: writing a ${SIZE_GIB} GiB source file`);
  const srcHash = await makeSource(src);
  const curlAuth = ["-H", `authorization: Bearer ${c.adminKey}`];
  const fileUrl = (v, path) => `${c.url}/v1/volumes/${v.id}/files/content?path=${encodeURIComponent(path)}`;

  /** samples[op] = [{ ms, cachedBefore, rssPeak }] */
  const samples = {};
  const record = (op, ms, extra = {}) => (samples[op] ??= []).push({ ms, ...extra });
  const timed = async (op, fn, { cachedBefore } = {}) => {
    const sampler = rssSampler(c.serverPid);
    const server0 = await cpuMsOf(c.serverPid);
    const client0 = process.cpuUsage();
    const t0 = now();
    await fn();
    const ms = now() - t0;
    const client = process.cpuUsage(client0);
    const serverCpuMs = (await cpuMsOf(c.serverPid)) - server0;
    record(op, ms, { cachedBefore, rssPeak: await sampler.stop(), serverCpuMs, clientCpuMs: (client.user + client.system) / 1000 });
    return ms;
  };
  const memStart = await memoryOf(c.serverPid);
  let tag = 0;
  const freshVolume = async () => {
    const v = await cairn.volumes.create({ name: `tp-${process.pid}-${tag++}`, sizeGb: SIZE_GIB + 1 });
    await v.files.write("/.warm", "x"); // mount it now: the mount is the lifecycle bench's business
    return v;
  };

  let warmupMBs;
  let poolGrowth;
  // Warm-up, not counted: a write into pool space never used before also allocates the pool
  // image's blocks on the host disk (much slower). A repeat keeps at most two volumes alive at
  // once, so two volumes' worth of pool space is touched first; later volumes reuse it, as they
  // do in a long-lived pool.
  const poolImage = join(c.dataDir, "pool.img");
  const allocated = async () => Number((await sh("du", ["-B1", poolImage]).catch(() => "NaN")).split("\t")[0]);
  {
    const before = await allocated();
    const a = await freshVolume();
    const b = await freshVolume();
    const t0 = now();
    await a.files.write("/big.bin", createReadStream(src));
    warmupMBs = MBs(now() - t0);
    await b.files.write("/big.bin", createReadStream(src));
    poolGrowth = (await allocated()) - before;
    await a.delete();
    await b.delete();
  }

  const afterWarmup = await allocated();
  const loops = new Set();
  let verified = "not checked";
  for (let r = 0; r < REPEATS; r++) {
    log(`  throughput: repeat ${r + 1}/${REPEATS}`);
    // --- baselines on the host disk
    await dropCache(src);
    await timed("cpNull.cold", () => sh("cp", [src, "/dev/null"]), { cachedBefore: await cached(src) });
    await warm(src);
    await timed("cpNull.warm", () => sh("cp", [src, "/dev/null"]), { cachedBefore: await cached(src) });
    await rm(dst, { force: true });
    await warm(src);
    await timed("cp.warm", async () => {
      await sh("cp", [src, dst]);
      await sh("sync", [dst]);
    }, { cachedBefore: await cached(src) });
    await rm(dst, { force: true });
    await dropCache(src);
    await timed("cp.cold", async () => {
      await sh("cp", [src, dst]);
      await sh("sync", [dst]);
    }, { cachedBefore: await cached(src) });
    await rm(dst, { force: true });

    // --- the volume's storage stack without HTTP
    {
      const v = await freshVolume();
      const target = join(volumeMount(c, v.id), "dd.bin");
      await inCairnd(c, "test", ["-d", volumeMount(c, v.id)]);
      const info = await inCairnd(c, "losetup", ["--list", "--noheadings", "--output", "NAME,DIO,BACK-FILE"]);
      for (const line of info.trim().split("\n")) {
        const [dev, dio, back = ""] = line.trim().split(/\s+/);
        if (!back.startsWith(c.dataDir)) continue;
        loops.add(`${back.endsWith("/pool.img") ? "pool image" : "volume image"} on ${back.endsWith("/pool.img") ? dev : "/dev/loopN"}: direct I/O ${dio === "1" ? "on" : "OFF"}`);
      }
      await warm(src);
      await timed("dd.warm", () => inCairnd(c, "dd", [`if=${src}`, `of=${target}`, "bs=4M", "conv=fsync", "status=none"]), {
        cachedBefore: await cached(src),
      });
      await inCairnd(c, "rm", [target]);
      // The same with O_DIRECT, as cairnd writes large bodies: no page cache in the volume.
      await warm(src);
      await timed("ddDirect.warm", () => inCairnd(c, "dd", [`if=${src}`, `of=${target}`, "bs=4M", "oflag=direct", "conv=fsync", "status=none"]), {
        cachedBefore: await cached(src),
      });
      await v.delete();
    }

    // --- writes through the API
    const kept = await freshVolume();
    await warm(src);
    await timed("apiWrite.warm", () => kept.files.writeFromFile("/big.bin", src), { cachedBefore: await cached(src) });
    {
      const v = await freshVolume();
      await dropCache(src);
      await timed("apiWrite.cold", () => v.files.writeFromFile("/big.bin", src), { cachedBefore: await cached(src) });
      await v.delete();
    }
    {
      // The general call: any stream, here a file's.
      const v = await freshVolume();
      await warm(src);
      await timed("apiWriteStream.warm", () => v.files.write("/big.bin", createReadStream(src)), { cachedBefore: await cached(src) });
      await v.delete();
    }
    {
      const v = await freshVolume();
      await warm(src);
      const cachedBefore = await cached(src);
      await timed("curlWrite.warm", () => sh("curl", ["-sSf", "-T", src, ...curlAuth, "-H", "content-type: application/octet-stream", "-H", "expect:", "-o", "/dev/null", fileUrl(v, "/big.bin")]), { cachedBefore });
      await v.delete();
    }

    // --- reads through the API, from the volume written above
    const inVolume = join(volumeMount(c, kept.id), "big.bin");
    const readToFile = () => kept.files.download("/big.bin", dst);
    const readToNull = async () => {
      for await (const _ of await kept.files.read("/big.bin"));
    };
    await warm(inVolume, c);
    await timed("apiReadNull.warm", readToNull, { cachedBefore: await cached(inVolume, c) });
    await rm(dst, { force: true });
    await warm(inVolume, c);
    await timed("apiReadFile.warm", readToFile, { cachedBefore: await cached(inVolume, c) });
    if (r === 0) verified = (await sha256(dst)) === srcHash ? "read-back SHA-256 matches the source" : "READ-BACK SHA-256 DIFFERS FROM THE SOURCE";
    await rm(dst, { force: true });
    await warm(inVolume, c);
    await timed("curlReadNull.warm", () => sh("curl", ["-sSf", ...curlAuth, "-o", "/dev/null", fileUrl(kept, "/big.bin")]), { cachedBefore: await cached(inVolume, c) });
    await warm(inVolume, c);
    await timed("curlReadFile.warm", () => sh("sh", ["-c", 'curl -sSf -H "$1" -o "$2" "$3" && sync "$2"', "sh", curlAuth[1], dst, fileUrl(kept, "/big.bin")]), {
      cachedBefore: await cached(inVolume, c),
    });
    await rm(dst, { force: true });
    // What this machine gives a download that writes while it receives: the host disk written with
    // O_DIRECT (as `download` does) while a GET of the volume's file streams over loopback, both
    // at once; the time until both are done. Not Cairn's work: a ceiling for any such client here.
    await warm(src);
    await warm(inVolume, c);
    await timed(
      "diskWithGet.warm",
      () =>
        Promise.all([
          sh("dd", [`if=${src}`, `of=${dst}`, "bs=4M", "oflag=direct", "conv=fsync", "status=none"]),
          sh("curl", ["-sSf", ...curlAuth, "-o", "/dev/null", fileUrl(kept, "/big.bin")]),
        ]),
      { cachedBefore: await cached(inVolume, c) },
    );
    await rm(dst, { force: true });
    await dropCache(inVolume, c);
    await timed("apiReadNull.cold", readToNull, { cachedBefore: await cached(inVolume, c) });
    await dropCache(inVolume, c);
    await timed("apiReadFile.cold", readToFile, { cachedBefore: await cached(inVolume, c) });
    await rm(dst, { force: true });
    await kept.delete();
  }
  const memEnd = await memoryOf(c.serverPid);
  const laterGrowth = (await allocated()) - afterWarmup;
  return { samples, memStart, memEnd, warmupMBs, poolGrowth, laterGrowth, verified, loops: [...loops] };
}

export async function run({ log }) {
  log(`throughput: ${SIZE_GIB} GiB file, ${REPEATS} repeats`);
  const dir = await scratchDir("throughput");
  let res;
  try {
    // Long idle timeout: volumes stay mounted between requests, so the cache state is ours to set.
    res = await withCairnd({ CAIRN_IDLE_UNMOUNT_MS: "600000" }, (c) => run1(c, dir, log));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const { samples } = res;
  const mbs = (op) => (samples[op] ? median(samples[op].map((s) => MBs(s.ms))) : NaN);
  const spread = (op) => {
    if (!samples[op]) return "";
    const v = samples[op].map((s) => MBs(s.ms));
    return `${fmtMBs(Math.min(...v))}–${fmtMBs(Math.max(...v))}`;
  };
  const peak = (ops) => Math.max(...ops.flatMap((op) => (samples[op] ?? []).map((s) => s.rssPeak)));
  const cell = (op) => (samples[op] ? `${fmtMBs(mbs(op))} (${spread(op)})` : "–");
  const vs = (op, base) => fmtPct(mbs(op) / mbs(base));

  const size = `${SIZE_GIB} GiB`;
  const header = ["", "path", "source cold MB/s", "source warm MB/s", "vs baseline (cold / warm)"];
  const align = "llrrr";
  const writeRows = [
    ["baseline", "`cp src dst && sync dst` (host disk → host disk)", cell("cp.cold"), cell("cp.warm"), "100%"],
    ["storage", "`dd bs=4M conv=fsync` into a mounted volume (no HTTP)", "–", cell("dd.warm"), `– / ${vs("dd.warm", "cp.warm")}`],
    ["storage", "same with `oflag=direct` (how cairnd writes bodies ≥ 4 MiB)", "–", cell("ddDirect.warm"), `– / ${vs("ddDirect.warm", "cp.warm")}`],
    ["**API**", "**SDK `files.writeFromFile(path, src)`**", cell("apiWrite.cold"), cell("apiWrite.warm"), `**${vs("apiWrite.cold", "cp.cold")} / ${vs("apiWrite.warm", "cp.warm")}**`],
    ["API", "SDK `files.write(path, fs.createReadStream(src))` (any stream, sent chunked)", "–", cell("apiWriteStream.warm"), `– / ${vs("apiWriteStream.warm", "cp.warm")}`],
    ["API", "`curl -T src` (PUT)", "–", cell("curlWrite.warm"), `– / ${vs("curlWrite.warm", "cp.warm")}`],
  ];
  const readHeader = ["", "path", "volume cold MB/s", "volume warm MB/s", "vs baseline (cold / warm)"];
  const readRows = [
    ["baseline", "`cp src dst && sync dst` (host disk → host disk)", cell("cp.cold"), cell("cp.warm"), "100%"],
    ["**API**", "**SDK `files.download(path, hostFile)`** (O_DIRECT blocks, fdatasync, rename)", cell("apiReadFile.cold"), cell("apiReadFile.warm"), `**${vs("apiReadFile.cold", "cp.cold")} / ${vs("apiReadFile.warm", "cp.warm")}**`],
    ["API", "`curl -o hostFile && sync hostFile` (GET)", "–", cell("curlReadFile.warm"), `– / ${vs("curlReadFile.warm", "cp.warm")}`],
    ["machine", "`dd oflag=direct` to the host disk and `curl -o /dev/null` GET, at once (until both end)", "–", cell("diskWithGet.warm"), `– / ${vs("diskWithGet.warm", "cp.warm")}`],
    ["baseline", "`cp src /dev/null`", cell("cpNull.cold"), cell("cpNull.warm"), "100%"],
    ["**API**", "**SDK `files.read` → discarded**", cell("apiReadNull.cold"), cell("apiReadNull.warm"), `**${vs("apiReadNull.cold", "cpNull.cold")} / ${vs("apiReadNull.warm", "cpNull.warm")}**`],
    ["API", "`curl -o /dev/null` (GET)", "–", cell("curlReadNull.warm"), `– / ${vs("curlReadNull.warm", "cpNull.warm")}`],
  ];
  const cpuPerGiB = (op, key) => (samples[op] ? median(samples[op].map((s) => s[key])) / 1000 / SIZE_GIB : NaN);
  const fmtS = (sec) => (Number.isFinite(sec) ? sec.toFixed(2) : "–");
  const cpuHeader = ["transfer (volume/source warm)", "cairnd CPU s/GiB", "SDK client CPU s/GiB"];
  const cpuRows = [
    ["SDK `files.writeFromFile`", fmtS(cpuPerGiB("apiWrite.warm", "serverCpuMs")), fmtS(cpuPerGiB("apiWrite.warm", "clientCpuMs"))],
    ["SDK `files.write(createReadStream)`", fmtS(cpuPerGiB("apiWriteStream.warm", "serverCpuMs")), fmtS(cpuPerGiB("apiWriteStream.warm", "clientCpuMs"))],
    ["`curl -T` (client not measured)", fmtS(cpuPerGiB("curlWrite.warm", "serverCpuMs")), "–"],
    ["SDK `files.download`", fmtS(cpuPerGiB("apiReadFile.warm", "serverCpuMs")), fmtS(cpuPerGiB("apiReadFile.warm", "clientCpuMs"))],
    ["SDK `files.read` → discarded", fmtS(cpuPerGiB("apiReadNull.warm", "serverCpuMs")), fmtS(cpuPerGiB("apiReadNull.warm", "clientCpuMs"))],
  ];
  const memHeader = ["cairnd RSS", "MiB"];
  const memRows = [
    ["at start (idle, after start-up)", fmtMiB(res.memStart.rss)],
    ["peak sampled during API writes", fmtMiB(peak(["apiWrite.cold", "apiWrite.warm", "apiWriteStream.warm", "curlWrite.warm"]))],
    ["peak sampled during API reads", fmtMiB(peak(["apiReadNull.cold", "apiReadNull.warm", "apiReadFile.cold", "apiReadFile.warm", "curlReadNull.warm", "curlReadFile.warm"]))],
    ["VmHWM (kernel's peak) at end", fmtMiB(res.memEnd.hwm)],
    ["at end", fmtMiB(res.memEnd.rss)],
  ];

  const cacheNotes = Object.entries(samples)
    .filter(([op, list]) => list.some((s) => (op.endsWith(".cold") ? s.cachedBefore > 0.05 : s.cachedBefore < 0.95)))
    .map(([op]) => op);
  const reading =
    `API write of a host file reaches ${vs("apiWrite.warm", "cp.warm")} of \`cp\` + sync with the SDK's \`writeFromFile\` ` +
    `(${fmtMBs(mbs("apiWrite.warm"))} vs ${fmtMBs(mbs("cp.warm"))} MB/s, source warm; ${vs("apiWrite.cold", "cp.cold")} with the source cold), ` +
    `${vs("apiWriteStream.warm", "cp.warm")} with \`files.write\` of a stream and ${vs("curlWrite.warm", "cp.warm")} with curl; ` +
    `the volume's storage alone (no HTTP) reaches ${vs("dd.warm", "cp.warm")} with buffered \`dd\` and ${vs("ddDirect.warm", "cp.warm")} with \`oflag=direct\`. ` +
    `API read to a host file reaches ${vs("apiReadFile.warm", "cp.warm")} of \`cp\` (volume warm; ${vs("apiReadFile.cold", "cp.cold")} cold), curl to a host file ${vs("curlReadFile.warm", "cp.warm")}; ` +
    `this machine writing its disk while a GET streams, with no Cairn client at all, reaches ${vs("diskWithGet.warm", "cp.warm")} (\`download\` gets ${fmtPct(mbs("apiReadFile.warm") / mbs("diskWithGet.warm"))} of that). ` +
    `cairnd's RSS peaked at ${fmtMiB(res.memEnd.hwm)} while moving ${size} bodies.`;
  const notes = [
    `${size} file of random bytes, ${REPEATS} repeats; each cell is the median MB/s (10^6 bytes/s) with min–max in parentheses. ` +
      `Each API write goes into a fresh ${SIZE_GIB + 1} GiB ext4 volume (already mounted; an untimed 1-byte write mounts it), timed until the response (cairnd fdatasyncs, renames and fsyncs the directory first).`,
    `Page cache: "cold" = that one file's pages dropped just before (\`dd iflag=nocache count=0\`, the host file or the file inside the volume), "warm" = fully cached (read once beforehand if it was not), checked with \`fincore\`` +
      (cacheNotes.length ? `; **not as intended for: ${cacheNotes.join(", ")}**.` : " before every transfer (all as intended)."),
    `The virtual disk below may have its own cache in the hypervisor; nothing here can drop it.`,
    `The "storage" rows are \`dd\`, buffered (fills the volume's page cache, flushes at the final fsync) and with \`oflag=direct\`. ` +
      `On this machine new page-cache pages are expensive (a guest whose idle memory goes back to the hypervisor; a DAMON \`pageout\` scheme runs): ` +
      `buffered writes of new data swing between ~280 and ~1100 MB/s, on the host disk too, while direct writes stay at 1.2–1.4 GB/s with a fifth of the CPU. ` +
      `The \`cp\` baseline is buffered and unchanged; its destination reuses the pages the previous copy freed. ` +
      `Since commit dab3c7f cairnd writes bodies in 4 MiB O_DIRECT blocks (two in flight; head, tail and bodies under 4 MiB buffered), then fdatasyncs as before.`,
    `The "machine" row runs \`dd oflag=direct\` of the host file to the host disk and \`curl\` GET of the volume's file to /dev/null at the same time: ` +
      `each alone runs at 1.0–1.5 GB/s here, together both slow to ~0.6–0.85 GB/s (measured while building this bench; no steal time shows, the virtual disk and loopback traffic compete below the guest). ` +
      `A download writes its disk while it receives, so this is its ceiling here; \`cp\` reads a cached file and does not touch the network.`,
    `Client and server share the same 2 cores, so CPU one side spends the other lacks (table below). ` +
      `Since commit 8541089 the SDK's \`writeFromFile\` and \`download\` skip \`fetch\` in Node: one reused read buffer for the response, the file sent from reused buffers (\`packages/sdk/src/bulk-http.ts\`); ` +
      `\`files.write\` of a stream skips it too, its pieces written to the socket as they come (the stream's own fresh buffers still cost the client a full GC every ~40 MB); ` +
      `\`fetch\` and \`node:http\` hand every socket read to JavaScript as a new buffer, which in a process with a few dozen MiB of heap costs a full garbage collection every ~30 MiB. ` +
      `Since commit b2089c1 cairnd sends bodies from reused buffers; since 3885c3c it reads a body ≥ 4 MiB through the page cache while that is fast and with O_DIRECT where a read comes from the disk, so a cold read fills no fresh page-cache pages.`,
    `Storage stack: cairnd's pool is a sparse XFS image loop-mounted on the host's ext4 (which cannot reflink), each volume an ext4 image in it on its own loop device; ${res.loops.join("; ") || "loop devices unknown"}.`,
    `Warm-up (not counted): two ${size} API writes into the fresh pool, the first at ${fmtMBs(res.warmupMBs)} MB/s: writes into pool space never used before also allocate the pool image's blocks on the host disk ` +
      `(the pool image grew by ${(res.poolGrowth / GiB).toFixed(2)} GiB); the timed writes reuse that space, as volumes in a long-lived pool do ` +
      `(it grew by ${(res.laterGrowth / GiB).toFixed(2)} GiB more during the timed repeats).`,
    `Integrity: ${res.verified}.`,
  ];
  const md = [
    `### Write ${size} (host file → durable file)`,
    "",
    mdTable(header, writeRows, align),
    "",
    `### Read ${size} (volume file → host)`,
    "",
    mdTable(readHeader, readRows, align),
    "",
    "### CPU (median per GiB moved)",
    "",
    mdTable(cpuHeader, cpuRows, "lrr"),
    "",
    "### cairnd memory",
    "",
    mdTable(memHeader, memRows, "lr"),
    "",
    `**Reading:** ${reading}`,
    "",
    ...notes.map((n) => `- ${n}`),
  ].join("\n");
  const plain = (rows) => rows.map((r) => r.map((x) => x.replace(/\*\*|`/g, "")));
  const text = [
    `Write ${size}`,
    textTable(header, plain(writeRows), align),
    "",
    `Read ${size}`,
    textTable(readHeader, plain(readRows), align),
    "",
    textTable(cpuHeader, plain(cpuRows), "lrr"),
    "",
    textTable(memHeader, memRows, "lr"),
    "",
    reading,
    ...(cacheNotes.length ? [`cache state not as intended for: ${cacheNotes.join(", ")}`] : []),
  ].join("\n");
  return { reading, markdown: md, text };
}
