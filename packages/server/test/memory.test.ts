/**
 * cairnd's memory while large bodies stream through it: transfers raise its RSS by a bounded
 * amount (reused I/O blocks and little else), not by what V8 lets pile up between collections.
 * A cairnd of its own, so no earlier test has already raised the heap these measure.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn, type Volume } from "@cairn/sdk";
import { startCairnd, type CairndProcess } from "./harness.js";

const MiB = 1024 * 1024;
const BODY = 384 * MiB;
/**
 * Most these transfers, one after another, may raise cairnd's RSS. Measured on 2 cores: 20-24 MiB
 * (12 of them 4 MiB I/O blocks, reused from one transfer to the next); 44-54 MiB for the first PUT
 * alone when dead socket buffers wait for V8's own young-generation trigger (files/body-gc.ts),
 * and 8 MiB more from the download when reads and writes had a block pool each.
 */
const MAX_RISE = 36 * MiB;

async function status(pid: number, key: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)![1]) * 1024;
}

describe("cairnd memory while bodies stream (real cairnd)", () => {
  let c: CairndProcess;
  let v: Volume;
  let dir: string;
  let src: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-memory-"));
    src = join(dir, "body.bin");
    const fh = await open(src, "w");
    const buf = Buffer.alloc(16 * MiB);
    for (let done = 0; done < BODY; done += buf.length) await fh.write(randomFillSync(buf));
    await fh.close();
    c = await startCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "60000" } });
    v = await new Cairn({ url: c.url, apiKey: c.adminKey }).volumes.create({ name: "memory", sizeGb: 2 });
    await v.files.write("/warm.txt", "warm up the routes");
  });
  after(async () => {
    await c?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * cairnd's peak RSS so far over its RSS before the first transfer: what a transfer keeps (its
   * blocks) counts against the next one too.
   */
  let baseline: number | undefined;
  async function rise(fn: () => Promise<unknown>): Promise<number> {
    if (baseline === undefined) {
      await writeFile(`/proc/${c.serverPid}/clear_refs`, "5"); // VmHWM := VmRSS
      baseline = await status(c.serverPid, "VmRSS");
    }
    await fn();
    return (await status(c.serverPid, "VmHWM")) - baseline;
  }
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

  it("runs with the young-generation collector exposed to it", async () => {
    const argv = (await readFile(`/proc/${c.serverPid}/cmdline`, "utf8")).split("\0");
    assert.ok(argv.includes("--expose-gc"), argv.join(" "));
  });

  it("a 384 MiB PUT raises cairnd's RSS by a few MiB of blocks, not by dead socket buffers", async (t) => {
    const r = await rise(() => v.files.writeFromFile("/put.bin", src));
    t.diagnostic(`cairnd RSS +${mib(r)}`);
    assert.ok(r < MAX_RISE, `RSS rose by ${mib(r)}`);
    assert.equal((await v.files.stat("/put.bin")).size, BODY);
  });

  it("so does a 384 MiB resumable (tus) upload after it", async (t) => {
    const r = await rise(() => v.files.uploadFromFile("/tus.bin", src));
    t.diagnostic(`cairnd RSS +${mib(r)}`);
    assert.ok(r < MAX_RISE, `RSS rose by ${mib(r)}`);
    assert.equal((await v.files.stat("/tus.bin")).size, BODY);
  });

  it("and a 384 MiB download after both (reads and writes share their blocks)", async (t) => {
    const out = join(dir, "out.bin");
    const r = await rise(() => v.files.download("/put.bin", out));
    t.diagnostic(`cairnd RSS +${mib(r)}`);
    assert.ok(r < MAX_RISE, `RSS rose by ${mib(r)}`);
    assert.equal((await stat(out)).size, BODY);
  });
});
