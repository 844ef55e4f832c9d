/** Checkpoints against a real cairnd: freeze + reflink + thaw in an XFS pool, restore, fork. */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { GiB, MiB } from "@cairn/protocol";
import { codeOf, withCairnd, type CairndProcess } from "./harness.js";
import { run } from "../src/host/exec.js";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("checkpoints", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  const ns = () => `--mount=${c.dataDir}/run/mnt.ns`;

  withCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "300" } }, (s) => ({ c, cairn } = s));
  before(async () => {
  });

  it("restores in place: data from before is back, data from after is gone", async () => {
    const v = await cairn.volumes.create({ name: "cp-restore" });
    await v.files.write("/before.txt", "before");
    await v.files.write("/changed.txt", "old");
    const cp = await v.checkpoints.create({ name: "before-migration", labels: { why: "test" } });
    assert.equal(cp.name, "before-migration");
    assert.equal(cp.sizeBytes, GiB);
    assert.ok(cp.frozenMs >= 0);
    await v.files.write("/after.txt", "after");
    await v.files.write("/changed.txt", "new");
    const restored = await v.checkpoints.restore("before-migration");
    assert.equal(restored.status, "ready");
    assert.equal(await v.files.readText("/before.txt"), "before");
    assert.equal(await v.files.readText("/changed.txt"), "old");
    assert.equal(await codeOf(v.files.readText("/after.txt")), "PATH_NOT_FOUND");
    // By id too, and listed with its facts.
    assert.equal((await v.checkpoints.get(cp.id)).name, "before-migration");
    const list = await v.checkpoints.list();
    assert.deepEqual(list.map((x) => x.name), ["before-migration"]);
    assert.deepEqual(list[0]!.labels, { why: "test" });
  });

  it("forks into a new volume that is independent both ways", async () => {
    const v = await cairn.volumes.create({ name: "cp-src" });
    const data = randomBytes(2 * MiB);
    await v.files.write("/data.bin", data);
    await v.checkpoints.create({ name: "base" });
    const fork = await cairn.volumes.create({ name: "cp-fork", fromCheckpoint: "cp-src:base" });
    assert.equal(fork.info.sizeBytes, GiB);
    assert.ok(fork.info.usedBytes >= 2 * MiB, `a fork's usedBytes counts the data it came with (${fork.info.usedBytes})`);
    assert.equal(sha(await fork.files.readBytes("/data.bin")), sha(data));
    await fork.files.write("/only-fork.txt", "fork");
    await v.files.write("/only-src.txt", "src");
    assert.equal(await codeOf(v.files.readText("/only-fork.txt")), "PATH_NOT_FOUND");
    assert.equal(await codeOf(fork.files.readText("/only-src.txt")), "PATH_NOT_FOUND");
    // A fork can start bigger, never smaller.
    const big = await cairn.volumes.create({ name: "cp-fork-big", fromCheckpoint: "cp-src:base", sizeGb: 2 });
    assert.equal(big.info.sizeBytes, 2 * GiB);
    assert.equal(sha(await big.files.readBytes("/data.bin")), sha(data));
    assert.equal(await codeOf(cairn.volumes.create({ name: "cp-fork-x", fromCheckpoint: "cp-src:nope" })), "CHECKPOINT_NOT_FOUND");
    assert.equal(await codeOf(cairn.volumes.create({ name: "cp-fork-y", fromCheckpoint: "nope:base" })), "VOLUME_NOT_FOUND");
  });

  it("takes a crash-consistent checkpoint while writes go on: fsck-clean, a prefix of the writes", async () => {
    const v = await cairn.volumes.create({ name: "cp-live" });
    const acked: string[] = [];
    const hashes = new Map<string, string>();
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const body = randomBytes(32 * 1024);
        const path = `/log/${String(i).padStart(6, "0")}.bin`;
        await v.files.write(path, body);
        hashes.set(path, sha(body));
        acked.push(path);
      }
    })();
    // Count writes, not time: on a busy machine a few hundred milliseconds may hold none.
    const until = async (n: number) => {
      for (let i = 0; i < 1200 && acked.length < n; i++) await sleep(50);
    };
    await until(4);
    const ackedBefore = acked.length;
    assert.ok(ackedBefore > 3, "writes were flowing");
    const cp = await v.checkpoints.create({ name: "live" });
    const ackedAtCheckpoint = acked.length;
    await until(ackedAtCheckpoint + 4);
    stop = true;
    await writer;
    // fsck the checkpoint image itself, read-only.
    await run("nsenter", [ns(), "--", "e2fsck", "-fn", `${c.dataDir}/pool/checkpoints/${v.id}/${cp.id}.img`]);
    const fork = await cairn.volumes.create({ name: "cp-live-fork", fromCheckpoint: `cp-live:${cp.id}` });
    let present = 0;
    for (const [i, path] of acked.entries()) {
      const code = await codeOf(fork.files.readBytes(path));
      if (code === "PATH_NOT_FOUND") {
        // Everything after the first missing file is missing too: a prefix.
        for (const later of acked.slice(i)) assert.equal(await codeOf(fork.files.readBytes(later)), "PATH_NOT_FOUND", later);
        break;
      }
      assert.equal(sha(await fork.files.readBytes(path)), hashes.get(path), `${path} is whole`);
      present++;
    }
    assert.ok(present >= ackedBefore, `every write acknowledged before the checkpoint is in it (${present} >= ${ackedBefore})`);
    assert.ok(present < acked.length, "writes after the checkpoint are not in it");
  });

  it("refuses a restore while the volume is in use", async () => {
    const v = await cairn.volumes.create({ name: "cp-busy" });
    await v.checkpoints.create({ name: "c1" });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let sending!: () => void;
    const sent = new Promise<void>((r) => (sending = r));
    async function* slow() {
      yield new Uint8Array(1024);
      sending(); // the first bytes are on their way: the request (and its lease) is in
      await gate;
      yield new Uint8Array(1024);
    }
    const upload = v.files.write("/slow.bin", slow());
    await sent;
    await sleep(200);
    assert.equal(await codeOf(v.checkpoints.restore("c1")), "VOLUME_BUSY");
    release();
    await upload;
    assert.equal((await cairn.volumes.get("cp-busy")).info.status, "ready");
    assert.equal(await v.files.readText("/slow.bin").then((t) => t.length), 2048, "the upload was not disturbed");
  });

  it("validates names, refuses duplicates and unknown checkpoints", async () => {
    const v = await cairn.volumes.create({ name: "cp-names" });
    await v.checkpoints.create({ name: "one" });
    assert.equal(await codeOf(v.checkpoints.create({ name: "one" })), "CHECKPOINT_ALREADY_EXISTS");
    assert.equal(await codeOf(v.checkpoints.create({ name: "Bad Name" })), "INVALID_CHECKPOINT_NAME");
    assert.equal(await codeOf(v.checkpoints.get("nope")), "CHECKPOINT_NOT_FOUND");
    assert.equal(await codeOf(v.checkpoints.restore("nope")), "CHECKPOINT_NOT_FOUND");
    const unnamed = await v.checkpoints.create();
    assert.match(unnamed.name, /^cp-/);
  });

  it("keeps only the newest N with keep", async () => {
    const v = await cairn.volumes.create({ name: "cp-keep" });
    for (let i = 0; i < 5; i++) {
      await v.files.write("/n.txt", String(i));
      await v.checkpoints.create({ name: `k${i}`, keep: 3 });
    }
    assert.deepEqual((await v.checkpoints.list()).map((x) => x.name), ["k2", "k3", "k4"]);
    await v.checkpoints.restore("k2");
    assert.equal(await v.files.readText("/n.txt"), "2");
    await v.checkpoints.delete("k3");
    assert.deepEqual((await v.checkpoints.list()).map((x) => x.name), ["k2", "k4"]);
  });

  it("works across a grow, and deleting a volume deletes its checkpoints", async () => {
    const v = await cairn.volumes.create({ name: "cp-grow" });
    await v.files.write("/a.txt", "a");
    await v.checkpoints.create({ name: "small" });
    await cairn.volumes.resize("cp-grow", { sizeGb: 2 });
    await v.files.write("/b.txt", "b");
    const big = await v.checkpoints.create({ name: "big" });
    assert.equal(big.sizeBytes, 2 * GiB);
    const restored = await v.checkpoints.restore("small");
    assert.equal(restored.sizeBytes, GiB, "the volume is exactly the checkpoint, size included");
    assert.equal(await codeOf(v.files.readText("/b.txt")), "PATH_NOT_FOUND");
    await v.checkpoints.restore("big");
    assert.equal(await v.files.readText("/b.txt"), "b");
    const id = v.id;
    await cairn.volumes.delete("cp-grow");
    const { stdout } = await run("nsenter", [ns(), "--", "sh", "-c", `ls ${c.dataDir}/pool/checkpoints`]);
    assert.doesNotMatch(stdout, new RegExp(id));
  });

  it("exports a checkpoint as an image and as a tar, and imports both as new volumes", async () => {
    const v = await cairn.volumes.create({ name: "cp-export" });
    const data = randomBytes(3 * MiB);
    await v.files.write("/dir/data.bin", data);
    await v.files.write("/hello.txt", "persistent\n");
    await v.checkpoints.create({ name: "e1" });
    await v.files.write("/later.txt", "not in the checkpoint");

    const image = new Uint8Array(await new Response(await v.checkpoints.export("e1")).arrayBuffer());
    assert.equal(image.length, GiB, "the raw image has the volume's size");
    const fromImage = await cairn.volumes.import({ name: "cp-imported-image", format: "image", data: image });
    assert.equal(fromImage.info.sizeBytes, GiB);
    assert.equal(fromImage.info.filesystem, "ext4");
    assert.equal(sha(await fromImage.files.readBytes("/dir/data.bin")), sha(data));
    assert.equal(await codeOf(fromImage.files.readText("/later.txt")), "PATH_NOT_FOUND");

    const tar = new Uint8Array(await new Response(await v.checkpoints.export("e1", { format: "tar" })).arrayBuffer());
    assert.ok(tar.length < 8 * MiB, `the tar holds the files, not the image (${tar.length} bytes)`);
    const fromTar = await cairn.volumes.import({ name: "cp-imported-tar", format: "tar", data: tar, sizeGb: 2 });
    assert.equal(fromTar.info.sizeBytes, 2 * GiB);
    assert.equal(await fromTar.files.readText("/hello.txt"), "persistent\n");
    assert.equal(sha(await fromTar.files.readBytes("/dir/data.bin")), sha(data));

    // A hostile archive: a device node and a setuid root binary. The import extracts as root, as
    // the file API does: the device is left out, the setuid bit and the owner dropped.
    const evil = await mkdtemp(join(tmpdir(), "cairn-evil-tar-"));
    try {
      await mkdir(join(evil, "tree"));
      await run("mknod", [join(evil, "tree", "mem"), "c", "1", "1"]);
      await writeFile(join(evil, "tree", "suid"), "#!/bin/sh\n", { mode: 0o755 });
      await chmod(join(evil, "tree", "suid"), 0o4755);
      await chown(join(evil, "tree", "suid"), 0, 0);
      await run("tar", ["-c", "-f", join(evil, "evil.tar"), "-C", join(evil, "tree"), "."]);
      const imported = await cairn.volumes.import({ name: "cp-evil-tar", format: "tar", data: await readFile(join(evil, "evil.tar")) });
      assert.equal(await codeOf(imported.files.stat("/mem")), "PATH_NOT_FOUND");
      const suid = await imported.files.stat("/suid");
      assert.equal(suid.mode & 0o6000, 0, `mode ${suid.mode.toString(8)}`);
    } finally {
      await rm(evil, { recursive: true, force: true });
    }

    // Bad uploads leave no volume behind.
    assert.equal(await codeOf(cairn.volumes.import({ name: "cp-bad-image", format: "image", data: randomBytes(MiB) })), "INVALID_REQUEST");
    assert.equal(await codeOf(cairn.volumes.import({ name: "cp-bad-tar", format: "tar", data: "not a tar" })), "INVALID_REQUEST");
    const names = (await cairn.volumes.list({ limit: 1000 })).items.map((x) => x.name);
    for (const n of ["cp-bad-image", "cp-bad-tar"]) assert.ok(!names.includes(n), `${n} left no volume`);
  });

  it("refuses an archive that does not fit, all or nothing", async () => {
    const v = await cairn.volumes.create({ name: "cp-big-src" });
    await v.files.write("/a.bin", randomBytes(12 * MiB));
    await v.files.write("/b.bin", randomBytes(12 * MiB));
    await v.checkpoints.create({ name: "full" });
    const tar = new Uint8Array(await new Response(await v.checkpoints.export("full", { format: "tar" })).arrayBuffer());
    assert.equal(await codeOf(cairn.volumes.import({ name: "cp-too-small", format: "tar", data: tar, sizeBytes: 16 * MiB })), "QUOTA_EXCEEDED");
    assert.equal(await codeOf(cairn.volumes.get("cp-too-small")), "VOLUME_NOT_FOUND");
  });

  it("keeps checkpoints of a deleted volume restorable as new volumes when asked", async () => {
    const v = await cairn.volumes.create({ name: "cp-keepme" });
    await v.files.write("/precious.txt", "precious");
    await v.checkpoints.create({ name: "last" });
    await cairn.volumes.delete("cp-keepme", { keepCheckpoints: true });
    assert.equal(await codeOf(cairn.volumes.get("cp-keepme")), "VOLUME_NOT_FOUND");
    assert.ok(!(await cairn.volumes.list()).items.some((x) => x.id === v.id), "not among live volumes");
    const deleted = (await cairn.volumes.list({ deleted: true })).items;
    assert.deepEqual(deleted.map((x) => [x.id, x.status]), [[v.id, "deleted"]]);
    const again = await cairn.volumes.create({ name: "cp-keepme" });
    assert.notEqual(again.id, v.id, "the name is free again");
    const revived = await cairn.volumes.create({ name: "cp-revived", fromCheckpoint: `${v.id}:last` });
    assert.equal(await revived.files.readText("/precious.txt"), "precious");
    await v.checkpoints.delete("last");
    assert.deepEqual((await cairn.volumes.list({ deleted: true })).items, [], "its last checkpoint took the record with it");
  });

  it("costs no space until blocks diverge", async () => {
    const v = await cairn.volumes.create({ name: "cp-space" });
    await v.files.write("/big.bin", randomBytes(16 * MiB));
    const cp = await v.checkpoints.create({ name: "s" });
    assert.ok(cp.allocatedBytes >= 16 * MiB, `allocated ${cp.allocatedBytes}`);
    assert.ok(cp.exclusiveBytes < 1 * MiB, `a fresh checkpoint shares its blocks (exclusive ${cp.exclusiveBytes})`);
  });
});
