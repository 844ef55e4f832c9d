/**
 * The router: a request for `<app>[.<env>].<domain>` goes to the version that serves, through its
 * relay into the sandbox's network namespace (forwarder.ts), streaming both ways. Every answer of
 * the router's own is the one problem+json shape.
 */
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { CairnError, PROBLEM_CONTENT_TYPE } from "@cairn/protocol";
import { newId } from "../ids.js";
import type { Forwarder } from "./forwarder.js";

/** Methods a request may be sent again with, when it has no body (RFC 9110 9.2.2, as Go's http.Transport). */
const REPLAYABLE = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
/** Headers about one connection, not the message (RFC 9110 7.6.1): never forwarded. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection"]);
/** ...and on requests, what the router says itself (a client's own would be believed). */
const NOT_FROM_CLIENTS = new Set([...HOP_BY_HOP, "x-forwarded-host"]);

/** One serving version: where its connections come from, and what is in flight to it. */
export class Route {
  private active = 0;
  private onIdle: (() => void) | undefined;
  /** Upgraded connections: they end only when a side closes them, or cairnd stops. */
  private readonly upgraded = new Set<Duplex>();

  constructor(
    readonly deploymentId: string,
    readonly forwarder: Forwarder,
  ) {}

  /** A request (or upgraded connection) starts; call what this returns when it ends. */
  begin(): () => void {
    this.active++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.active === 0) this.onIdle?.();
    };
  }

  /** Keep an upgraded connection, to end it when cairnd stops. */
  hold(socket: Duplex): void {
    this.upgraded.add(socket);
    socket.once("close", () => this.upgraded.delete(socket));
  }

  /** End every upgraded connection (a new cairnd could not take them over). */
  hangUp(): void {
    for (const s of this.upgraded) s.destroy();
  }

  /** Resolves once nothing is in flight any more, after `limitMs` at the latest, or on abort. */
  drained(limitMs: number, signal?: AbortSignal): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", finish);
        this.onIdle = undefined;
        resolve();
      };
      const timer = setTimeout(finish, limitMs);
      signal?.addEventListener("abort", finish, { once: true });
      this.onIdle = finish;
    });
  }
}

/**
 * Raw headers (name, value, name, value…, as node:http keeps them) without the names in `drop`:
 * the app and the client see names as they were written, repeated ones included.
 */
function rawHeadersWithout(raw: string[], drop: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length <= 16 && drop.has(name.toLowerCase())) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

function problemBody(err: CairnError): { id: string; body: string } {
  const id = newId("req", 16);
  return { id, body: JSON.stringify(err.toProblem(id)) };
}

export function sendProblem(res: ServerResponse, err: CairnError): void {
  const { id, body } = problemBody(err);
  res.writeHead(err.status, { "content-type": PROBLEM_CONTENT_TYPE, "content-length": Buffer.byteLength(body), "x-request-id": id });
  res.end(body);
}

const notDeployed = (key: string) => new CairnError("DEPLOYMENT_NOT_FOUND", `Nothing is deployed at ${key}`);
const notAnswering = (key: string, err: Error) =>
  new CairnError("APP_UNAVAILABLE", `${key} did not answer (${(err as NodeJS.ErrnoException).code ?? err.message})`);

/** Reverse-proxy one request, streaming both ways. */
export function proxy(req: IncomingMessage, res: ServerResponse, route: Route | undefined, key: string): void {
  if (!route) return sendProblem(res, notDeployed(key));
  const done = route.begin();
  const headers = rawHeadersWithout(req.rawHeaders, NOT_FROM_CLIENTS);
  headers.push("X-Forwarded-Host", req.headers.host ?? "");
  const bodyless = req.headers["content-length"] === undefined || req.headers["content-length"] === "0";
  // A request without a body can be sent again as it was: only such a request is retried.
  const replayable = REPLAYABLE.has(req.method ?? "") && bodyless && req.headers["transfer-encoding"] === undefined;
  let upstream: ClientRequest | undefined;
  res.once("close", () => {
    done();
    // The client went away before the whole answer: the app's connection cannot be reused.
    if (!res.writableFinished) upstream?.destroy();
  });
  const send = (retry: boolean) => {
    let answered = false;
    // A retry takes a new connection of its own: another kept-alive one may be as stale.
    const via = retry ? { createConnection: route.forwarder.createConnection } : { agent: route.forwarder.agent };
    const up = request({ ...via, method: req.method, path: req.url, headers, timeout: 0 }, (answer) => {
      answered = true;
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, rawHeadersWithout(answer.rawHeaders, HOP_BY_HOP));
      answer.pipe(res);
      answer.on("error", () => res.destroy()); // cut off mid-answer: the client must see it cut too
    });
    upstream = up;
    up.on("error", (err) => {
      // A kept-alive connection the app closed just as this request went out: nothing reached
      // the app, so a request without a body goes again, once, on a new connection.
      if (!retry && replayable && !answered && up.reusedSocket && !res.destroyed) return send(true);
      if (!res.headersSent) sendProblem(res, notAnswering(key, err));
      else res.destroy();
    });
    if (replayable) up.end();
    else req.pipe(up);
  };
  send(false);
}

/** Websockets and other upgrades: splice the two sockets once the app's connection is there. */
export function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route | undefined, key: string): void {
  if (!route) return rawProblem(socket, notDeployed(key));
  const done = route.begin();
  socket.once("close", done);
  socket.on("error", () => socket.destroy());
  route.hold(socket);
  route.forwarder.connect((err, up) => {
    if (err || !up) return rawProblem(socket, notAnswering(key, err ?? new Error("no connection")));
    if (socket.destroyed) return void up.destroy();
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(lines.join("\r\n") + "\r\n\r\n");
    if (head.length) up.write(head);
    // The relay accepts before the app does: an app that is gone shows as an end (or a reset)
    // with no answer, which the client gets as a 502.
    let answered = false;
    let over = false;
    const end = (err?: Error) => {
      if (over) return;
      over = true;
      if (!answered) rawProblem(socket, notAnswering(key, err ?? Object.assign(new Error("closed"), { code: "ECONNRESET" })));
      else if (err) socket.destroy();
      else socket.end();
    };
    up.once("data", () => (answered = true));
    up.once("end", () => end());
    up.on("error", (err) => {
      end(err);
      up.destroy();
    });
    up.pipe(socket, { end: false });
    socket.pipe(up);
    // The client is gone: so is the app's side (its end arrives through the pipe).
    socket.on("close", () => up.destroy());
  });
}

/** A problem answer on a raw socket (an upgrade request has no ServerResponse). */
function rawProblem(socket: Duplex, err: CairnError): void {
  const { id, body } = problemBody(err);
  const reason = err.status === 404 ? "Not Found" : "Bad Gateway";
  socket.end(
    `HTTP/1.1 ${err.status} ${reason}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${id}\r\nconnection: close\r\n\r\n${body}`,
  );
}
