/**
 * An HTTP/1.1 response parser with no I/O of its own: bytes in, a head, body pieces and an end
 * out. It frames the body by Content-Length, chunked encoding, or the connection's end; skips
 * interim (1xx) answers after reporting them; and lets the body's consumer hold it back: when
 * `body` returns a promise, `consume` stops there and says where, so the caller can pause its
 * socket and feed the rest of the same buffer later.
 */

export type Framing = { kind: "none" } | { kind: "length"; remaining: number } | { kind: "chunked" } | { kind: "eof" };

/** The answer is not HTTP, or breaks its own framing. */
export class ProtocolError extends Error {}

export interface ResponseSink {
  /** A head: an interim one (1xx, another head follows) or the final answer's. May throw. */
  head(status: number, headers: Headers): void;
  /** A piece of the final answer's body, valid only during the call; a promise holds back the next. */
  body(piece: Buffer): Promise<void> | undefined;
  /** The final answer is complete. */
  end(): void;
}

export const MAX_HEAD_BYTES = 64 * 1024;

export class ResponseParser {
  private headBytes: Buffer = Buffer.alloc(0);
  private framing: Framing | undefined;
  private chunkLine = "";
  private chunkLeft = 0;
  private chunkState: "size" | "data" | "data-end" | "trailer" = "size";
  private trailerLine = "";
  private stopped = false;

  constructor(private readonly sink: ResponseSink) {}

  /** The body runs until the connection ends (no length, not chunked): its end is the answer's. */
  get untilEof(): boolean {
    return this.framing?.kind === "eof";
  }

  /** Stop parsing: nothing more is reported (the request ended some other way). */
  stop(): void {
    this.stopped = true;
  }

  private finish(): void {
    this.stopped = true;
    this.sink.end();
  }

  private parseHead(text: string): void {
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (!m) throw new ProtocolError(`Not an HTTP/1.1 answer: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`);
    const status = Number(m[1]);
    const headers = new Headers();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    if (status >= 100 && status < 200) {
      this.framing = undefined; // an interim answer: the real one follows
      this.sink.head(status, headers);
      return;
    }
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (status === 204 || status === 304) this.framing = { kind: "none" };
    else if (te !== null && /chunked/i.test(te)) this.framing = { kind: "chunked" };
    else if (cl !== null) {
      const n = Number(cl);
      if (!Number.isSafeInteger(n) || n < 0) throw new ProtocolError(`Invalid Content-Length: ${cl}`);
      this.framing = n === 0 ? { kind: "none" } : { kind: "length", remaining: n };
    } else this.framing = { kind: "eof" };
    this.sink.head(status, headers);
  }

  /**
   * Consume buf[start, end). Returns the offset reached when the body's consumer asked to wait
   * (the rest must be consumed later, from the same memory), or `end`.
   */
  consume(buf: Buffer, start: number, end: number): { at: number; wait?: Promise<void> } {
    let at = start;
    while (at < end && !this.stopped) {
      const framing = this.framing;
      if (framing === undefined) {
        const take = buf.subarray(at, end);
        const joined = this.headBytes.length ? Buffer.concat([this.headBytes, take]) : take;
        const stop = joined.indexOf("\r\n\r\n");
        if (stop < 0) {
          if (joined.length > MAX_HEAD_BYTES) throw new ProtocolError("The answer's headers are too large");
          this.headBytes = Buffer.from(joined);
          return { at: end };
        }
        const used = stop + 4 - this.headBytes.length; // bytes of `take` that belong to this head
        this.headBytes = Buffer.alloc(0);
        this.parseHead(joined.subarray(0, stop).toString("latin1"));
        at += used;
        if (this.framing?.kind === "none") {
          this.finish();
          return { at: end };
        }
        continue;
      }
      if (framing.kind === "length") {
        const n = Math.min(framing.remaining, end - at);
        framing.remaining -= n;
        const wait = this.sink.body(buf.subarray(at, at + n));
        at += n;
        if (framing.remaining === 0) {
          if (wait) return { at: end, wait: wait.then(() => this.finish()) };
          this.finish();
          return { at: end };
        }
        if (wait) return { at, wait };
        continue;
      }
      if (framing.kind === "eof") {
        const wait = this.sink.body(buf.subarray(at, end));
        return { at: end, ...(wait ? { wait } : {}) };
      }
      if (framing.kind === "none") return { at: end };
      // chunked
      if (this.chunkState === "data") {
        const n = Math.min(this.chunkLeft, end - at);
        this.chunkLeft -= n;
        const wait = this.sink.body(buf.subarray(at, at + n));
        at += n;
        if (this.chunkLeft === 0) this.chunkState = "data-end";
        if (wait) return { at, wait };
        continue;
      }
      // size line, CRLF after data, trailers: byte by byte is fine (they are short)
      const ch = buf[at++]!;
      if (this.chunkState === "data-end") {
        if (ch === 0x0a) this.chunkState = "size";
        continue;
      }
      if (this.chunkState === "size") {
        if (ch !== 0x0a) {
          if (this.chunkLine.length > 1024) throw new ProtocolError("Invalid chunked encoding");
          this.chunkLine += String.fromCharCode(ch);
          continue;
        }
        const size = parseInt(this.chunkLine.split(";")[0]!.trim(), 16);
        this.chunkLine = "";
        if (!Number.isSafeInteger(size) || size < 0) throw new ProtocolError("Invalid chunked encoding");
        if (size === 0) this.chunkState = "trailer";
        else {
          this.chunkLeft = size;
          this.chunkState = "data";
        }
        continue;
      }
      // trailer: lines until an empty one
      if (ch !== 0x0a) {
        this.trailerLine += String.fromCharCode(ch);
        continue;
      }
      if (this.trailerLine.replace(/\r$/, "") === "") {
        this.finish();
        return { at: end };
      }
      this.trailerLine = "";
    }
    return { at: end };
  }
}
