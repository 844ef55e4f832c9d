/**
 * One HTTP/1.1 request over its own connection, for bulk bodies: a local file or a stream sent as
 * the request body, a response body handed over piece by piece from one reused buffer. Node only, plain
 * `http:` only (the SDK loads it on demand; anything else goes through `fetch`).
 *
 * Why not `fetch` or `node:http`: both hand every socket read to JavaScript as a new buffer. On
 * our machines a client receiving a GiB that way spent 1.4-2.5 s of CPU, most of it in V8's
 * garbage collector (each buffer is "external memory"; a process with a few dozen MiB of heap ran
 * a full collection every ~30 MiB received). Reading into one reused buffer (`net.Socket`'s
 * `onread`) took 0.15 s for the same GiB. Request bodies come from `pumpFile`'s reused buffers.
 *
 * Scope: what cairnd answers. Status line and headers; bodies framed by Content-Length, chunked
 * encoding or the end of the connection; interim 1xx answers skipped. `Connection: close`, so no
 * connection is ever reused and nothing is pooled.
 */
import { connect, type Socket } from "node:net";
import type { FileHandle } from "node:fs/promises";
import { pumpFile } from "@cairn/blockio";
import { ProtocolError, ResponseParser } from "./http1-parser.js";

export interface BulkRequest {
  url: string;
  method: "GET" | "PUT" | "PATCH";
  headers: Record<string, string>;
  /**
   * The request body: `length` bytes of `fh` from `position`, or the pieces of a stream (sent
   * with `Transfer-Encoding: chunked` when its length is not given). A stream's pieces are sent as
   * they are, so they must not be changed afterwards; one that fails, or does not match its
   * `length`, ends the connection without a complete body, so the server keeps nothing.
   */
  body?: FileBody | StreamBody;
  /**
   * Receives a 2xx response body, piece by piece. A piece's memory is read into again once the
   * call returns or, when it returns a promise, once that settles: copy what you keep. A promise
   * also holds back the next piece; a rejection ends the request with that error.
   */
  onBody?: (piece: Uint8Array) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface FileBody {
  fh: FileHandle;
  position: number;
  length: number;
  onSent?: (bytes: number) => void;
  /** The local file's name, for the error when it changes while it is sent. */
  name?: string;
}

export interface StreamBody {
  pieces: AsyncIterator<Uint8Array>;
  length?: number;
  onSent?: (bytes: number) => void;
}

export interface BulkResponse {
  status: number;
  headers: Headers;
  /** The body when it was not handed to `onBody` (an error answer, a JSON result). */
  body: Uint8Array;
}

/** Raised when no answer could be had (refused, reset, cut short); the caller decides what it means. */
export class BulkNetworkError extends Error {
  /** True once any byte of the answer arrived: the request may have had its effect. */
  constructor(message: string, readonly answered: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const READ_BUFFER_BYTES = 1024 * 1024;
/** How long to wait for "100 Continue" before sending the body anyway. */
const CONTINUE_WAIT_MS = 1000;
/** Bodies not streamed to `onBody` (JSON answers and problems) are small; refuse to hoard more. */
const MAX_KEPT_BODY_BYTES = 8 * 1024 * 1024;

export function bulkRequest(req: BulkRequest): Promise<BulkResponse> {
  const url = new URL(req.url);
  return new Promise<BulkResponse>((resolve, reject) => {
    if (req.signal?.aborted) return reject(req.signal.reason);
    let settled = false;
    let answered = false;
    let socket: Socket;
    const finish = (err: unknown, res?: BulkResponse) => {
      if (settled) return;
      settled = true;
      parser?.stop();
      clearTimeout(continueTimer);
      req.signal?.removeEventListener("abort", onAbort);
      socket?.destroy();
      // A stream not sent to its end (refused up front, cut short) is released, as fetch cancels one.
      if (req.body && "pieces" in req.body && !streamEnded) void req.body.pieces.return?.().catch(() => undefined);
      if (err !== undefined) reject(err);
      else resolve(res!);
    };
    const onAbort = () => finish(req.signal!.reason);
    req.signal?.addEventListener("abort", onAbort, { once: true });

    // --- the answer ---------------------------------------------------------------------------
    let status = 0;
    let headers = new Headers();
    let streamed = false;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    /** Unprocessed bytes of the read buffer while a piece is being consumed (socket paused). */
    let backlog: { buf: Buffer; start: number; end: number } | undefined;
    let ended = false;

    const done = () => finish(undefined, { status, headers, body: Buffer.concat(kept, keptBytes) });

    const parser = new ResponseParser({
      head(s, h) {
        status = s;
        headers = h;
        if (s < 200) {
          if (s === 100) sendBody();
          return;
        }
        bodyDecided = true; // a final answer before "100 Continue": the body is not wanted
        finalAnswer = true;
        streamed = req.onBody !== undefined && s >= 200 && s < 300;
      },
      /** Hand a body piece on; a promise when the consumer wants us to wait. */
      body(piece) {
        if (piece.length === 0) return undefined;
        if (streamed) {
          const r = req.onBody!(piece);
          return r && typeof (r as Promise<void>).then === "function" ? (r as Promise<void>) : undefined;
        }
        keptBytes += piece.length;
        if (keptBytes > MAX_KEPT_BODY_BYTES) throw new BulkNetworkError(`The answer's body is larger than ${MAX_KEPT_BODY_BYTES} bytes`, true);
        kept.push(Buffer.from(piece));
        return undefined;
      },
      end: done,
    });

    const resumeAfter = (wait: Promise<void>) => {
      wait.then(
        () => {
          if (settled) return;
          const b = backlog;
          backlog = undefined;
          if (b && !step(b.buf, b.start, b.end)) return;
          if (ended && parser.untilEof) return done();
          socket.resume();
        },
        (err) => finish(err),
      );
    };

    /** Process bytes; false when a consumer asked to wait (the socket must stay paused). */
    const step = (buf: Buffer, start: number, end: number): boolean => {
      let r;
      try {
        r = parser.consume(buf, start, end);
      } catch (err) {
        finish(err instanceof ProtocolError ? new BulkNetworkError(err.message, true) : err);
        return false;
      }
      if (!r.wait) return true;
      if (r.at < end) backlog = { buf, start: r.at, end };
      resumeAfter(r.wait);
      return false;
    };

    /** Whether the body was started or refused (a final answer came first). */
    let bodyDecided = false;
    /** Whether the head of the final (non-1xx) answer arrived. */
    let finalAnswer = false;
    let continueTimer: ReturnType<typeof setTimeout> | undefined;
    /** Whether a stream body was read to its end. */
    let streamEnded = false;
    const sendBody = () => {
      clearTimeout(continueTimer);
      if (bodyDecided || settled || !req.body) return;
      bodyDecided = true;
      const body = req.body;
      const stop = new AbortController();
      socket.once("close", () => stop.abort());
      const sending = "pieces" in body ? sendPieces(body, stop.signal) : pumpFile(body.fh, body.position, body.length, socket, { signal: stop.signal, onProgress: body.onSent, ...(body.name ? { name: body.name } : {}) });
      sending.catch((err: unknown) => {
        // A read error, or a write the server refused: a final answer, if one came, decides.
        if (!finalAnswer) finish(err);
      });
    };

    /** Write a stream's pieces as the socket takes them (chunked when its length is unknown). */
    const sendPieces = async ({ pieces, length, onSent }: StreamBody, stop: AbortSignal) => {
      const chunked = length === undefined;
      let sent = 0;
      for (let r = await pieces.next(); !r.done; r = await pieces.next()) {
        if (stop.aborted) return;
        const piece = r.value;
        if (piece.byteLength === 0) continue;
        sent += piece.byteLength;
        if (!chunked && sent > length) throw new Error(`The body is longer than the ${length} bytes it was declared to be`);
        let more: boolean;
        if (chunked) {
          socket.cork();
          socket.write(`${piece.byteLength.toString(16)}\r\n`, "latin1");
          socket.write(piece);
          more = socket.write("\r\n", "latin1");
          socket.uncork();
        } else more = socket.write(piece);
        onSent?.(sent);
        if (!more) await drained(socket, stop);
      }
      streamEnded = true;
      if (!chunked && sent < length) throw new Error(`The body ended after ${sent} of the ${length} bytes it was declared to be`);
      if (chunked && !stop.aborted) socket.write("0\r\n\r\n", "latin1");
    };

    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port || 80),
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (n: number, buf: Uint8Array) => {
          if (settled) return false;
          answered = true;
          return step(buf as Buffer, 0, n);
        },
      },
    });
    socket.on("error", (err) => {
      // The server may answer early (a refused upload) and close while we still send: an answer
      // that arrived whole wins over the broken pipe.
      finish(new BulkNetworkError(`Cannot reach ${url.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, answered, { cause: err }));
    });
    socket.on("end", () => {
      ended = true;
      if (parser.untilEof) {
        if (backlog) return; // still consuming the last piece: resumeAfter finishes
        return done();
      }
      finish(new BulkNetworkError(`The connection to ${url.host} closed before the answer was complete`, answered));
    });

    // --- the request --------------------------------------------------------------------------
    const lines = [`${req.method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`, "connection: close"];
    for (const [k, v] of Object.entries(req.headers)) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) return finish(new TypeError(`Invalid header ${k}`));
      lines.push(`${k}: ${v}`);
    }
    // With a body: "Expect: 100-continue", and the body only once the server says "100 Continue"
    // (cairnd does once it starts reading it). A write it refuses up front (no space, a failed
    // precondition) is then answered before any of the body is sent, instead of the server
    // closing on a body it will not read, which can reset the connection before the answer is read.
    // A server that ignores Expect gets the body after CONTINUE_WAIT_MS, as curl does.
    if (req.body) lines.push(req.body.length !== undefined ? `content-length: ${req.body.length}` : "transfer-encoding: chunked", "expect: 100-continue");
    socket.write(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
    if (req.body) continueTimer = setTimeout(sendBody, CONTINUE_WAIT_MS);
  });
}

/** Resolves when the socket can take more, or when the request stops. */
function drained(socket: Socket, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off("drain", done);
      stop.removeEventListener("abort", done);
      resolve();
    };
    socket.on("drain", done);
    stop.addEventListener("abort", done);
  });
}
