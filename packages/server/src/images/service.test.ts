import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";
import { DirLayerStore, FakeRegistry } from "./fake/registry.js";
import { ImageRecords } from "./records.js";
import { ImageService } from "./service.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: CairnError) => e.code);

describe("image service (fake registry and layer store)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-images-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Sandboxes running each image (by digest), as `project/sandbox`. */
  const A = "prj_a";
  const B = "prj_b";
  const make = async (name: string, users: Record<string, string[]> = {}) => {
    const registry = new FakeRegistry();
    const layers = new DirLayerStore(join(dir, name, "layers"));
    const service = new ImageService({
      registry,
      layers,
      records: await new ImageRecords(join(dir, name, "records")).open(),
      users: async (digest, projectId) =>
        (users[digest] ?? []).filter((u) => projectId === undefined || u.startsWith(`${projectId}/`)).map((u) => u.split("/")[1]!),
      maxLayers: 3,
      scratchDir: join(dir, name, "tmp"),
      log: quiet,
    });
    return { registry, layers, service, users };
  };

  it("pulls an image many callers want at once once, and fetches each layer once", async () => {
    const { registry, service } = await make("once");
    registry.push("docker.io/library/app:1", ["base", "app"]);
    let open!: () => void;
    registry.gate = new Promise((r) => (open = r));
    const waiting = Array.from({ length: 10 }, () => service.ensure(A, "app:1"));
    open();
    const records = await Promise.all(waiting);
    assert.equal(new Set(records.map((r) => r.digest)).size, 1);
    assert.equal(registry.calls.filter((c) => c.op === "resolve").length, 1);
    assert.equal(registry.calls.filter((c) => c.op === "blob").length, 2);
    // Here now: a create asks nobody; a pull asks the registry again but fetches no layer.
    await service.ensure(A, "docker.io/library/app:1");
    await service.pull(A, "app:1");
    assert.equal(registry.calls.filter((c) => c.op === "resolve").length, 2);
    assert.equal(registry.calls.filter((c) => c.op === "blob").length, 2);
    assert.deepEqual(service.list(A)[0]!.refs, ["docker.io/library/app:1"]);
  });

  it("moves a tag to the new image and collects what only the old one used", async () => {
    const { registry, layers, service } = await make("move");
    const v1 = registry.push("docker.io/library/app:latest", ["base", "v1"]);
    await service.pull(A, "app");
    const v2 = registry.push("docker.io/library/app:latest", ["base", "v2"]);
    await service.pull(A, "app");
    assert.deepEqual(service.list(A).map((i) => i.digest), [v2.digest], "the old image had no name left and no sandbox");
    assert.equal(await layers.has(v1.config.rootfs!.diff_ids![1]!), false);
    assert.equal(await layers.has(v2.config.rootfs!.diff_ids![0]!), true, "the shared layer stays");
  });

  it("refuses to remove an image a sandbox runs, and removes it once none does", async () => {
    const users: Record<string, string[]> = {};
    const { registry, layers, service } = await make("rm", users);
    const img = registry.push("docker.io/library/app:1", ["only"]);
    await service.pull(A, "app:1");
    users[img.digest] = ["prj_a/sbx_a"];
    assert.equal(await codeOf(service.remove(A, "app:1")), "IMAGE_IN_USE");
    users[img.digest] = [];
    assert.deepEqual(await service.remove(A, "app:1"), { untagged: ["docker.io/library/app:1"], deleted: img.digest });
    assert.equal(await codeOf(service.remove(A, "app:1")), "IMAGE_NOT_FOUND");
    assert.deepEqual(await layers.layers(), []);
  });

  it("keeps nothing of an image whose layer does not match its digest", async () => {
    const { registry, layers, service } = await make("tamper");
    const img = registry.push("docker.io/library/bad:1", ["good", "evil"]);
    registry.tamper(img.layers[1]!.digest);
    assert.equal(await codeOf(service.pull(A, "bad:1")), "IMAGE_DIGEST_MISMATCH");
    assert.deepEqual(service.list(A), []);
    assert.deepEqual(await layers.layers(), [], "the good layer goes too: no image names it");
  });

  it("flattens an image with more layers than a sandbox stacks", async () => {
    const { registry, service } = await make("flat");
    const img = registry.push("docker.io/library/tall:1", ["a", "b", "c", "d"]);
    await service.pull(A, "tall:1");
    const lowers = await service.lowers(img.digest);
    assert.equal(lowers.length, 1);
    assert.match(lowers[0]!, /flat-/);
  });

  it("answers unknown images and bad references with their codes", async () => {
    const { service } = await make("codes");
    assert.equal(await codeOf(service.pull(A, "missing:1")), "IMAGE_NOT_FOUND");
    assert.equal(await codeOf(service.pull(A, "Bad:Ref")), "INVALID_IMAGE");
    assert.throws(() => service.get(A, "missing:1"), (e: CairnError) => e.code === "IMAGE_NOT_FOUND");
  });

  it("shows a project only its own images, names and sandboxes", async () => {
    const users: Record<string, string[]> = {};
    const { registry, layers, service } = await make("projects", users);
    const v1 = registry.push("docker.io/library/app:latest", ["base", "v1"]);
    await service.pull(A, "app");
    assert.deepEqual(service.list(B), [], "B pulled nothing");
    assert.throws(() => service.get(B, "app"), (e: CairnError) => e.code === "IMAGE_NOT_FOUND");
    assert.throws(() => service.get(B, v1.digest), (e: CairnError) => e.code === "IMAGE_NOT_FOUND", "not even by digest");
    assert.equal(await codeOf(service.remove(B, "app")), "IMAGE_NOT_FOUND");
    // B's pull of the same tag now names another image: A's name stays on the one A pulled.
    const v2 = registry.push("docker.io/library/app:latest", ["base", "v2"]);
    await service.pull(B, "app");
    assert.equal(service.get(A, "app").digest, v1.digest);
    assert.equal(service.get(B, "app").digest, v2.digest);
    // A's sandbox runs v1; B may not remove what it does not have, and is not told about A's sandboxes.
    users[v1.digest] = ["prj_a/sbx_a1"];
    assert.equal(await codeOf(service.remove(B, v1.digest)), "IMAGE_NOT_FOUND");
    assert.equal(service.get(A, "app").digest, v1.digest, "A still has it");
    const err = await service.remove(A, "app").catch((e: CairnError) => e);
    assert.equal((err as CairnError).code, "IMAGE_IN_USE");
    assert.match((err as CairnError).message, /sbx_a1/);
    users[v1.digest] = [];
    await service.remove(A, "app");
    assert.equal(await layers.has(v1.config.rootfs!.diff_ids![1]!), false, "nobody has v1: its own layer goes");
    assert.equal(await layers.has(v2.config.rootfs!.diff_ids![1]!), true, "B's image stays");
  });
});
