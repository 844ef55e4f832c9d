/**
 * Disk fairness: a sandbox writes into a disk of its own, and the pool admits sandbox disks like
 * volumes. A sandbox that fills everything it can reach gets ENOSPC itself; the tenant next to it
 * keeps every byte it wrote and can go on writing.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Cairn, CairnError, type Sandbox } from "@cairn/sdk";
import { GiB, MiB } from "@cairn/protocol";
import { withCairnd } from "./harness.js";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("sandbox disks in a 6 GiB pool", () => {
  let cairn: Cairn;
  const cleanup: Sandbox[] = [];

  // Registered first, so it runs before the fixture destroys cairnd (after hooks run in order).
  after(async () => {
    for (const sb of cleanup) await sb.kill().catch(() => undefined);
  });
  withCairnd({ env: { CAIRN_POOL_SIZE: "6GiB", CAIRN_SANDBOX_DISK_SIZE: "2GiB", CAIRN_WARM_SANDBOXES: "0" } }, (s) => ({ cairn } = s));

  it("a sandbox that fills all it can reach hurts only itself; a disk that does not fit is refused", async () => {
    // The neighbour: a volume with data, used from another sandbox.
    const theirs = await cairn.volumes.create({ name: "neighbour", sizeBytes: 2 * GiB });
    const kept = randomBytes(20 * MiB);
    await theirs.files.write("/kept.bin", kept);
    const neighbour = await cairn.sandboxes.create({ volumes: [theirs.mount("/data")], diskGb: 1 });
    cleanup.push(neighbour);
    assert.equal(neighbour.info.diskGb, 1);

    // The attacker: default disk (2 GiB). 2 + 1 + 2 GiB promised of ~6.
    const attacker = await cairn.sandboxes.create();
    cleanup.push(attacker);
    assert.equal(attacker.info.diskGb, 2);
    // One more 2 GiB disk would promise more than the pool has: refused at the door.
    const refused = await cairn.sandboxes.create().catch((e: unknown) => e);
    assert.ok(refused instanceof CairnError, String(refused));
    assert.equal(refused.code, "POOL_FULL");
    assert.equal(refused.status, 507);
    assert.equal((await cairn.sandboxes.list()).filter((s) => s.state !== "stopped").length, 2, "a refused create leaves no sandbox");

    // Fill its root, /usr and /etc (installs land there): ENOSPC, in the attacker only.
    const fill = await attacker.exec(
      "dd if=/dev/zero of=/root/fill bs=1M count=3000 2>&1; dd if=/dev/zero of=/usr/fill bs=1M count=100 2>&1; echo rc=$?",
      { timeoutMs: 240_000 },
    );
    assert.match(fill.stdout, /No space left on device/);
    assert.equal((await attacker.exec("echo alive")).stdout, "alive\n", "the attacker's sandbox still runs");

    // The neighbour's data is intact, and it writes on: through its sandbox and through the API.
    assert.equal(sha(await theirs.files.readBytes("/kept.bin")), sha(kept));
    const w = await neighbour.exec("dd if=/dev/urandom of=/data/more.bin bs=1M count=100 2>&1 | tail -1; sha256sum /data/kept.bin; echo x > /root/mine && echo root-ok");
    assert.match(w.stdout, new RegExp(sha(kept)));
    assert.match(w.stdout, /root-ok/);
    assert.equal((await theirs.files.stat("/more.bin")).size, 100 * MiB);
    const fresh = randomBytes(50 * MiB);
    await theirs.files.write("/fresh.bin", fresh);
    assert.equal(sha(await theirs.files.readBytes("/fresh.bin")), sha(fresh));
    assert.equal((await cairn.health()).status, "ok");

    // Killing the attacker gives its disk back to the pool.
    await attacker.kill();
    const next = await cairn.sandboxes.create();
    cleanup.push(next);
    assert.equal((await next.exec("ls /root | wc -l")).stdout.trim(), "0", "a new sandbox starts on a fresh disk");
  });

  it("a fork gets a clone of the disk, and the two diverge", async () => {
    for (const sb of cleanup.splice(0)) await sb.kill().catch(() => undefined);
    const sb = await cairn.sandboxes.create({ diskGb: 1 });
    cleanup.push(sb);
    await sb.exec("echo before > /root/state.txt");
    const fork = await sb.fork();
    cleanup.push(fork);
    assert.equal(fork.info.diskGb, 1);
    assert.equal((await fork.exec("cat /root/state.txt")).stdout, "before\n");
    await fork.exec("echo fork > /root/state.txt");
    assert.equal((await sb.exec("cat /root/state.txt")).stdout, "before\n");
    assert.match((await fork.exec("df -k / | tail -1")).stdout, /^\S+\s+\d{6,7}\s/, "the fork's root is its own 1 GiB disk");
  });
});
