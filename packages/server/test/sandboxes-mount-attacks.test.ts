/**
 * Hot-plug and detach against a hostile sandbox: the code inside plants programs where cairnd
 * might look for one, and symlinks at mount paths and their parents, then asks for the mount
 * work. cairnd must run nothing of the sandbox's, touch no mount but the volume's, and let
 * attachment records and ReadWriteOnce claims say only what is true.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cairn, type Sandbox } from "@cairn/sdk";
import { codeOf, withCairnd } from "./harness.js";

/** A program that, if anything ever runs it, leaves proof in the sandbox's /root. */
const PLANT = `#!/bin/sh
echo "$0 ran as $(id -u) $*" >> /root/planted-ran
exit 0
`;

describe("mount work against a hostile sandbox", () => {
  let cairn: Cairn;
  const cleanup: Sandbox[] = [];
  const track = (sb: Sandbox) => (cleanup.push(sb), sb);

  // Registered first, so it runs before the fixture destroys cairnd (after hooks run in order).
  after(async () => {
    for (const sb of cleanup) await sb.kill().catch(() => undefined);
  });
  withCairnd({}, (s) => ({ cairn } = s));

  it("runs none of the programs a sandbox planted where a mount helper could be looked up", async () => {
    const v = await cairn.volumes.create({ name: "planted" });
    await v.files.write("/data.txt", "volume data");
    const sb = track(await cairn.sandboxes.create());
    await sb.files.write("/root/plant.sh", PLANT);
    // Every name and place a detach or attach might look up inside the sandbox's namespace.
    const places = ["/run/cairn/busybox", "/bin/busybox", "/usr/bin/umount", "/usr/bin/mount", "/usr/bin/nsenter", "/usr/sbin/losetup", "/usr/local/bin/umount", "/usr/local/bin/mount"];
    const plant = await sb.exec(`set -e; for p in ${places.join(" ")}; do mkdir -p "$(dirname $p)"; cp /root/plant.sh "$p"; chmod 755 "$p"; done; echo planted`);
    assert.equal(plant.stdout, "planted\n", plant.stderr);

    await sb.attach(v.mount("/data"));
    assert.equal((await sb.exec("cat /data/data.txt")).stdout, "volume data");
    const d = await sb.detach("/data");
    assert.equal(d.state, "released");
    assert.equal((await sb.exec("ls /data | wc -l")).stdout.trim(), "0", "the volume is really gone from the sandbox");
    const ran = await sb.exec("cat /root/planted-ran 2>/dev/null || echo none");
    assert.equal(ran.stdout, "none\n", "no planted program ran");
    // Force detach and a restore that detaches writers take the same road.
    await sb.attach(v.mount("/data"));
    await sb.execBackground("cd /data && exec sleep 300");
    await v.checkpoints.create({ name: "cp1" });
    await v.checkpoints.restore("cp1", { detach: true });
    assert.equal((await sb.exec("cat /root/planted-ran 2>/dev/null || echo none")).stdout, "none\n");
    await sb.kill();
  });

  it("refuses to detach through a parent the sandbox replaced: /proc/sys stays read-only and the volume stays claimed", async () => {
    const v = await cairn.volumes.create({ name: "moved" });
    await v.files.write("/keep.txt", "kept");
    const sb = track(await cairn.sandboxes.create());
    await sb.attach(v.mount("/mnt/a/vol"));
    // The attack: move the mount's parent away, put a symlink to /proc/sys where the mount was.
    const swap = await sb.exec("mv /mnt/a /mnt/a-moved && mkdir /mnt/a && ln -s /proc/sys /mnt/a/vol && echo swapped");
    assert.equal(swap.stdout, "swapped\n", swap.stderr);

    assert.equal(await codeOf(sb.detach("/mnt/a/vol")), "MOUNT_CHANGED");
    const sys = await sb.exec("awk '$5 == \"/proc/sys\" { print $6 }' /proc/self/mountinfo; echo x > /proc/sys/kernel/core_pattern 2>&1 && echo WROTE || echo refused");
    assert.match(sys.stdout, /^ro,/, "the read-only /proc/sys mount is still there");
    assert.match(sys.stdout, /refused\n$/, "and sysctls stay read-only");
    const [att] = await sb.attachments();
    assert.equal(att!.state, "failed", "the attachment says what happened");
    assert.match(att!.error ?? "", /moved or replaced/);
    assert.equal((await sb.exec("cat /mnt/a-moved/vol/keep.txt")).stdout, "kept", "the volume is in fact still mounted, where the sandbox moved it");
    // The claim holds: no second sandbox gets this ReadWriteOnce volume while the first can write to it.
    assert.equal(await codeOf(cairn.sandboxes.create({ volumes: [v.mount("/v")] })), "VOLUME_ALREADY_ATTACHED");
    const other = track(await cairn.sandboxes.create());
    assert.equal(await codeOf(other.attach(v.mount("/v"))), "VOLUME_ALREADY_ATTACHED");

    // A parent that is a symlink is refused the same way.
    const swap2 = await sb.exec("rm /mnt/a/vol && rmdir /mnt/a && ln -s /proc /mnt/a && echo swapped");
    assert.equal(swap2.stdout, "swapped\n", swap2.stderr);
    assert.equal(await codeOf(sb.detach("/mnt/a/vol")), "MOUNT_CHANGED");

    // Put back where it was, the mount detaches, and then the claim goes.
    assert.equal((await sb.exec("rm /mnt/a && mv /mnt/a-moved /mnt/a && echo back")).stdout, "back\n");
    const d = await sb.detach("/mnt/a/vol");
    assert.equal(d.state, "released");
    assert.equal((await sb.exec("ls -A /mnt/a/vol | wc -l")).stdout.trim(), "0");
    await other.attach(v.mount("/v"));
    assert.equal((await other.exec("cat /v/keep.txt")).stdout, "kept");
    await Promise.all([sb.kill(), other.kill()]);
  });

  it("gives up a moved mount's claim only when the sandbox stops", async () => {
    const v = await cairn.volumes.create({ name: "moved-kill" });
    const sb = track(await cairn.sandboxes.create());
    await sb.attach(v.mount("/w/vol"));
    await sb.exec("mv /w /w2");
    assert.equal(await codeOf(sb.detach("/w/vol")), "MOUNT_CHANGED");
    assert.equal(await codeOf(cairn.sandboxes.create({ volumes: [v.mount("/v")] })), "VOLUME_ALREADY_ATTACHED");
    await sb.kill();
    const next = track(await cairn.sandboxes.create({ volumes: [v.mount("/v")] }));
    assert.equal((await next.attachments())[0]!.state, "mounted");
    await next.kill();
  });

  it("never hot-plugs through a symlink the sandbox planted on the way", async () => {
    const v = await cairn.volumes.create({ name: "symlinked" });
    const sb = track(await cairn.sandboxes.create());
    await sb.exec("ln -s /proc/sys /mnt/sys; ln -s /proc /mnt/p; mkdir -p /mnt/dir; ln -s /etc /mnt/dir/etc");
    for (const target of ["/mnt/sys", "/mnt/p/sys", "/mnt/dir/etc/x"]) {
      assert.equal(await codeOf(sb.attach(v.mount(target))), "INVALID_MOUNT", target);
    }
    const sys = await sb.exec("awk '$5 == \"/proc/sys\" { print $6 }' /proc/self/mountinfo; ls /etc/x 2>&1 | head -1");
    assert.match(sys.stdout, /^ro,/, "/proc/sys is untouched");
    assert.match(sys.stdout, /No such file/, "nothing was created through the /etc symlink");
    // Each refused attach gave its claim back.
    const ok = await sb.attach(v.mount("/mnt/real"));
    assert.equal(ok.state, "mounted");
    await sb.kill();
  });

  it("force-detach ends the processes that use the volume, so the volume is really out of the sandbox", async () => {
    const v = await cairn.volumes.create({ name: "held" });
    const sb = track(await cairn.sandboxes.create());
    await sb.attach(v.mount("/held"));
    // One process with its cwd there, one holding a file open for writing, one unrelated.
    await sb.execBackground("cd /held && exec sleep 301");
    await sb.execBackground("exec 3>/held/open.txt; exec sleep 302");
    await sb.execBackground("cd / && exec sleep 303");
    for (let i = 0; i < 100 && !/302/.test((await sb.exec("ps -eo args")).stdout); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await codeOf(sb.detach("/held")), "VOLUME_BUSY");
    const d = await sb.detach("/held", { force: true });
    assert.equal(d.state, "released");
    const ps = (await sb.exec("ps -eo args")).stdout;
    assert.doesNotMatch(ps, /sleep 301|sleep 302/, "the volume's users are gone");
    assert.match(ps, /sleep 303/, "the sandbox's other processes live on");
    assert.equal((await sb.exec("grep -c ' /held ' /proc/self/mountinfo || true")).stdout.trim(), "0");
    const other = track(await cairn.sandboxes.create({ volumes: [v.mount("/h")] }));
    assert.equal((await other.exec("ls /h/open.txt")).stdout, "/h/open.txt\n");
    await Promise.all([sb.kill(), other.kill()]);
  });
});
