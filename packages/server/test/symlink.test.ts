/**
 * Symlinks planted inside a volume image (as a sandbox could) must never let the file API reach
 * the host: they resolve inside the volume, as if the volume were `/`.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Cairn, type Volume } from "@cairn/sdk";
import { codeOf, withCairnd, type CairndProcess } from "./harness.js";
import { run } from "../src/host/exec.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("symlinks planted in a volume", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;
  let hostPasswd: string;

  /** Run a shell script inside cairnd's mount namespace with the volume image mounted at $M. */
  async function withImageMounted(script: string): Promise<void> {
    const ns = `--mount=${c.dataDir}/run/mnt.ns`;
    const mnt = join(c.dataDir, "plant");
    await mkdir(mnt, { recursive: true });
    // Wait for cairnd's idle unmount: never mount one ext4 twice.
    for (let i = 0; i < 100; i++) {
      const { stdout } = await run("nsenter", [ns, "--", "findmnt", "-rn", "-o", "TARGET"]);
      if (!stdout.includes(v.id)) break;
      await sleep(100);
    }
    const image = join(c.dataDir, "pool", "volumes", `${v.id}.img`);
    await run("nsenter", [ns, "--", "sh", "-ec", `M=${mnt}; mount -o loop ${image} $M; trap 'umount $M' EXIT; ${script}`]);
  }

  withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "planted" });
    await v.files.write("/inside/real.txt", "inside");
    hostPasswd = createHash("sha256").update(await readFile("/etc/passwd")).digest("hex");
    await withImageMounted(`
      ln -s /etc/passwd $M/abs-passwd
      ln -s ../../../../../../etc/passwd $M/rel-passwd
      ln -s /etc $M/etc-dir
      ln -s ../../../../.. $M/inside/up
      ln -s /inside/real.txt $M/good-link
      ln -s loop-b $M/loop-a; ln -s loop-a $M/loop-b
      mkfifo $M/fifo
    `);
  });


  it("never reads the host's files through a symlink", async () => {
    for (const path of ["/abs-passwd", "/rel-passwd", "/etc-dir/passwd", "/inside/up/etc/passwd", "/inside/up/up/etc/hostname"]) {
      const result = await codeOf(v.files.readText(path));
      assert.equal(result, "PATH_NOT_FOUND", `${path} must resolve inside the volume`);
    }
  });

  it("resolves symlinks inside the volume root", async () => {
    assert.equal(await v.files.readText("/good-link"), "inside");
    await v.files.write("/etc/passwd", "the volume's own");
    assert.equal(await v.files.readText("/abs-passwd"), "the volume's own");
    assert.equal(await v.files.readText("/rel-passwd"), "the volume's own");
    assert.equal(await v.files.readText("/etc-dir/passwd"), "the volume's own");
    assert.equal(await v.files.readText("/inside/up/etc/passwd"), "the volume's own");
  });

  it("writes through a symlink land inside the volume, never on the host", async () => {
    await v.files.write("/abs-passwd", "written via link");
    await v.files.write("/etc-dir/new-file", "new");
    assert.equal(await v.files.readText("/etc/passwd"), "written via link");
    assert.equal(await v.files.readText("/etc/new-file"), "new");
    const now = createHash("sha256").update(await readFile("/etc/passwd")).digest("hex");
    assert.equal(now, hostPasswd, "the host's /etc/passwd is untouched");
    await assert.rejects(readFile("/etc/new-file"));
  });

  it("refuses symlink loops and special files", async () => {
    assert.equal(await codeOf(v.files.readText("/loop-a")), "INVALID_PATH");
    assert.equal(await codeOf(v.files.readText("/fifo")), "NOT_A_FILE");
  });
});
