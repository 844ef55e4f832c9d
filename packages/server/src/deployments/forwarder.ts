/**
 * Connections into a sandbox's own network namespace, where its app listens on loopback only.
 * Node cannot enter a namespace, so one small long-lived process per serving version does
 * (forwarder-child.ts): it makes the connections there and passes them to cairnd over an IPC
 * channel. cairnd then reads and writes the app's socket directly: no process per connection and
 * no process relaying the bytes. The namespace is held by an open descriptor from the start, so a
 * restarted connector can never land in another sandbox's network if the pid is reused.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { open, type FileHandle } from "node:fs/promises";
import { Agent, type ClientRequestArgs } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Logger } from "../logger.js";

const CHILD = fileURLToPath(new URL("./forwarder-child.js", import.meta.url));
/** The descriptor number the namespace has in the connector (after stdin, stdout, stderr, IPC). */
const NS_FD = 4;
/**
 * How long an idle kept-alive connection to an app stays open. Shorter than the keep-alive
 * timeouts servers commonly use (Node 5 s, gunicorn 2 s), so that cairnd, not the app, usually
 * closes it: a request sent on a connection the app is closing at that moment is lost.
 */
const IDLE_KEEPALIVE_MS = 1_000;

type Callback = (err: Error | null, socket?: Socket) => void;

/** A connection the connector could not make: the app refused it, or the connector is gone. */
export class ForwardError extends Error {
  constructor(readonly code: string) {
    super(`could not connect to the app: ${code}`);
  }
}

export class Forwarder {
  private child: ChildProcess | undefined;
  private starting: Promise<ChildProcess> | undefined;
  private readonly waiting = new Map<number, Callback>();
  private nextId = 0;
  private closed = false;
  /** When starting a connector last failed: requests meanwhile fail at once instead of each starting one. */
  private failedAt = 0;
  /** Keeps connections to the app open between requests (an app speaking HTTP/1.0 closes them). */
  readonly agent: Agent;

  private constructor(
    private readonly ns: FileHandle,
    private readonly port: number,
    private readonly log: Logger,
  ) {
    this.agent = new Agent({ keepAlive: true, scheduling: "lifo", timeout: IDLE_KEEPALIVE_MS });
    this.agent.createConnection = this.createConnection;
  }

  /** node:http's `createConnection`: a request gets a new connection to the app. */
  readonly createConnection = (_options: ClientRequestArgs, oncreate?: (err: Error | null, stream: Duplex) => void): undefined => {
    this.connect((err, socket) => oncreate?.(err, socket as Duplex));
    return undefined;
  };

  /** A connector for the network namespace of `pid` (a sandbox's init), ready for connections. */
  static async start(pid: number, port: number, log: Logger): Promise<Forwarder> {
    const ns = await open(`/proc/${pid}/ns/net`, "r");
    const f = new Forwarder(ns, port, log);
    try {
      await f.spawn();
      return f;
    } catch (err) {
      await f.close();
      throw err;
    }
  }

  /** A new connection to the app, in the sandbox's namespace. */
  connect(callback: Callback): void {
    if (this.closed) return callback(new ForwardError("ECONNREFUSED"));
    const id = this.nextId++;
    this.waiting.set(id, callback);
    const child = this.child;
    if (child?.connected) return void child.send({ id });
    // The connector died (killed, out of memory): start another on the same namespace.
    if (!this.starting && Date.now() - this.failedAt < 1_000) return this.settle(id, new ForwardError("ECONNREFUSED"));
    this.spawn().then(
      (c) => c.send({ id }),
      (err: Error) => this.settle(id, err),
    );
  }

  private spawn(): Promise<ChildProcess> {
    this.starting ??= new Promise<ChildProcess>((resolve, reject) => {
      const child = spawn("nsenter", [`--net=/proc/self/fd/${NS_FD}`, "--", process.execPath, CHILD, String(this.port)], {
        stdio: ["ignore", "ignore", "pipe", "ipc", this.ns.fd],
        serialization: "json",
      });
      let stderr = "";
      child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
      child.on("error", (err) => {
        this.failedAt = Date.now();
        reject(err);
      });
      child.on("message", (m: { ready?: boolean; id?: number; error?: string }, socket?: Socket) => {
        if (m.ready) {
          this.child = child;
          return resolve(child);
        }
        if (typeof m.id !== "number") return;
        if (m.error !== undefined || !socket) this.settle(m.id, new ForwardError(m.error ?? "ECONNRESET"));
        else this.settle(m.id, null, socket);
      });
      child.on("exit", (code, signal) => {
        if (this.child !== child) this.failedAt = Date.now(); // it never got ready
        reject(new Error(`the connector exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
        if (this.child === child) this.child = undefined;
        this.starting = undefined;
        // What it had not answered yet will never be.
        for (const id of [...this.waiting.keys()]) this.settle(id, new ForwardError("ECONNRESET"));
        if (!this.closed) this.log.warn({ code, signal, stderr: stderr.trim() }, "a deployment's connector exited; the next request starts another");
      });
    });
    return this.starting;
  }

  private settle(id: number, err: Error | null, socket?: Socket): void {
    const callback = this.waiting.get(id);
    this.waiting.delete(id);
    if (callback) callback(err, socket);
    else socket?.destroy(); // nobody waits for it any more
  }

  /** Drop kept-alive connections and stop the connector; what is in flight keeps its socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
    const child = this.child ?? (await this.starting?.catch(() => undefined));
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    await this.ns.close();
  }
}
