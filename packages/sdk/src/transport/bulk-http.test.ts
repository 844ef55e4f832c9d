/**
 * bulk-http.ts against real servers on loopback: node:http answering the ways HTTP/1.1 allows
 * (Content-Length, chunked, until close, interim 100), and raw sockets that split or cut an answer
 * where a parser is most likely to go wrong. pumpFile's request bodies are checked byte for byte.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { mkdtemp, open, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BulkNetworkError, bulkRequest, type BulkRequest } from "./bulk-http.js";
import { LocalFileChangedError } from "@cairn/blockio";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function listen(server: Server | ReturnType<typeof createNetServer>): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** GET `path`, collecting the streamed body (copied: the pieces' memory is reused). */
async function get(base: string, path: string, options: Partial<BulkRequest> = {}) {
  const pieces: Buffer[] = [];
  const res = await bulkRequest({ url: base + path, method: "GET", headers: {}, onBody: (p) => void pieces.push(Buffer.from(p)), ...options });
  return { ...res, streamed: Buffer.concat(pieces) };
}

describe("bulkRequest", () => {
  const big = randomBytes(3 * 1024 * 1024 + 777);
  let server: Server;
  let base: string;
  let dir: string;
  const received = new Map<string, { headers: IncomingMessage["headers"]; body: Buffer }>();
  let fullBodyBytes = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-bulk-"));
    server = createHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
      const u = new URL(req.url!, "http://x");
      if (req.method === "PUT") {
        const parts: Buffer[] = [];
        try {
          for await (const p of req) parts.push(p as Buffer);
        } catch {
          return; // the client cut the body short
        }
        const body = Buffer.concat(parts);
        received.set(u.pathname, { headers: req.headers, body });
        res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ size: body.length, sha: sha(body) }));
        return;
      }
      switch (u.pathname) {
        case "/length":
          res.writeHead(200, { "content-length": big.length });
          for (let off = 0; off < big.length; off += 100_000) res.write(big.subarray(off, off + 100_000));
          return res.end();
        case "/chunked":
          res.writeHead(200); // no length: node:http sends chunked
          for (let off = 0, n = 1; off < big.length; off += n, n = (n * 7 + 3) % 70_000 || 1) res.write(big.subarray(off, off + n));
          return res.end();
        case "/continue":
          res.writeContinue();
          res.writeHead(200, { "content-length": 5 });
          return res.end("hello");
        case "/empty":
          res.writeHead(204);
          return res.end();
        case "/problem":
          res.writeHead(404, { "content-type": "application/problem+json" });
          return res.end(JSON.stringify({ code: "PATH_NOT_FOUND", detail: "No file /x" }));
      }
      res.writeHead(500).end();
    });
    // As cairnd does: "100 Continue" only for a body the server will read; a write that cannot
    // fit is answered at once, and the client must not send the body.
    server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === "/full") {
        res.writeHead(507, { "content-type": "application/problem+json", connection: "close" }).end(JSON.stringify({ code: "QUOTA_EXCEEDED" }));
        req.on("data", (d: Buffer) => (fullBodyBytes += d.length));
        return;
      }
      res.writeContinue();
      server.emit("request", req, res);
    });
    base = await listen(server);
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it("streams a Content-Length body and a chunked one byte for byte", async () => {
    for (const path of ["/length", "/chunked"]) {
      const r = await get(base, path);
      assert.equal(r.status, 200);
      assert.equal(sha(r.streamed), sha(big), path);
      assert.equal(r.body.length, 0, "a streamed body is not kept as well");
    }
  });

  it("waits for a consumer's promise before reusing the memory it was handed", async () => {
    const pieces: Buffer[] = [];
    let views = 0;
    await bulkRequest({
      url: base + "/length",
      method: "GET",
      headers: {},
      onBody: async (p) => {
        views++;
        await new Promise((r) => setTimeout(r, views % 5 === 0 ? 5 : 0));
        pieces.push(Buffer.from(p)); // copied only after the wait: the bytes must still be there
      },
    });
    assert.equal(sha(Buffer.concat(pieces)), sha(big));
  });

  it("skips an interim 100 answer, keeps non-2xx bodies, ends at 204 with no body", async () => {
    const r = await get(base, "/continue");
    assert.equal(r.status, 200);
    assert.equal(r.streamed.toString(), "hello");
    const p = await get(base, "/problem");
    assert.equal(p.status, 404);
    assert.equal(p.streamed.length, 0, "an error answer is not handed to the consumer");
    assert.deepEqual(JSON.parse(p.body.toString()), { code: "PATH_NOT_FOUND", detail: "No file /x" });
    assert.equal(p.headers.get("content-type"), "application/problem+json");
    const e = await get(base, "/empty");
    assert.equal(e.status, 204);
  });

  it("sends a file range as the body, with its length", async () => {
    const path = join(dir, "src.bin");
    const data = randomBytes(9 * 1024 * 1024 + 4321); // more than the reader's buffers hold at once
    await writeFile(path, data);
    const fh = await open(path, "r");
    try {
      const sent: number[] = [];
      const r = await bulkRequest({ url: base + "/put", method: "PUT", headers: { "x-test": "1" }, body: { fh, position: 0, length: data.length, onSent: (n) => sent.push(n) } });
      assert.equal(r.status, 201);
      assert.deepEqual(JSON.parse(r.body.toString()), { size: data.length, sha: sha(data) });
      assert.equal(received.get("/put")!.headers["content-length"], String(data.length));
      assert.equal(received.get("/put")!.headers["x-test"], "1");
      assert.equal(sent.at(-1), data.length);
      const r2 = await bulkRequest({ url: base + "/part", method: "PUT", headers: {}, body: { fh, position: 1000, length: 5000 } });
      assert.equal(JSON.parse(r2.body.toString()).sha, sha(data.subarray(1000, 6000)));
    } finally {
      await fh.close();
    }
  });

  it("sends no body the server refuses before asking for it", async () => {
    const path = join(dir, "src2.bin");
    await writeFile(path, Buffer.alloc(64 * 1024 * 1024)); // more than socket buffers hold: the send breaks
    const fh = await open(path, "r");
    try {
      const r = await bulkRequest({ url: base + "/full", method: "PUT", headers: {}, body: { fh, position: 0, length: 64 * 1024 * 1024 } });
      assert.equal(r.status, 507);
      assert.equal(JSON.parse(r.body.toString()).code, "QUOTA_EXCEEDED");
      assert.equal(fullBodyBytes, 0, "no byte of the refused body was sent");
    } finally {
      await fh.close();
    }
  });

  it("fails an upload whose file is shorter than the length it promised, without completing the body", async () => {
    const path = join(dir, "short.bin");
    await writeFile(path, randomBytes(100_000));
    const fh = await open(path, "r");
    try {
      await truncate(path, 50_000); // shrinks after the caller took its size
      await assert.rejects(bulkRequest({ url: base + "/shrunk", method: "PUT", headers: {}, body: { fh, position: 0, length: 100_000 } }), LocalFileChangedError);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(received.has("/shrunk"), false, "the server never saw a complete body");
    } finally {
      await fh.close();
    }
  });

  it("aborts on the signal", async () => {
    const ac = new AbortController();
    let n = 0;
    const p = bulkRequest({
      url: base + "/length",
      method: "GET",
      headers: {},
      signal: ac.signal,
      onBody: async () => {
        if (++n === 2) ac.abort(new Error("stop"));
        await new Promise((r) => setTimeout(r, 1));
      },
    });
    await assert.rejects(p, /stop/);
    await assert.rejects(bulkRequest({ url: base + "/length", method: "GET", headers: {}, signal: AbortSignal.abort(new Error("early")) }), /early/);
  });

  it("refuses header values that would smuggle a line", async () => {
    await assert.rejects(bulkRequest({ url: base + "/length", method: "GET", headers: { "x-a": "1\r\nx-b: 2" } }), TypeError);
  });
});

describe("bulkRequest against raw sockets", () => {
  let server: ReturnType<typeof createNetServer>;
  let base: string;
  /** What the raw server does with each connection, set per test. */
  let behave: (socket: Socket) => void = (s) => s.end();

  before(async () => {
    server = createNetServer((s) => {
      s.once("data", () => behave(s)); // after the request head
      s.on("error", () => undefined);
    });
    base = await listen(server);
  });
  after(async () => {
    await new Promise((r) => server.close(r));
  });

  const answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";

  it("parses an answer that arrives one byte at a time", async () => {
    behave = (s) => {
      let i = 0;
      const next = () => (i < answer.length ? s.write(answer[i++]!, () => setImmediate(next)) : s.end());
      s.setNoDelay(true);
      next();
    };
    const r = await get(base, "/");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "text/plain");
    assert.equal(r.streamed.toString(), "hello world");
  });

  it("reads a body framed by the end of the connection", async () => {
    behave = (s) => s.end("HTTP/1.1 200 OK\r\n\r\nuntil the end");
    assert.equal((await get(base, "/")).streamed.toString(), "until the end");
  });

  it("reports an answer cut short, and a refused connection, as network errors", async () => {
    behave = (s) => s.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
    await assert.rejects(get(base, "/"), (err: unknown) => err instanceof BulkNetworkError && err.answered && /closed before/.test(err.message));
    behave = (s) => s.end("garbage\r\n\r\n");
    await assert.rejects(get(base, "/"), (err: unknown) => err instanceof BulkNetworkError && /Not an HTTP/.test(err.message));
    const closed = createNetServer();
    const url = await listen(closed);
    await new Promise((r) => closed.close(r));
    await assert.rejects(get(url, "/"), (err: unknown) => err instanceof BulkNetworkError && !err.answered && /ECONNREFUSED/.test(err.message));
  });

  it("sends the body anyway to a server that ignores Expect: 100-continue", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-bulk-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "b"), "the body");
    behave = (s) => {
      let got = "";
      s.on("data", (d: Buffer) => {
        got += d.toString();
        if (got.endsWith("the body")) s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      });
    };
    const fh = await open(join(dir, "b"), "r");
    try {
      const r = await bulkRequest({ url: base + "/", method: "PUT", headers: {}, body: { fh, position: 0, length: 8 } });
      assert.equal(r.body.toString(), "ok");
    } finally {
      await fh.close();
    }
  });

  it("refuses headers that never end", async () => {
    behave = (s) => {
      s.write("HTTP/1.1 200 OK\r\n");
      s.write(`x-long: ${"a".repeat(70 * 1024)}\r\n`);
    };
    await assert.rejects(get(base, "/"), /headers are too large/);
  });
});
