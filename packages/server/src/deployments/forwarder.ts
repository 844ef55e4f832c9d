/**
 * Connections into a sandbox's own network namespace, where its app listens on loopback only.
 * Node cannot enter a namespace, so one small long-lived process per serving version does
 * (native/cairn-forward.c): it listens on a Unix socket in cairnd's run directory and relays each
 * connection to the app's port inside the namespace, from one event loop (no process per
 * connection). The namespace is held by an open descriptor from the start, so a restarted relay
 * can never land in another sandbox's network if the sandbox's pid is reused.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { open, rm, type FileHandle } from "node:fs/promises";
import { Agent, type ClientRequestArgs } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Logger } from "../logger.js";

/** Built by scripts/setup.sh from packages/server/native/cairn-forward.c. */
export const RELAY = fileURLToPath(new URL("../../native/cairn-forward", import.meta.url));
/**
 * How long an idle kept-alive connection to an app stays open. Shorter than the keep-alive
 * timeouts servers commonly use (Node 5 s, gunicorn 2 s), so that cairnd, not the app, usually
 * closes it: a request sent on a connection the app is closing at that moment is lost.
 */
const IDLE_KEEPALIVE_MS = 1_000;
/** After a relay failed to start, requests fail at once for this long instead of each starting one. */
const RESTART_PAUSE_MS = 1_000;

export class Forwarder {
  private child: ChildProcess | undefined;
  private starting: Promise<void> | undefined;
  private failedAt = 0;
  private closed = false;
  /** Keeps connections to the app open between requests (an app speaking HTTP/1.0 closes them). */
  readonly agent: Agent;

  private constructor(
    private readonly ns: FileHandle,
    private readonly port: number,
    /** The relay's Unix socket. */
    readonly socketPath: string,
    private readonly log: Logger,
  ) {
    this.agent = new Agent({ keepAlive: true, scheduling: "lifo", timeout: IDLE_KEEPALIVE_MS });
    this.agent.createConnection = this.createConnection;
  }

  /** A relay into the network namespace of `pid` (a sandbox's init), listening at `socketPath`. */
  static async start(options: { pid: number; port: number; socketPath: string; log: Logger }): Promise<Forwarder> {
    const ns = await open(`/proc/${options.pid}/ns/net`, "r");
    const f = new Forwarder(ns, options.port, options.socketPath, options.log);
    try {
      await f.spawn();
      return f;
    } catch (err) {
      await f.close();
      throw err;
    }
  }

  /** node:http's `createConnection`: a new connection to the app (the relay restarted if it died). */
  readonly createConnection = (_options: ClientRequestArgs, oncreate?: (err: Error | null, stream: Duplex) => void): Duplex | undefined => {
    if (this.child && !this.starting) return connect(this.socketPath);
    this.connect((err, socket) => oncreate?.(err, socket as Duplex));
    return undefined;
  };

  /** A new connection to the app, once it is established. */
  connect(callback: (err: Error | null, socket?: Socket) => void): void {
    const ready = this.closed
      ? Promise.reject(Object.assign(new Error("the app's route is closed"), { code: "ECONNREFUSED" }))
      : this.child && !this.starting
        ? Promise.resolve()
        : this.spawn();
    ready.then(
      () => {
        const s = connect(this.socketPath);
        s.once("connect", () => {
          s.removeAllListeners("error");
          callback(null, s);
        });
        s.once("error", (err) => callback(err));
      },
      (err: Error) => callback(err),
    );
  }

  private spawn(): Promise<void> {
    if (this.starting) return this.starting;
    if (Date.now() - this.failedAt < RESTART_PAUSE_MS) {
      return Promise.reject(Object.assign(new Error("the relay into the sandbox failed to start"), { code: "ECONNREFUSED" }));
    }
    const starting = new Promise<void>((resolve, reject) => {
      // stdin stays open and unused: the relay exits when it ends (cairnd gone or done with it).
      const child = spawn(RELAY, [this.socketPath, String(this.port)], { stdio: ["pipe", "pipe", "pipe", this.ns.fd] });
      let stderr = "";
      child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
      child.stdout!.once("data", () => {
        this.child = child;
        resolve();
      });
      child.on("error", (err) => {
        this.failedAt = Date.now();
        reject(err);
      });
      child.on("exit", (code, signal) => {
        if (this.child === child) this.child = undefined;
        else this.failedAt = Date.now();
        reject(new Error(`the relay into the sandbox exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
        if (!this.closed) this.log.warn({ code, signal, stderr: stderr.trim() }, "a deployment's relay exited; the next request starts another");
      });
    });
    this.starting = starting;
    return starting.finally(() => {
      if (this.starting === starting) this.starting = undefined;
    });
  }

  /** Drop kept-alive connections, stop the relay (cutting what it still relays) and remove its socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
    await this.starting?.catch(() => undefined);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    await this.ns.close();
    await rm(this.socketPath, { force: true });
  }
}
