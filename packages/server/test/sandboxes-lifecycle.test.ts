/** Sandboxes across cairnd restarts and regions, and checkpoints mounted into sandboxes. */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cairn, CairnError } from "@cairn/sdk";
import { makeDataDir, startCairnd, type CairndProcess } from "./harness.js";

/** The code and message a call fails with (["ok", ""] when it does not). */
async function failure(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
    return ["ok", ""];
  } catch (err) {
    assert.ok(err instanceof CairnError, String(err));
    return [err.code, err.message];
  }
}


describe("sandboxes across restarts, regions and checkpoints", () => {
  const procs: CairndProcess[] = [];
  after(async () => {
    for (const p of procs.reverse()) await p.destroy().catch(() => undefined);
  });

  it("mounts a checkpoint read-only into a sandbox: the old view beside the live one", async () => {
    const c = await startCairnd();
    procs.push(c);
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    const v = await cairn.volumes.create({ name: "team-data" });
    await v.files.write("/schema.sql", "v1");
    await v.checkpoints.create({ name: "before-migration" });
    await v.files.write("/schema.sql", "v2");
    const sb = await cairn.sandboxes.create({
      template: "base",
      volumes: [v.mount("/live"), v.mount("/old", { checkpoint: "before-migration" })],
    });
    try {
      const r = await sb.exec("cat /live/schema.sql; echo; cat /old/schema.sql; echo; touch /old/x");
      assert.equal(r.stdout, "v2\nv1\n");
      assert.match(r.stderr, /Read-only file system/);
      const atts = await sb.attachments();
      assert.equal(atts.find((a) => a.mountPath === "/old")!.mode, "ro");
      assert.equal(atts.find((a) => a.mountPath === "/old")!.checkpoint !== null, true);
      // A checkpoint view does not hold the volume: its ReadWriteOnce claim is the live mount's.
      const [code] = await failure(cairn.sandboxes.create({ volumes: [v.mount("/again")] }));
      assert.equal(code, "VOLUME_ALREADY_ATTACHED");
      // Restore is refused while a sandbox writes to the volume.
      const [restore] = await failure(v.checkpoints.restore("before-migration"));
      assert.equal(restore, "VOLUME_BUSY");
      // With detach, the sandbox loses the mount (released) and keeps running; the restore happens.
      await v.checkpoints.restore("before-migration", { detach: true });
      const after = await sb.attachments();
      assert.equal(after.find((a) => a.mountPath === "/live")!.state, "released");
      assert.equal((await sb.exec("echo alive")).stdout, "alive\n");
    } finally {
      await sb.kill();
    }
    assert.equal(await v.files.readText("/schema.sql"), "v1");
  });

  it("keeps sandboxes and their mounts running across a cairnd restart, and across kill -9", async () => {
    const dataDir = await makeDataDir("sbrestart");
    const first = await startCairnd({ dataDir });
    procs.push(first);
    let cairn = new Cairn({ url: first.url, apiKey: first.adminKey });
    const sb = await cairn.sandboxes.create({ volumes: { "/workspace": "kept" } });
    await sb.exec("echo before > /workspace/a.txt; echo mem > /tmp/t");
    await first.stop();
    const second = await startCairnd({ dataDir });
    procs.push(second);
    cairn = new Cairn({ url: second.url, apiKey: second.adminKey });
    let again = await cairn.sandboxes.get(sb.id);
    assert.equal(again.state, "running");
    assert.equal((await again.exec("cat /workspace/a.txt /tmp/t")).stdout, "before\nmem\n", "same processes, same mounts");
    await again.exec("echo after > /workspace/b.txt");
    await second.crash();
    const third = await startCairnd({ dataDir });
    procs.push(third);
    cairn = new Cairn({ url: third.url, apiKey: third.adminKey });
    again = await cairn.sandboxes.get(sb.id);
    assert.equal(again.state, "running");
    assert.equal((await again.exec("cat /workspace/a.txt /workspace/b.txt")).stdout, "before\nafter\n");
    assert.equal((await again.attachments())[0]!.state, "mounted");
    await again.kill();
    const vol = await cairn.volumes.get("kept");
    assert.equal(await vol.files.readText("/b.txt"), "after\n");
  });

  it("refuses a volume of another region with the region's name", async () => {
    const dataDir = await makeDataDir("region");
    const iad = await startCairnd({ dataDir, args: ["--region", "iad"] });
    procs.push(iad);
    await new Cairn({ url: iad.url, apiKey: iad.adminKey }).volumes.create({ name: "v" });
    await iad.stop();
    const fra = await startCairnd({ dataDir, args: ["--region", "fra"] });
    procs.push(fra);
    const cairn = new Cairn({ url: fra.url, apiKey: fra.adminKey });
    const [code, message] = await failure(cairn.sandboxes.create({ volumes: { "/data": "v" } }));
    assert.equal(code, "REGION_MISMATCH");
    assert.equal(message, 'Volume "v" is in region iad');
  });

  it("lists by state, and forgets killed sandboxes after the retention", async () => {
    const c = await startCairnd({ env: { CAIRN_STOPPED_SANDBOX_RETENTION_MS: "1500", CAIRN_WARM_SANDBOXES: "0" } });
    procs.push(c);
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    const keep = await cairn.sandboxes.create();
    const gone = await cairn.sandboxes.create();
    await gone.kill();
    assert.deepEqual((await cairn.sandboxes.list({ state: "running" })).map((s) => s.id), [keep.id]);
    assert.deepEqual((await cairn.sandboxes.list({ state: "stopped" })).map((s) => s.id), [gone.id], "listed for a while, to read why");
    let listed = true;
    for (let i = 0; i < 300 && listed; i++) {
      listed = (await cairn.sandboxes.list()).some((s) => s.id === gone.id);
      if (listed) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(listed, false, "forgotten after the retention");
    const [code] = await failure(cairn.sandboxes.get(gone.id));
    assert.equal(code, "SANDBOX_NOT_FOUND");
    assert.equal((await cairn.sandboxes.get(keep.id)).info.state, "running", "a running one is never pruned");
    await keep.kill();
  });
});
