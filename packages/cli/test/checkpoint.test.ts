/**
 * `cairn checkpoint …`, `volume create --from-checkpoint` and `volume import`: the built binary
 * against a real cairnd. Needs root (loop devices, mounts, crun for the busy-restore case).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";
import { cli, fails, haveScript, json, killAllSandboxes, ok } from "./helpers.js";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const VERBS = ["create", "list", "get", "restore", "export", "delete"];
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface CheckpointJson {
  id: string;
  name: string;
  volumeId: string;
  labels: Record<string, string>;
  sizeBytes: number;
  allocatedBytes: number;
  exclusiveBytes: number;
  createdAt: string;
}

describe("cairn checkpoint", () => {
  let cairnd: CairndProcess;
  let scratch: string;
  const { cairn, tty } = cli(() => cairnd);
  const read = async (volume: string, path: string) => {
    const r = await cairn(["volume", "read", volume, path]);
    ok(r);
    return r.out;
  };

  before(async () => {
    cairnd = await startCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "300" } });
    scratch = await mkdtemp(join(tmpdir(), "cairn-cli-checkpoint-"));
  });
  after(async () => {
    try {
      if (cairnd) await killAllSandboxes(cairnd);
    } finally {
      await cairnd?.destroy();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }
  });

  describe("help", () => {
    it("cairn checkpoint --help lists every verb", async () => {
      const r = await cairn(["checkpoint", "--help"]);
      ok(r);
      for (const verb of VERBS) assert.match(r.out, new RegExp(`^ {2}${verb}\\b`, "m"), `checkpoint --help lacks ${verb}`);
    });

    for (const verb of VERBS) {
      it(`cairn checkpoint ${verb} --help shows usage and an example`, async () => {
        const r = await cairn(["checkpoint", verb, "--help"]);
        ok(r);
        assert.match(r.out, new RegExp(`Usage: cairn checkpoint ${verb}`));
        assert.match(r.out, new RegExp(`\\$ cairn checkpoint ${verb} `));
      });
    }

    it("cairn volume import --help and volume create --help show the new options", async () => {
      const imp = await cairn(["volume", "import", "--help"]);
      ok(imp);
      assert.match(imp.out, /\$ cairn volume import moved --from team-data\.img/);
      const create = await cairn(["volume", "create", "--help"]);
      assert.match(create.out, /--from-checkpoint <volume:checkpoint>/);
      assert.match(create.out, /\$ cairn volume create team-data-copy --from-checkpoint team-data:before-migration/);
    });
  });

  describe("the issue's flow", () => {
    let checkpointId = "";
    const random = randomBytes(3 * MiB);

    before(async () => {
      ok(await cairn(["volume", "create", "team-data"]));
      ok(await cairn(["volume", "write", "team-data", "/hello.txt"], { input: "before\n" }));
      ok(await cairn(["volume", "write", "team-data", "/dir/random.bin"], { input: random }));
    });

    it("create --name --label: JSON when piped", async () => {
      const r = await cairn(["checkpoint", "create", "team-data", "--name", "before-migration", "--label", "why=migration"]);
      ok(r);
      const cp = json<CheckpointJson>(r);
      assert.equal(cp.name, "before-migration");
      assert.match(cp.id, /^cp_/);
      assert.deepEqual(cp.labels, { why: "migration" });
      assert.equal(cp.sizeBytes, GiB);
      checkpointId = cp.id;
    });

    it("list shows name, id, created, size, allocated and exclusive bytes", async () => {
      const r = await cairn(["checkpoint", "list", "team-data"]);
      ok(r);
      const items = json<CheckpointJson[]>(r);
      assert.deepEqual(items.map((c) => c.name), ["before-migration"]);
      for (const key of ["id", "createdAt", "sizeBytes", "allocatedBytes", "exclusiveBytes"]) assert.ok(key in items[0]!, key);
      assert.ok(items[0]!.allocatedBytes >= 3 * MiB, `allocated ${items[0]!.allocatedBytes}`);
    });

    it("get by name and by id", async () => {
      assert.equal(json<CheckpointJson>(await cairn(["checkpoint", "get", "team-data", "before-migration"])).id, checkpointId);
      assert.equal(json<CheckpointJson>(await cairn(["checkpoint", "get", "team-data", checkpointId])).name, "before-migration");
    });

    it("restore brings the old data back and drops what came after", async () => {
      ok(await cairn(["volume", "write", "team-data", "/hello.txt"], { input: "after\n" }));
      ok(await cairn(["volume", "write", "team-data", "/after.txt"], { input: "later" }));
      const r = await cairn(["checkpoint", "restore", "team-data", "before-migration"]);
      ok(r);
      assert.equal(json<{ name: string; status: string }>(r).status, "ready");
      assert.equal(await read("team-data", "/hello.txt"), "before\n");
      fails(await cairn(["volume", "read", "team-data", "/after.txt"]), 3, "PATH_NOT_FOUND");
    });

    it("volume create --from-checkpoint forks an independent copy", async () => {
      ok(await cairn(["volume", "write", "team-data", "/hello.txt"], { input: "changed again\n" }));
      const r = await cairn(["volume", "create", "team-data-copy", "--from-checkpoint", "team-data:before-migration"]);
      ok(r);
      assert.equal(json<{ name: string; sizeBytes: number }>(r).sizeBytes, GiB);
      assert.equal(await read("team-data-copy", "/hello.txt"), "before\n");
      const copy = await cairn(["volume", "read", "team-data-copy", "/dir/random.bin"]);
      assert.equal(sha256(copy.stdout), sha256(random));
      assert.equal(await read("team-data", "/hello.txt"), "changed again\n", "the source is untouched");
    });

    it("export --format tar -o, then volume import --from: the files come back", async () => {
      const file = join(scratch, "team-data.tar");
      const r = await cairn(["checkpoint", "export", "team-data", "before-migration", "--format", "tar", "-o", file]);
      ok(r);
      assert.equal(r.out, "", "quiet when piped");
      assert.equal(r.stderr, "", "no progress bar when stderr is not a terminal");
      const listing = execFileSync("tar", ["-tf", file]).toString();
      assert.match(listing, /hello\.txt/);
      assert.match(listing, /dir\/random\.bin/);
      assert.deepEqual((await readdir(scratch)).filter((n) => n.includes("partial")), [], "no partial file left");

      const imported = await cairn(["volume", "import", "moved", "--from", file, "--size", "2GiB"]);
      ok(imported);
      assert.equal(json<{ sizeBytes: number }>(imported).sizeBytes, 2 * GiB, "a tar import takes --size");
      assert.equal(await read("moved", "/hello.txt"), "before\n");
      assert.equal(sha256((await cairn(["volume", "read", "moved", "/dir/random.bin"])).stdout), sha256(random));
    });

    it("export (image) -o writes a sparse file of the volume's size that imports as a volume", async () => {
      const file = join(scratch, "team-data.img");
      const r = await cairn(["checkpoint", "export", "team-data", "before-migration", "-o", file, "--json"]);
      ok(r);
      const result = json<{ bytes: number; diskBytes: number; format: string }>(r);
      assert.equal(result.format, "image");
      const st = await stat(file);
      assert.equal(st.size, GiB, "the image has the volume's full size");
      assert.equal(result.bytes, GiB);
      assert.ok(st.blocks * 512 < 128 * MiB, `written sparse: ${st.blocks * 512} bytes on disk for a 1 GiB image`);

      const imported = await cairn(["volume", "import", "moved-image", "--from", file]);
      ok(imported);
      const v = json<{ sizeBytes: number; filesystem: string }>(imported);
      assert.equal(v.sizeBytes, GiB);
      assert.equal(v.filesystem, "ext4");
      assert.equal(await read("moved-image", "/hello.txt"), "before\n");
      assert.equal(sha256((await cairn(["volume", "read", "moved-image", "/dir/random.bin"])).stdout), sha256(random));
    });

    it("export to a pipe streams the archive on stdout; import reads stdin with --from -", async () => {
      const r = await cairn(["checkpoint", "export", "team-data", "before-migration", "--format", "tar"]);
      ok(r);
      assert.match(execFileSync("tar", ["-t"], { input: r.stdout }).toString(), /hello\.txt/);
      const missingFormat = await cairn(["volume", "import", "piped", "--from", "-"], { input: r.stdout });
      fails(missingFormat, 2, "USAGE");
      const imported = await cairn(["volume", "import", "piped", "--from", "-", "--format", "tar"], { input: r.stdout });
      ok(imported);
      assert.equal(await read("piped", "/hello.txt"), "before\n");
    });

    it("delete removes it: list is empty, get is exit 3", async () => {
      const d = await cairn(["checkpoint", "delete", "team-data", "before-migration"]);
      ok(d);
      assert.equal(d.out, "");
      assert.deepEqual(json(await cairn(["checkpoint", "list", "team-data"])), []);
      const p = fails(await cairn(["checkpoint", "get", "team-data", "before-migration"]), 3, "CHECKPOINT_NOT_FOUND");
      assert.match(p.hint ?? "", /cairn checkpoint list/);
      assert.equal(await read("team-data-copy", "/hello.txt"), "before\n", "the fork outlives the checkpoint");
    });
  });

  describe("restore while a sandbox writes to the volume", () => {
    it("is refused with exit 4 and a hint to --detach; --detach detaches and restores", async () => {
      ok(await cairn(["volume", "create", "busy-vol"]));
      ok(await cairn(["volume", "write", "busy-vol", "/v.txt"], { input: "one" }));
      ok(await cairn(["checkpoint", "create", "busy-vol", "--name", "c1"]));
      const created = await cairn(["sandbox", "create", "--volume", "ref=busy-vol,mount=/data"]);
      ok(created);
      const id = created.out.trim();
      try {
        ok(await cairn(["sandbox", "exec", id, "--", "sh", "-c", "echo two > /data/v.txt"]));
        const refused = fails(await cairn(["checkpoint", "restore", "busy-vol", "c1"]), 4, "VOLUME_BUSY");
        assert.match(refused.hint ?? "", /--detach/);
        ok(await cairn(["checkpoint", "restore", "busy-vol", "c1", "--detach"]));
        assert.equal(await read("busy-vol", "/v.txt"), "one");
        const atts = json<{ mountPath: string; state: string }[]>(await cairn(["sandbox", "attachments", id]));
        assert.deepEqual(atts.map((a) => [a.mountPath, a.state]), [["/data", "released"]]);
      } finally {
        await cairn(["sandbox", "kill", id]);
      }
    });
  });

  describe("options and errors", () => {
    before(async () => ok(await cairn(["volume", "create", "opts-vol"])));

    it("--keep N keeps only the newest N", async () => {
      for (let i = 0; i < 4; i++) ok(await cairn(["checkpoint", "create", "opts-vol", "--name", `k${i}`, "--keep", "2"]));
      assert.deepEqual(json<CheckpointJson[]>(await cairn(["checkpoint", "list", "opts-vol"])).map((c) => c.name), ["k2", "k3"]);
    });

    it("without --name the server names it cp-…", async () => {
      assert.match(json<CheckpointJson>(await cairn(["checkpoint", "create", "opts-vol"])).name, /^cp-/);
    });

    it("a duplicate name is exit 4, a bad name exit 2, an unknown volume exit 3", async () => {
      fails(await cairn(["checkpoint", "create", "opts-vol", "--name", "k3"]), 4, "CHECKPOINT_ALREADY_EXISTS");
      fails(await cairn(["checkpoint", "create", "opts-vol", "--name", "Bad Name"]), 2, "INVALID_CHECKPOINT_NAME");
      fails(await cairn(["checkpoint", "list", "no-such-volume"]), 3, "VOLUME_NOT_FOUND");
      fails(await cairn(["checkpoint", "restore", "opts-vol", "nope"]), 3, "CHECKPOINT_NOT_FOUND");
    });

    it("bad option values are usage errors before any request", async () => {
      fails(await cairn(["checkpoint", "create", "opts-vol", "--keep", "0"]), 2, "USAGE");
      fails(await cairn(["checkpoint", "export", "opts-vol", "k3", "--format", "zip"]), 2, "USAGE");
      fails(await cairn(["checkpoint", "export", "opts-vol", "k3", "-o", join(scratch, "no/such/dir/x.img")]), 2, "USAGE");
      const bad = fails(await cairn(["volume", "create", "fork-x", "--from-checkpoint", "no-colon"]), 2, "USAGE");
      assert.match(bad.detail, /<volume>:<checkpoint>/);
      fails(await cairn(["volume", "create", "fork-y", "--from-checkpoint", "opts-vol:nope"]), 3, "CHECKPOINT_NOT_FOUND");
      fails(await cairn(["volume", "import", "imp-x", "--from", join(scratch, "missing.img")]), 2, "USAGE");
      fails(await cairn(["volume", "import", "imp-y"]), 2, "USAGE");
    });

    it("a bad image leaves no volume behind", async () => {
      const file = join(scratch, "garbage.img");
      await writeFile(file, randomBytes(MiB));
      const r = await cairn(["volume", "import", "garbage", "--from", file]);
      assert.notEqual(r.code, 0);
      fails(await cairn(["volume", "get", "garbage"]), 3, "VOLUME_NOT_FOUND");
    });
  });

  describe("on a terminal", { skip: haveScript ? false : "util-linux `script` not installed" }, () => {
    before(async () => {
      ok(await cairn(["volume", "create", "tty-vol"]));
      ok(await cairn(["volume", "write", "tty-vol", "/a.bin"], { input: randomBytes(2 * MiB) }));
      ok(await cairn(["checkpoint", "create", "tty-vol", "--name", "first"]));
    });

    it("list is a table with the documented columns", async () => {
      const r = await tty(["checkpoint", "list", "tty-vol"]);
      assert.equal(r.code, 0, r.out);
      const [header, row] = r.out.trim().split("\n");
      assert.match(header ?? "", /^NAME\s+ID\s+CREATED\s+SIZE\s+ALLOCATED\s+EXCLUSIVE$/);
      assert.match(row ?? "", /^first\s+cp_\S+\s+just now\s+1 GiB\s+\S+ \S+\s+\S+ \S+$/);
    });

    it("export shows a progress bar on stderr and a summary; refuses to write binary to the terminal", async () => {
      const file = join(scratch, "tty.img");
      const r = await tty(["checkpoint", "export", "tty-vol", "first", "-o", file]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /exporting tty-vol:first/);
      assert.match(r.out, /✓ exported tty-vol:first \(image, 1 GiB, .+ on disk\) to /);
      assert.equal((await stat(file)).size, GiB);
      await rm(file);
      const refused = await tty(["checkpoint", "export", "tty-vol", "first"]);
      assert.equal(refused.code, 2);
      assert.match(refused.out, /error: Refusing to write a checkpoint to the terminal/);
    });

    it("restore while busy explains --detach", async () => {
      const created = await cairn(["sandbox", "create", "--volume", "ref=tty-vol,mount=/data"]);
      ok(created);
      try {
        const r = await tty(["checkpoint", "restore", "tty-vol", "first"]);
        assert.equal(r.code, 4);
        assert.match(r.out, /^hint: a sandbox has this volume attached read-write: add --detach/m);
      } finally {
        await cairn(["sandbox", "kill", created.out.trim()]);
      }
    });
  });
});
