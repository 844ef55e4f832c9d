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
const MAX_HEAD_BYTES = 64 * 1024;
/** How long to wait for "100 Continue" before sending the body anyway. */
const CONTINUE_WAIT_MS = 1000;
/** Bodies not streamed to `onBody` (JSON answers and problems) are small; refuse to hoard more. */
const MAX_KEPT_BODY_BYTES = 8 * 1024 * 1024;

type Framing = { kind: "none" } | { kind: "length"; remaining: number } | { kind: "chunked" } | { kind: "eof" };

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
    let head: Buffer = Buffer.alloc(0);
    let status = 0;
    let headers = new Headers();
    let framing: Framing | undefined;
    let streamed = false;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    /** Chunked decoding: the size line being read, the data left in this chunk, where we are. */
    let chunkLine = "";
    let chunkLeft = 0;
    let chunkState: "size" | "data" | "data-end" | "trailer" = "size";
    let trailerLine = "";
    /** Unprocessed bytes of the read buffer while a piece is being consumed (socket paused). */
    let backlog: { buf: Buffer; start: number; end: number } | undefined;
    let ended = false;

    const done = () => finish(undefined, { status, headers, body: Buffer.concat(kept, keptBytes) });

    /** Hand a body piece on; returns a promise when the consumer wants us to wait. */
    const deliver = (piece: Buffer): Promise<void> | undefined => {
      if (piece.length === 0) return undefined;
      if (streamed) {
        const r = req.onBody!(piece);
        return r && typeof (r as Promise<void>).then === "function" ? (r as Promise<void>) : undefined;
      }
      keptBytes += piece.length;
      if (keptBytes > MAX_KEPT_BODY_BYTES) throw new BulkNetworkError(`The answer's body is larger than ${MAX_KEPT_BODY_BYTES} bytes`, true);
      kept.push(Buffer.from(piece));
      return undefined;
    };

    const parseHead = (text: string) => {
      const lines = text.split("\r\n");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
      if (!m) throw new BulkNetworkError(`Not an HTTP/1.1 answer: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`, true);
      status = Number(m[1]);
      headers = new Headers();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      if (status >= 100 && status < 200) {
        framing = undefined; // an interim answer: the real one follows
        if (status === 100) sendBody();
        return;
      }
      bodyDecided = true; // a final answer before "100 Continue": the body is not wanted
      finalAnswer = true;
      const te = headers.get("transfer-encoding");
      const cl = headers.get("content-length");
      if (status === 204 || status === 304) framing = { kind: "none" };
      else if (te !== null && /chunked/i.test(te)) framing = { kind: "chunked" };
      else if (cl !== null) {
        const n = Number(cl);
        if (!Number.isSafeInteger(n) || n < 0) throw new BulkNetworkError(`Invalid Content-Length: ${cl}`, true);
        framing = n === 0 ? { kind: "none" } : { kind: "length", remaining: n };
      } else framing = { kind: "eof" };
      streamed = req.onBody !== undefined && status >= 200 && status < 300;
    };

    /**
     * Consume buf[start, end). Returns the offset reached when a consumer asked to wait (the rest
     * must be consumed later, from the same memory, with the socket paused), or `end`.
     */
    const consume = (buf: Buffer, start: number, end: number): { at: number; wait?: Promise<void> } => {
      let at = start;
      while (at < end && !settled) {
        if (framing === undefined) {
          const take = buf.subarray(at, end);
          const joined = head.length ? Buffer.concat([head, take]) : take;
          const stop = joined.indexOf("\r\n\r\n");
          if (stop < 0) {
            if (joined.length > MAX_HEAD_BYTES) throw new BulkNetworkError("The answer's headers are too large", true);
            head = Buffer.from(joined);
            return { at: end };
          }
          const used = stop + 4 - head.length; // bytes of `take` that belong to this head
          head = Buffer.alloc(0);
          parseHead(joined.subarray(0, stop).toString("latin1"));
          at += used;
          if ((framing as Framing | undefined)?.kind === "none") {
            done();
            return { at: end };
          }
          continue;
        }
        if (framing.kind === "length") {
          const n = Math.min(framing.remaining, end - at);
          framing.remaining -= n;
          const wait = deliver(buf.subarray(at, at + n));
          at += n;
          if (framing.remaining === 0) {
            if (wait) return { at: end, wait: wait.then(done) };
            done();
            return { at: end };
          }
          if (wait) return { at, wait };
          continue;
        }
        if (framing.kind === "eof") {
          const wait = deliver(buf.subarray(at, end));
          return { at: end, wait };
        }
        if (framing.kind === "chunked") {
          if (chunkState === "data") {
            const n = Math.min(chunkLeft, end - at);
            chunkLeft -= n;
            const wait = deliver(buf.subarray(at, at + n));
            at += n;
            if (chunkLeft === 0) chunkState = "data-end";
            if (wait) return { at, wait };
            continue;
          }
          // size line, CRLF after data, trailers: byte by byte is fine (they are short)
          const ch = buf[at++]!;
          if (chunkState === "data-end") {
            if (ch === 0x0a) chunkState = "size";
            continue;
          }
          if (chunkState === "size") {
            if (ch !== 0x0a) {
              if (chunkLine.length > 1024) throw new BulkNetworkError("Invalid chunked encoding", true);
              chunkLine += String.fromCharCode(ch);
              continue;
            }
            const size = parseInt(chunkLine.split(";")[0]!.trim(), 16);
            chunkLine = "";
            if (!Number.isSafeInteger(size) || size < 0) throw new BulkNetworkError("Invalid chunked encoding", true);
            if (size === 0) chunkState = "trailer";
            else {
              chunkLeft = size;
              chunkState = "data";
            }
            continue;
          }
          // trailer: lines until an empty one
          if (ch !== 0x0a) {
            trailerLine += String.fromCharCode(ch);
            continue;
          }
          if (trailerLine.replace(/\r$/, "") === "") {
            done();
            return { at: end };
          }
          trailerLine = "";
          continue;
        }
      }
      return { at: end };
    };

    const resumeAfter = (wait: Promise<void>) => {
      wait.then(
        () => {
          if (settled) return;
          const b = backlog;
          backlog = undefined;
          if (b && !step(b.buf, b.start, b.end)) return;
          if (ended && framing?.kind === "eof") return done();
          socket.resume();
        },
        (err) => finish(err),
      );
    };

    /** Process bytes; false when a consumer asked to wait (the socket must stay paused). */
    const step = (buf: Buffer, start: number, end: number): boolean => {
      let r;
      try {
        r = consume(buf, start, end);
      } catch (err) {
        finish(err);
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
      if (framing?.kind === "eof") {
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
