/** The HTTP/1.1 response parser on bytes alone: framing, interim answers, split reads, back-pressure, errors. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ProtocolError, ResponseParser } from "./http1-parser.js";

interface Seen {
  heads: number[];
  headers: Headers[];
  body: Buffer[];
  ended: number;
}

function parserWith(options: { wait?: (piece: Buffer) => Promise<void> | undefined } = {}) {
  const seen: Seen = { heads: [], headers: [], body: [], ended: 0 };
  const parser = new ResponseParser({
    head: (s, h) => (seen.heads.push(s), seen.headers.push(h)),
    body: (piece) => (seen.body.push(Buffer.from(piece)), options.wait?.(piece)),
    end: () => seen.ended++,
  });
  return { parser, seen, text: () => Buffer.concat(seen.body).toString("latin1") };
}

/** Feed the bytes in pieces of `size` (1: byte by byte), as a socket might deliver them. */
async function feed(parser: ResponseParser, raw: string, size = raw.length): Promise<void> {
  const bytes = Buffer.from(raw, "latin1");
  for (let i = 0; i < bytes.length; i += size) {
    const buf = bytes.subarray(i, Math.min(bytes.length, i + size));
    let start = 0;
    for (;;) {
      const r = parser.consume(buf, start, buf.length);
      if (!r.wait) break;
      await r.wait;
      if (r.at >= buf.length) break;
      start = r.at;
    }
  }
}

const CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n";

describe("HTTP/1.1 response parser", () => {
  it("reads a Content-Length body and ends at its length", async () => {
    const { parser, seen, text } = parserWith();
    await feed(parser, "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello");
    assert.deepEqual(seen.heads, [201]);
    assert.equal(seen.headers[0]!.get("x-a"), "1");
    assert.equal(text(), "hello");
    assert.equal(seen.ended, 1);
  });

  for (const size of [1, 2, 3, 7, 64]) {
    it(`reads a chunked body with extensions and trailers split every ${size} bytes`, async () => {
      const { parser, seen, text } = parserWith();
      await feed(parser, CHUNKED, size);
      assert.equal(text(), "hello, world");
      assert.equal(seen.ended, 1);
    });
  }

  it("reports an interim 100 Continue, then the final answer", async () => {
    const { parser, seen, text } = parserWith();
    await feed(parser, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert.deepEqual(seen.heads, [100, 200]);
    assert.equal(text(), "ok");
    assert.equal(seen.ended, 1);
  });

  it("ends at the head for 204, 304 and a zero length", async () => {
    for (const head of ["HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]) {
      const { parser, seen } = parserWith();
      await feed(parser, head);
      assert.equal(seen.ended, 1, head);
      assert.equal(seen.body.length, 0);
    }
  });

  it("lets a body without length run to the connection's end (the caller ends it)", async () => {
    const { parser, seen, text } = parserWith();
    await feed(parser, "HTTP/1.1 200 OK\r\n\r\nsome bytes");
    assert.equal(parser.untilEof, true);
    assert.equal(text(), "some bytes");
    assert.equal(seen.ended, 0);
  });

  it("holds back when the consumer waits, and goes on from the same place", async () => {
    const order: string[] = [];
    const { parser, text, seen } = parserWith({
      wait: (piece) =>
        new Promise((r) =>
          setTimeout(() => {
            order.push(piece.toString("latin1"));
            r();
          }, 5),
        ),
    });
    await feed(parser, CHUNKED);
    assert.deepEqual(order, ["hello", ", world"]);
    assert.equal(text(), "hello, world");
    assert.equal(seen.ended, 1);
  });

  it("stops reporting once stopped", async () => {
    const { parser, seen } = parserWith();
    parser.stop();
    await feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert.deepEqual(seen.heads, []);
  });

  for (const [what, raw] of [
    ["a status line that is not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"],
    ["a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"],
    ["a chunk size that is not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ["a head larger than 64 KiB", `HTTP/1.1 200 OK\r\nX: ${"a".repeat(70 * 1024)}`],
  ] as const) {
    it(`refuses ${what}`, async () => {
      const { parser } = parserWith();
      await assert.rejects(feed(parser, raw), ProtocolError);
    });
  }
});
