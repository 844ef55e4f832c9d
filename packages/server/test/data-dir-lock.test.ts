/**
 * One cairnd per data dir: a second one refuses in one line naming the first; a server ends with
 * its launcher, so a launcher killed and started again at once serves within seconds; and each
 * cairnd's namespace holds only its own mounts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { Cairn } from "@cairn/sdk";
import { SERVER_MAIN, makeDataDir, startCairnd } from "./harness.js";
import { listLoops } from "../src/volumes/loop/filesystem.js";

/** Run a launcher to its end: exit code and what it printed. */
function runLauncher(dataDir: string, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER_MAIN, "--data-dir", dataDir, "--listen", "127.0.0.1:0"], {
      env: { ...process.env, CAIRN_LOG_LEVEL: "warn", CAIRN_POOL_SIZE: "40GiB", CAIRN_ADMIN_KEY: "", CAIRN_NAMESPACE_ID: "", CAIRN_WARM_SANDBOXES: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the second cairnd did not exit:\n${out}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("one cairnd per data dir", () => {
  it("refuses a second server on the same data dir with one line naming the first, which keeps serving", async (t) => {
    const a = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } });
    t.after(() => a.destroy());
    const cairn = new Cairn({ url: a.url, apiKey: a.adminKey });
    const v = await cairn.volumes.create({ name: "only-one" });
    await v.files.write("/a.txt", "a");

    const second = await runLauncher(a.dataDir);
    assert.equal(second.code, 3);
    const lines = second.out.trim().split("\n");
    assert.equal(lines.length, 1, second.out);
    assert.match(lines[0]!, new RegExp(`pid ${a.serverPid}, ${a.url.replace(/[.]/g, "\\.")}\\) already serves`));
    // --release refuses too: it would pull the mounts from under the running server.
    const release = await new Promise<number | null>((resolve) => {
      const r = spawn(process.execPath, [SERVER_MAIN, "--data-dir", a.dataDir, "--release"], { stdio: "ignore" });
      r.on("exit", resolve);
    });
    assert.equal(release, 3);
    // The first one never noticed.
    await v.files.write("/b.txt", "b");
    assert.equal(await v.files.readText("/a.txt"), "a");
    assert.equal(await v.files.readText("/b.txt"), "b");
  });

  it("ends the server with its launcher: kill -9 of the launcher, an immediate restart serves", async (t) => {
    const dataDir = await makeDataDir("lock");
    const first = await startCairnd({ dataDir, env: { CAIRN_WARM_SANDBOXES: "0" } });
    const cairn = new Cairn({ url: first.url, apiKey: first.adminKey });
    await (await cairn.volumes.create({ name: "kept" })).files.write("/k.txt", "kept");
    first.launcher.kill("SIGKILL");
    // Started at once, while the old server may still be shutting down: it waits for the lock.
    const next = await startCairnd({ dataDir, env: { CAIRN_WARM_SANDBOXES: "0" } });
    t.after(() => next.destroy());
    for (let i = 0; i < 200 && alive(first.serverPid); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(first.serverPid), false, "the orphaned server is gone");
    const again = new Cairn({ url: next.url, apiKey: next.adminKey });
    assert.equal(await (await again.volumes.get("kept")).files.readText("/k.txt"), "kept");
  });

  it("keeps each namespace to its own mounts: another data dir's namespace is released whole", async (t) => {
    const a = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "0", CAIRN_IDLE_UNMOUNT_MS: "600000" } });
    t.after(() => a.destroy());
    const cairnA = new Cairn({ url: a.url, apiKey: a.adminKey });
    await (await cairnA.volumes.create({ name: "held" })).files.write("/x", "x"); // stays mounted
    const b = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } });
    t.after(() => b.destroy());
    const infoB = await readFile(`/proc/${b.serverPid}/mountinfo`, "utf8");
    assert.ok(!infoB.includes(a.dataDir), `B's namespace holds nothing of A's data dir:\n${infoB.split("\n").filter((l) => l.includes(a.dataDir)).join("\n")}`);
    // A goes and releases its namespace: its loop devices go with it although B still runs.
    await a.stop();
    const release = spawnSync(process.execPath, [SERVER_MAIN, "--data-dir", a.dataDir, "--release"], { encoding: "utf8" });
    assert.equal(release.status, 0, release.stderr);
    assert.match(release.stdout, /^released .*: its mount namespace is gone, and with it every volume mount and loop device it held; 0 sandboxes ended\n$/);
    await a.destroy();
    const left = (await listLoops()).filter((l) => l.backFile.startsWith(a.dataDir));
    assert.deepEqual(left, []);
  });
});
