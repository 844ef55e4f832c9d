/**
 * Test harness: a real cairnd process on a real socket, with its own data dir under /tmp whose
 * name carries "cairn" (a leftover is easy to spot with `findmnt | grep cairn`). Everything it
 * creates is released in `stop()`, which tests register with `t.after` so it runs on failure too.
 *
 * Every cairnd it starts checks its error codes against its OpenAPI document
 * (CAIRN_CHECK_ERROR_CODES): after the last test of a file, the file fails if any of them answered
 * a request with a problem code the route does not declare.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { Cairn, CairnError } from "@cairn/sdk";
import { releasePinnedNamespace } from "../src/host/namespace.js";
import { UNDECLARED_ERROR_CODE } from "../src/http/route-errors.js";

export const SERVER_MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url));

/** The output of every cairnd this test file started, restarts and crashes included. */
const outputs: (() => string)[] = [];

after(() => {
  const lines = outputs.flatMap((out) => out().split("\n").filter((l) => l.includes(`"msg":"${UNDECLARED_ERROR_CODE}"`)));
  assert.deepEqual(lines, [], "cairnd answered with problem codes its OpenAPI operations do not declare: add them to the routes' errors");
});

export async function makeDataDir(label = "test"): Promise<string> {
  return mkdtemp(join(tmpdir(), `cairn-${label}-`));
}

export interface CairndProcess {
  url: string;
  adminKey: string;
  dataDir: string;
  /** pid of the server inside the namespace (not the launcher). */
  serverPid: number;
  launcher: ChildProcess;
  logs(): string;
  /** SIGTERM and wait for a graceful exit. */
  stop(): Promise<number | null>;
  /** SIGKILL the server and its launcher: a crash. */
  crash(): Promise<void>;
  /** Stop (if running), release the namespace and delete the data dir. */
  destroy(): Promise<void>;
}

export interface StartOptions {
  dataDir?: string;
  env?: Record<string, string>;
  args?: string[];
  /**
   * Append cairnd's stdout (its log) to this file instead of keeping it in memory: at level
   * `info` a server under load logs every request, more than a test process should hold.
   * `logs()` then has only what cairnd wrote to stderr.
   */
  logFile?: string;
}

export async function startCairnd(options: StartOptions = {}): Promise<CairndProcess> {
  const dataDir = options.dataDir ?? (await makeDataDir());
  const logFd = options.logFile !== undefined ? openSync(options.logFile, "a") : undefined;
  const launcher = spawn(process.execPath, [SERVER_MAIN, "--data-dir", dataDir, "--listen", "127.0.0.1:0", ...(options.args ?? [])], {
    env: {
      ...process.env,
      CAIRN_LOG_LEVEL: "warn",
      // Sparse: room for many sandboxes' disks (4 GiB each) before admission says POOL_FULL.
      CAIRN_POOL_SIZE: "200GiB",
      CAIRN_IDLE_UNMOUNT_MS: "200",
      CAIRN_ADMIN_KEY: "",
      CAIRN_NAMESPACE_ID: "",
      CAIRN_CHECK_ERROR_CODES: "1",
      ...options.env,
    },
    stdio: ["ignore", logFd ?? "pipe", "pipe"],
  });
  // The launcher has its own copy of the file descriptor now.
  if (logFd !== undefined) closeSync(logFd);
  let out = "";
  outputs.push(() => out);
  launcher.stdout?.on("data", (d) => (out += d));
  const started = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cairnd did not start in 30 s:\n${out}`)), 30_000);
    launcher.stderr!.on("data", (d) => {
      out += d;
      const m = /CAIRN_URL=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    launcher.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`cairnd exited with ${code} before listening:\n${out}`));
    });
  });
  let url: string;
  try {
    url = await started;
  } catch (err) {
    // Leave nothing behind when cairnd never came up (a data dir we made is ours to delete).
    launcher.kill("SIGKILL");
    await releasePinnedNamespace(dataDir).catch(() => undefined);
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const adminKey = /CAIRN_API_KEY=(\S+)/.exec(out)![1]!;
  const health = (await (await fetch(`${url}/healthz`)).json()) as { pid: number };
  const exited = new Promise<number | null>((r) => launcher.on("exit", (code) => r(code)));
  let running = true;
  const proc: CairndProcess = {
    url,
    adminKey,
    dataDir,
    serverPid: health.pid,
    launcher,
    logs: () => out,
    async stop() {
      if (!running) return null;
      launcher.kill("SIGTERM");
      const code = await exited;
      running = false;
      return code;
    },
    async crash() {
      if (!running) return;
      process.kill(health.pid, "SIGKILL");
      launcher.kill("SIGKILL");
      await exited;
      // Wait until the server process is really gone.
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(health.pid, 0);
          await new Promise((r) => setTimeout(r, 20));
        } catch {
          break;
        }
      }
      running = false;
    },
    async destroy() {
      await proc.stop().catch(() => undefined);
      await releasePinnedNamespace(dataDir).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return proc;
}

export async function readAdminKey(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, "admin.key"), "utf8")).trim();
}

/** The error code a call fails with ("ok" when it does not): `assert.equal(await codeOf(p), "POOL_FULL")`. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    assert.ok(err instanceof CairnError, String(err));
    return err.code;
  }
}

export interface CairndFixture {
  /** Stop the server (gracefully, or with kill -9) and start it again on the same data dir. */
  restart(how?: "stop" | "crash"): Promise<void>;
}

/**
 * One real cairnd for a suite: started before its first test, destroyed after its last (also when
 * a test or the start itself failed), with an admin client. `use` receives both, and again after
 * each `restart`.
 *
 * @example
 * let c: CairndProcess; let cairn: Cairn;
 * withCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "300" } }, (s) => ({ c, cairn } = s));
 */
export function withCairnd(options: StartOptions, use: (s: { c: CairndProcess; cairn: Cairn }) => void): CairndFixture {
  let current: CairndProcess | undefined;
  const start = async (dataDir?: string) => {
    current = await startCairnd({ ...options, ...(dataDir ? { dataDir } : {}) });
    use({ c: current, cairn: new Cairn({ url: current.url, apiKey: current.adminKey }) });
  };
  before(() => start(options.dataDir));
  after(async () => {
    await current?.destroy();
  });
  return {
    async restart(how = "stop") {
      if (!current) throw new Error("cairnd is not started");
      if (how === "crash") await current.crash();
      else await current.stop();
      await start(current.dataDir);
    },
  };
}
