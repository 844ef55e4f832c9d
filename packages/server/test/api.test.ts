/** The volume API through the real SDK against a real cairnd on a socket, real loop devices. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Cairn, CairnError, Volume } from "@cairn/sdk";
import { ERROR_CODES, GiB, MiB } from "@cairn/protocol";
import { startCairnd, type CairndProcess } from "./harness.js";
import { run } from "../src/host/exec.js";
import { startPostgres, type Postgres } from "./postgres.js";

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<CairnError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CairnError, `expected CairnError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Mounts of cairnd's namespace, seen through its pinned namespace file. */
async function cairndMounts(c: CairndProcess): Promise<string> {
  const { stdout } = await run("nsenter", [`--mount=${c.dataDir}/run/mnt.ns`, "--", "findmnt", "-rn", "-o", "TARGET"]);
  return stdout;
}

// One suite, every metadata backend (CAIRN_TEST_BACKENDS=sqlite to run one).
const backends = (process.env.CAIRN_TEST_BACKENDS ?? "sqlite,postgres").split(",");

for (const backend of backends) describe(`volumes API on ${backend} (SDK against a real cairnd)`, () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let pg: Postgres | undefined;

  before(async () => {
    if (backend === "postgres") pg = await startPostgres();
    c = await startCairnd({ env: pg ? { CAIRN_DATABASE_URL: pg.url } : {} });
    cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
  });
  after(async () => {
    await c?.destroy();
    await pg?.stop();
  });

  it("Volume.fromName creates once, then returns the same volume", async () => {
    const v1 = await Volume.fromName("team-data", { createIfMissing: true, client: cairn });
    assert.equal(v1.info.sizeBytes, 1 * GiB);
    assert.equal(v1.info.filesystem, "ext4");
    assert.equal(v1.info.accessMode, "ReadWriteOnce");
    assert.equal(v1.info.status, "ready");
    const v2 = await Volume.fromName("team-data", { createIfMissing: true, client: cairn });
    assert.equal(v2.id, v1.id);
    await rejectsWith(cairn.volumes.create({ name: "team-data" }), "VOLUME_ALREADY_EXISTS", /team-data/);
    const res = await fetch(`${c.url}/v1/volumes`, {
      method: "POST",
      headers: { authorization: `Bearer ${c.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "team-data", ifExists: "return" }),
    });
    assert.equal(res.status, 200, "create-if-missing of an existing volume is a 200, not a 201");
  });

  it("writes and reads a file byte for byte, with ranges and ETags", async () => {
    const v = await cairn.volumes.fromName("files-vol", { createIfMissing: true });
    const w = await v.files.write("/hello.txt", "persistent\n");
    assert.equal(w.created, true);
    assert.equal(w.size, 11);
    assert.equal((await v.files.readText("/hello.txt")).trim(), "persistent");
    const data = randomBytes(3 * MiB + 17);
    await v.files.write("/deep/dir/blob.bin", data);
    assert.equal(sha(await v.files.readBytes("/deep/dir/blob.bin")), sha(data));
    const stream = await v.files.read("/deep/dir/blob.bin", { range: { start: 1000, end: 1999 } });
    const ranged = new Uint8Array(await new Response(stream).arrayBuffer());
    assert.equal(ranged.length, 1000);
    assert.deepEqual(Buffer.from(ranged), data.subarray(1000, 2000));
    // Compare-and-swap: a stale ETag is refused and the content stays.
    const first = await v.files.write("/cas.txt", "one");
    await v.files.write("/cas.txt", "two", { ifMatch: first.etag });
    await rejectsWith(v.files.write("/cas.txt", "three", { ifMatch: first.etag }), "PRECONDITION_FAILED");
    await rejectsWith(v.files.write("/cas.txt", "four", { ifNoneMatch: "*" }), "PRECONDITION_FAILED");
    assert.equal(await v.files.readText("/cas.txt"), "two");
    // A JSON file is a file, not a request body.
    const res = await fetch(`${c.url}/v1/volumes/files-vol/files/content?path=/a.json`, {
      method: "PUT",
      headers: { authorization: `Bearer ${c.adminKey}`, "content-type": "application/json" },
      body: '{"a":1}',
    });
    assert.equal(res.status, 201);
    assert.equal(await v.files.readText("/a.json"), '{"a":1}');
  });

  it("streams a write body of unknown length", async () => {
    const v = await cairn.volumes.fromName("stream-vol", { createIfMissing: true });
    const chunks = Array.from({ length: 40 }, () => randomBytes(256 * 1024));
    async function* gen() {
      for (const ch of chunks) yield ch;
    }
    const r = await v.files.write("/streamed.bin", gen());
    assert.equal(r.size, 40 * 256 * 1024);
    assert.equal(sha(await v.files.readBytes("/streamed.bin")), sha(Buffer.concat(chunks)));
  });

  it("refuses bad names, sizes and paths with stable codes and clear messages", async () => {
    for (const name of ["Team", "-x", "a".repeat(64), "has space", "dot.name", ""]) {
      await rejectsWith(cairn.volumes.create({ name }), "INVALID_VOLUME_NAME", /lowercase alphanumeric, underscores or hyphens/);
    }
    for (const sizeGb of [0, 101, 1.5]) {
      await rejectsWith(cairn.volumes.create({ name: "sized", sizeGb }), "INVALID_SIZE", /Size must be 1-100 GB/);
    }
    await rejectsWith(cairn.volumes.create({ name: "sized", sizeBytes: 1024 }), "INVALID_SIZE", /at least/);
    await rejectsWith(cairn.volumes.create({ name: "sized", sizeGb: 1, sizeBytes: GiB }), "INVALID_SIZE", /not both/);
    await rejectsWith(cairn.volumes.create({ name: "elsewhere", region: "iad" }), "REGION_MISMATCH", /region iad/);
    await rejectsWith(cairn.volumes.get("nope"), "VOLUME_NOT_FOUND", /"nope" not found/);
    const v = await cairn.volumes.fromName("paths-vol", { createIfMissing: true });
    // A name equal to another volume's id (or of any id's shape) would make lookups, and deletes, ambiguous.
    await rejectsWith(cairn.volumes.create({ name: v.id }), "INVALID_VOLUME_NAME", /shape of an id/);
    await rejectsWith(cairn.volumes.create({ name: "sbx_0123456789abcdefghjk" }), "INVALID_VOLUME_NAME", /shape of an id/);
    await rejectsWith(cairn.sandboxes.create({ volumes: { "/w": v.id } }), "INVALID_VOLUME_NAME", /shape of an id/);
    await rejectsWith(v.checkpoints.create({ name: "cp_0123456789abcdefghjk" }), "INVALID_CHECKPOINT_NAME", /shape of an id/);
    assert.equal((await cairn.volumes.get(v.id)).name, "paths-vol");
    for (const path of ["/../etc/passwd", "a/../../x", "/x\0y", "/" + "n".repeat(256)]) {
      const res = await fetch(`${c.url}/v1/volumes/${v.id}/files/content?path=${encodeURIComponent(path)}`, {
        headers: { authorization: `Bearer ${c.adminKey}` },
      });
      assert.equal(res.status, 400, path);
      const body = (await res.json()) as { code: string; requestId: string };
      assert.equal(body.code, "INVALID_PATH");
      assert.match(body.requestId, /^req_/);
      assert.match(res.headers.get("content-type") ?? "", /application\/problem\+json/);
    }
    await rejectsWith(v.files.readText("/missing.txt"), "PATH_NOT_FOUND");
    await rejectsWith(v.files.readText("/"), "NOT_A_FILE");
    const bad = await fetch(`${c.url}/v1/volumes`, {
      method: "POST",
      headers: { authorization: `Bearer ${c.adminKey}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, "INVALID_REQUEST");
  });

  it("needs a valid key on every route but health and the OpenAPI document", async () => {
    assert.equal((await fetch(`${c.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${c.url}/openapi.json`)).status, 200);
    await rejectsWith(new Cairn({ url: c.url, apiKey: "" }).volumes.list(), "UNAUTHORIZED");
    await rejectsWith(new Cairn({ url: c.url, apiKey: "cairn_admin_wrong" }).volumes.list(), "UNAUTHORIZED");
    await rejectsWith(new Cairn({ url: c.url, apiKey: `cairn_aaaaaaaaaaaa_${"A".repeat(43)}` }).volumes.list(), "UNAUTHORIZED");
  });

  it("keeps projects apart: another project's volume is a 404", async () => {
    const res = await fetch(`${c.url}/v1/projects`, {
      method: "POST",
      headers: { authorization: `Bearer ${c.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "other" }),
    });
    assert.equal(res.status, 201);
    const { apiKey } = (await res.json()) as { apiKey: { key: string } };
    const other = new Cairn({ url: c.url, apiKey: apiKey.key });
    const mine = await cairn.volumes.fromName("private-vol", { createIfMissing: true });
    await mine.files.write("/secret.txt", "mine");
    await rejectsWith(other.volumes.get("private-vol"), "VOLUME_NOT_FOUND");
    await rejectsWith(other.volumes.get(mine.id), "VOLUME_NOT_FOUND");
    await rejectsWith(other.volumes.delete(mine.id), "VOLUME_NOT_FOUND");
    const theirs = await other.volumes.create({ name: "private-vol" });
    assert.notEqual(theirs.id, mine.id, "the same name in another project is another volume");
    await rejectsWith(theirs.files.readText("/secret.txt"), "PATH_NOT_FOUND");
    assert.equal((await other.volumes.list()).items.length, 1);
    await rejectsWith(other.http.json({ method: "GET", path: "/v1/projects" }), "FORBIDDEN");
  });

  it("keeps two volumes' files apart", async () => {
    const a = await cairn.volumes.create({ name: "iso-a" });
    const b = await cairn.volumes.create({ name: "iso-b" });
    await a.files.write("/only-a.txt", "a");
    await rejectsWith(b.files.readText("/only-a.txt"), "PATH_NOT_FOUND");
    await b.files.write("/only-a.txt", "b");
    assert.equal(await a.files.readText("/only-a.txt"), "a");
  });

  it("lists with label filters, field selection and cursor pages", async () => {
    await cairn.volumes.create({ name: "big_vol", sizeGb: 10, accessMode: "ReadWriteMany", labels: { team: "ml" } });
    await cairn.volumes.create({ name: "lbl-2", labels: { team: "ml", tier: "hot" } });
    const ml = await cairn.volumes.list({ labels: { team: "ml" } });
    assert.deepEqual(ml.items.map((v) => v.name), ["big_vol", "lbl-2"]);
    const hot = await cairn.volumes.list({ labels: { team: "ml", tier: "hot" } });
    assert.deepEqual(hot.items.map((v) => v.name), ["lbl-2"]);
    const big = ml.items[0]!;
    assert.equal(big.sizeBytes, 10 * GiB);
    assert.equal(big.accessMode, "ReadWriteMany");
    const slim = await cairn.volumes.list({ fields: ["name", "sizeBytes"] });
    for (const item of slim.items) assert.deepEqual(Object.keys(item).sort(), ["name", "sizeBytes"]);
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await cairn.volumes.list({ limit: 2, ...(cursor ? { cursor } : {}) });
      assert.ok(page.items.length <= 2);
      names.push(...page.items.map((v) => v.name!));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    const all = (await cairn.volumes.list({ limit: 1000 })).items.map((v) => v.name);
    assert.deepEqual(names, all);
    assert.ok(pages > 2);
    const relabelled = await cairn.volumes.update("lbl-2", { labels: { team: "web" } });
    assert.deepEqual(relabelled.info.labels, { team: "web" });
    assert.deepEqual((await cairn.volumes.list({ labels: { team: "ml" } })).items.map((v) => v.name), ["big_vol"]);
    await rejectsWith(cairn.volumes.list({ fields: ["nope" as never] }), "INVALID_REQUEST", /Unknown field/);
  });

  it("grows a volume, says how, and refuses to shrink", async () => {
    const v = await cairn.volumes.create({ name: "growing" });
    await v.files.write("/keep.txt", "kept");
    const { volume, resize } = await cairn.volumes.resize("growing", { sizeGb: 2 });
    assert.equal(volume.info.sizeBytes, 2 * GiB);
    assert.ok(resize && ["online", "offline"].includes(resize.mode));
    assert.equal(resize?.previousSizeBytes, 1 * GiB);
    assert.equal(await v.files.readText("/keep.txt"), "kept");
    // The filesystem really grew: a 1.5 GiB file fits now.
    const big = new Uint8Array(8 * MiB);
    async function* body() {
      for (let i = 0; i < 192; i++) yield big;
    }
    await v.files.write("/big.bin", body());
    await rejectsWith(cairn.volumes.resize("growing", { sizeGb: 1 }), "VOLUME_SHRINK_NOT_ALLOWED", /cannot shrink|grow but not shrink/);
    const again = await cairn.volumes.resize("growing", { sizeGb: 2 });
    assert.equal(again.resize?.mode, "none");
  });

  it("grows an XFS volume online while it is mounted", async () => {
    const v = await cairn.volumes.create({ name: "xfs-vol", filesystem: "xfs" });
    assert.equal(v.info.filesystem, "xfs");
    await v.files.write("/x.txt", "on xfs");
    // The write just mounted it; grow before the idle unmount.
    const { resize } = await cairn.volumes.resize("xfs-vol", { sizeGb: 2 });
    assert.ok(resize && ["online", "offline"].includes(resize.mode));
    assert.equal(await v.files.readText("/x.txt"), "on xfs");
    const after = await cairn.volumes.get("xfs-vol");
    assert.equal(after.info.sizeBytes, 2 * GiB);
  });

  it("says QUOTA_EXCEEDED when a write does not fit, and keeps the old content", async () => {
    const v = await cairn.volumes.create({ name: "tiny", sizeBytes: 32 * MiB });
    await v.files.write("/data.bin", "old content");
    const chunk = new Uint8Array(MiB).fill(7);
    async function* tooBig() {
      for (let i = 0; i < 64; i++) yield chunk;
    }
    // Unknown length: the kernel's ENOSPC stops it mid-stream.
    await rejectsWith(v.files.write("/data.bin", tooBig()), "QUOTA_EXCEEDED", /full/);
    assert.equal(await v.files.readText("/data.bin"), "old content");
    // Known length: refused before a byte lands.
    await rejectsWith(v.files.write("/data.bin", new Uint8Array(64 * MiB)), "QUOTA_EXCEEDED");
    assert.equal(await v.files.readText("/data.bin"), "old content");
    // Nothing half-written was left behind: the space is free again.
    await v.files.write("/fits.bin", new Uint8Array(16 * MiB));
  });

  it("says QUOTA_EXCEEDED, not a server error, when a directory or a move does not fit", async () => {
    const v = await cairn.volumes.create({ name: "tiny-dirs", sizeBytes: 16 * MiB });
    await v.files.write("/keep/x.txt", "x");
    // Fill it to the last block: big pieces first, then ever smaller ones.
    for (const size of [MiB, 64 * 1024, 4096, 1024]) {
      for (let i = 0; i < 5000; i++) {
        const err = await v.files.write(`/fill-${size}-${i}`, new Uint8Array(size)).then(() => undefined, (e: unknown) => e);
        if (err === undefined) continue;
        assert.equal((err as CairnError).code, "QUOTA_EXCEEDED", String(err));
        break;
      }
    }
    await rejectsWith(v.files.mkdir("/a/b/c"), "QUOTA_EXCEEDED", /full/);
    await rejectsWith(v.files.move("/keep/x.txt", "/new/dir/x.txt"), "QUOTA_EXCEEDED", /full/);
    assert.equal(await v.files.readText("/keep/x.txt"), "x", "nothing moved");
  });

  it("keeps data across unmount and remount, and unmounts idle volumes", async () => {
    const v = await cairn.volumes.create({ name: "remount" });
    const data = randomBytes(MiB);
    await v.files.write("/r.bin", data);
    assert.match(await cairndMounts(c), new RegExp(`mounts/${v.id}`));
    // Idle grace in tests is 200 ms.
    for (let i = 0; i < 50 && (await cairndMounts(c)).includes(v.id); i++) await new Promise((r) => setTimeout(r, 100));
    assert.doesNotMatch(await cairndMounts(c), new RegExp(v.id), "an idle volume is unmounted");
    // The loop device (autoclear) goes when the kernel drops the last reference: soon, not at once.
    let loops = "";
    for (let i = 0; i < 50; i++) {
      loops = (await run("losetup", ["-a"])).stdout;
      if (!loops.includes(v.id)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.doesNotMatch(loops, new RegExp(v.id), "its loop device is gone with the mount");
    assert.equal(sha(await v.files.readBytes("/r.bin")), sha(data));
    const info = await cairn.volumes.get("remount");
    assert.ok(info.info.usedBytes >= MiB, `usedBytes ${info.info.usedBytes} counts the file`);
  });

  it("deletes a volume with its data", async () => {
    const v = await cairn.volumes.create({ name: "doomed" });
    await v.files.write("/x", "x");
    await cairn.volumes.delete("doomed");
    await rejectsWith(cairn.volumes.get("doomed"), "VOLUME_NOT_FOUND");
    await rejectsWith(cairn.volumes.delete("doomed"), "VOLUME_NOT_FOUND");
    const again = await cairn.volumes.create({ name: "doomed" });
    await rejectsWith(again.files.readText("/x"), "PATH_NOT_FOUND");
  });

  it("publishes an OpenAPI document that agrees with the error table", async () => {
    const doc = (await (await fetch(`${c.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, Record<string, { operationId: string }>>;
      components: { schemas: { Problem: { properties: { code: { enum: string[] } } } } };
    };
    assert.equal(doc.openapi, "3.1.0");
    assert.deepEqual(doc.components.schemas.Problem.properties.code.enum.sort(), Object.keys(ERROR_CODES).sort());
    const ops = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
    for (const op of ["createVolume", "listVolumes", "getVolume", "updateVolume", "deleteVolume", "writeFile", "readFile"]) {
      assert.ok(ops.includes(op), `${op} is documented`);
    }
  });
});
