/**
 * Images: first pull + unpack of a ~100 MB image, and create → first exec from a cached image.
 *
 * Cairn: `cairn.images.pull(ref)` against Debian's docker-registry on loopback (the image is
 * removed, layers and all, between rounds, so each pull is a first one); then
 * `sandboxes.create({ image })` + `exec("true")` with the image cached.
 *
 * Baselines, same run, interleaved round by round: `skopeo copy docker://… oci:…` followed by
 * `umoci unpack` of the same image (what cairnd would do if it drove the tools); and `crun run`
 * of umoci's bundle running /bin/true.
 *
 * The image: the static busybox, 2,000 files of 4 KiB (random), 4 files of 20 MiB (random) and
 * 10 MiB of compressible text, in four gzip layers.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Cairn } from "@cairn/sdk";
import { buildLayer, busyboxLayer, pushImage, startRegistry } from "../packages/server/dist/test/registry.js";
import { fmtMs, mdTable, median, now, scratchDir, sh, textTable, withCairnd } from "./lib.js";

export const name = "images";
export const title = "Image pull + unpack vs skopeo + umoci; create → first exec from a cached image vs crun run";

const ROUNDS = Number(process.env.CAIRN_BENCH_IMAGE_ROUNDS ?? 3);
const EXEC_RUNS = Number(process.env.CAIRN_BENCH_IMAGE_EXEC_RUNS ?? 10);

async function buildImage(reg) {
  const small = await buildLayer(Array.from({ length: 2000 }, (_, i) => ({ path: `small/${i % 50}/f${i}`, content: randomBytes(4096) })));
  const big = await buildLayer(Array.from({ length: 4 }, (_, i) => ({ path: `big/b${i}`, content: randomBytes(20 * 1024 * 1024) })));
  const text = await buildLayer([{ path: "text/words", content: Buffer.from("lorem ipsum dolor sit amet ".repeat(400_000)) }]);
  const layers = [await busyboxLayer(), small, big, text];
  await pushImage(reg.host, "bench/app:1", { layers, config: { Cmd: ["/bin/true"] } });
  return { ref: `${reg.host}/bench/app:1`, compressed: layers.reduce((n, l) => n + l.blob.length, 0) };
}

async function skopeoUmoci(dir, ref, i) {
  const layout = join(dir, `oci-${i}`);
  const bundle = join(dir, `bundle-${i}`);
  const t0 = now();
  await sh("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${layout}:t`]);
  const t1 = now();
  await sh("umoci", ["unpack", "--image", `${layout}:t`, bundle]);
  const t2 = now();
  await rm(layout, { recursive: true, force: true });
  return { copy: t1 - t0, unpack: t2 - t1, total: t2 - t0, bundle };
}

export async function run({ log }) {
  const dir = await scratchDir("images");
  const reg = await startRegistry();
  try {
    const { ref, compressed } = await buildImage(reg);
    log(`  image ${ref}: ${(compressed / 1048576).toFixed(0)} MiB compressed`);
    const m = { cairn: [], skopeo: [], copy: [], unpack: [], create: [], crun: [] };
    let bundle;
    await withCairnd({ CAIRN_WARM_SANDBOXES: "0" }, async (c) => {
      const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
      for (let i = 0; i < ROUNDS; i++) {
        const t0 = now();
        await cairn.images.pull(ref);
        m.cairn.push(now() - t0);
        if (i < ROUNDS - 1) await cairn.images.remove(ref);
        const s = await skopeoUmoci(dir, ref, i);
        m.skopeo.push(s.total);
        m.copy.push(s.copy);
        m.unpack.push(s.unpack);
        if (bundle) await rm(bundle, { recursive: true, force: true });
        bundle = s.bundle;
        log(`  round ${i + 1}: cairn ${fmtMs(m.cairn.at(-1))} ms, skopeo+umoci ${fmtMs(s.total)} ms`);
      }
      // crun refuses the v1/v2 hybrid's unified hierarchy; run.js's namespace is private, so hiding it here does not touch the host.
      await sh("umount", ["/sys/fs/cgroup/unified"]).catch(() => undefined);
      const cfgPath = join(bundle, "config.json");
      const spec = JSON.parse(await readFile(cfgPath, "utf8"));
      spec.process.terminal = false;
      spec.process.args = ["/bin/true"];
      await writeFile(cfgPath, JSON.stringify(spec));
      for (let i = 0; i < EXEC_RUNS + 1; i++) {
        const t0 = now();
        const sb = await cairn.sandboxes.create({ image: ref });
        await sb.exec("true");
        const t1 = now();
        await sb.kill();
        const t2 = now();
        await sh("crun", ["--root", join(dir, "state"), "run", "-b", bundle, `cairn-bench-img-${i}`]);
        const t3 = now();
        if (i > 0) {
          m.create.push(t1 - t0);
          m.crun.push(t3 - t2);
        }
      }
    });
    const header = ["", "Cairn", "baseline", "ratio"];
    const rows = [
      ["first pull + unpack (median)", `${fmtMs(median(m.cairn))} ms`, `${fmtMs(median(m.skopeo))} ms (skopeo copy ${fmtMs(median(m.copy))} + umoci unpack ${fmtMs(median(m.unpack))})`, (median(m.cairn) / median(m.skopeo)).toFixed(2)],
      ["create → first exec, cached image (median)", `${fmtMs(median(m.create))} ms`, `${fmtMs(median(m.crun))} ms (crun run of umoci's bundle)`, (median(m.create) / median(m.crun)).toFixed(2)],
    ];
    const reading = `A first pull + unpack of a ${(compressed / 1048576).toFixed(0)} MiB image took ${fmtMs(median(m.cairn))} ms through cairnd against ${fmtMs(median(m.skopeo))} ms for skopeo copy + umoci unpack (median of ${ROUNDS}); create → first exec from the cached image ${fmtMs(median(m.create))} ms against ${fmtMs(median(m.crun))} ms for a raw crun run (median of ${EXEC_RUNS}).`;
    const notes = [
      "Both pull from the same docker-registry on loopback (plain HTTP). cairnd spools each layer to the pool while checking its digest, then decompresses, checks the diff id and extracts it with GNU tar, and shapes it for overlay; skopeo copies the blobs to an OCI layout, umoci unpacks them into one rootfs.",
      "Cairn's create includes the sandbox's own ext4 disk (mkfs and mount), idmapping each layer and mounting the overlay, crun run, sealing the root and the first exec; the baseline's crun run runs /bin/true as the container's process in umoci's bundle, no user namespace, no disk of its own.",
    ];
    return {
      markdown: [mdTable(header, rows, "lrrr"), "", `**Reading:** ${reading}`, "", ...notes.map((n) => `- ${n}`)].join("\n"),
      text: [textTable(header, rows, "lrrr"), "", reading].join("\n"),
    };
  } finally {
    await reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
