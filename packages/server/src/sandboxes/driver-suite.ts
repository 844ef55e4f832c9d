/**
 * The contract of the sandbox driver port, as tests: the crun driver runs it as root
 * (test/driver-crun.test.ts), the fake driver without (sandboxes/fake/driver.test.ts).
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxDriver, SandboxSpecInput } from "./port.js";
import { READ_FILE_SCRIPT, WRITE_FILE_SCRIPT } from "./file-scripts.js";

const MiB = 1024 * 1024;
const spec: SandboxSpecInput = { env: { HOME: "/root" }, cwd: "/root", memoryBytes: 256 * MiB, pids: 64 };
let counter = 0;
const newSandboxId = () => `sbx_suite${process.pid}x${++counter}`;

export async function outputOf(child: ChildProcess, stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => (stdout += d));
  child.stderr?.on("data", (d) => (stderr += d));
  child.stdin?.on("error", () => undefined);
  child.stdin?.end(stdin);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  return { code, stdout, stderr };
}

export function sandboxDriverSuite(name: string, open: () => Promise<{ driver: SandboxDriver; close(): Promise<void> }>): void {
  describe(`sandbox driver port: ${name}`, () => {
    let driver: SandboxDriver;
    let closeDriver: (() => Promise<void>) | undefined;
    const made: string[] = [];
    let hostDir = "";
    const ready = open().then(async (o) => {
      driver = o.driver;
      closeDriver = o.close;
      hostDir = await mkdtemp(join(tmpdir(), "cairn-driver-suite-"));
    });
    after(async () => {
      await ready.catch(() => undefined);
      for (const id of made) await driver?.destroy(id).catch(() => undefined);
      await closeDriver?.();
      if (hostDir) await rm(hostDir, { recursive: true, force: true });
    });

    async function started(mounts: { source: string; destination: string; readonly: boolean }[] = []): Promise<string> {
      await ready;
      const id = newSandboxId();
      made.push(id);
      await driver.prepare(id, { diskBytes: 64 * MiB });
      await driver.start(id, spec, mounts);
      return id;
    }

    const sh = (id: string, command: string, env: Record<string, string> = {}, timeoutMs?: number) =>
      driver.exec(id, { command, cwd: "/root", env: { ...spec.env, ...env }, timeoutMs });

    it("runs a command: its output and its exit status", async () => {
      const id = await started();
      assert.equal(await driver.isRunning(id), true);
      assert.ok((await driver.list()).includes(id));
      assert.equal((await outputOf(sh(id, "echo hello"))).stdout, "hello\n");
      assert.equal((await outputOf(sh(id, "exit 7"))).code, 7);
      assert.equal((await outputOf(sh(id, "printenv GREETING", { GREETING: "hi there" }))).stdout, "hi there\n");
    });

    it("writes and reads the sandbox's own files, kept across stop and start", async () => {
      const id = await started();
      const w = await outputOf(sh(id, WRITE_FILE_SCRIPT, { CAIRN_PATH: "/root/keep.txt" }), "kept across restarts\n");
      assert.equal(w.code, 0, w.stderr);
      await driver.stop(id);
      assert.equal(await driver.isRunning(id), false);
      await driver.start(id, spec, []);
      const r = await outputOf(sh(id, READ_FILE_SCRIPT, { CAIRN_PATH: "/root/keep.txt" }));
      assert.equal(r.stdout, "kept across restarts\n");
      const missing = await outputOf(sh(id, READ_FILE_SCRIPT, { CAIRN_PATH: "/root/none.txt" }));
      assert.equal(missing.code, 2);
    });

    it("mounts a volume read-write or read-only where asked", async () => {
      await ready;
      const rw = await mkdtemp(join(hostDir, "rw-"));
      const ro = await mkdtemp(join(hostDir, "ro-"));
      await writeFile(join(ro, "fixed.txt"), "read only\n");
      const id = await started([
        { source: rw, destination: "/data", readonly: false },
        { source: ro, destination: "/ref", readonly: true },
      ]);
      assert.equal((await outputOf(sh(id, "cat /ref/fixed.txt"))).stdout, "read only\n");
      assert.equal((await outputOf(sh(id, WRITE_FILE_SCRIPT, { CAIRN_PATH: "/data/new.txt" }), "written\n")).code, 0);
      assert.equal((await outputOf(sh(id, "cat /data/new.txt"))).stdout, "written\n");
      assert.notEqual((await outputOf(sh(id, WRITE_FILE_SCRIPT, { CAIRN_PATH: "/ref/denied.txt" }), "no\n")).code, 0);
    });

    it("hot-plugs a volume into a running sandbox and takes it out again", async () => {
      await ready;
      const dir = await mkdtemp(join(hostDir, "hot-"));
      await writeFile(join(dir, "plugged.txt"), "hot\n");
      const id = await started();
      await driver.attach(id, [{ attachmentId: "att_1", mount: { source: dir, destination: "/hot", readonly: true } }]);
      assert.equal((await outputOf(sh(id, "cat /hot/plugged.txt"))).stdout, "hot\n");
      const { stat } = await import("node:fs/promises");
      const { deviceString } = await import("../host/devices.js");
      await driver.detach(id, { destination: "/hot", device: deviceString((await stat(dir)).dev) }, { force: false });
      assert.notEqual((await outputOf(sh(id, "cat /hot/plugged.txt"))).stdout, "hot\n");
    });

    it("copies a sandbox's files into a new one (fork), and forgets a destroyed one", async () => {
      const id = await started();
      await outputOf(sh(id, WRITE_FILE_SCRIPT, { CAIRN_PATH: "/root/origin.txt" }), "from the origin\n");
      await driver.stop(id);
      const copy = newSandboxId();
      made.push(copy);
      await driver.copy(id, copy);
      await driver.start(copy, spec, []);
      assert.equal((await outputOf(driver.exec(copy, { command: "cat /root/origin.txt", cwd: "/root", env: spec.env, timeoutMs: undefined }))).stdout, "from the origin\n");
      await driver.destroy(copy);
      assert.equal((await driver.prepared()).includes(copy), false);
      assert.equal(await driver.isRunning(copy), false);
    });

    it("ends a command that runs past its timeout", async () => {
      const id = await started();
      const r = await outputOf(sh(id, "sleep 30", {}, 300));
      assert.notEqual(r.code, 0);
    });
  });
}
