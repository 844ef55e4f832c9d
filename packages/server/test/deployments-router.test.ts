/**
 * The deployment router under load and across redeploys: real sandboxes, real HTTP through cairnd.
 * Behaviour only (every answer counted), never timing.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Cairn } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";

/** The deployments test's Python app: HTTP/1.0, so every request is a new connection to it. */
const MAIN_PY = `import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"py ok"
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`;

/**
 * HTTP/1.1 that closes a connection 1 ms after each answer without saying so (no `Connection:
 * close`, no Keep-Alive hint): a connection the router reuses is often one the app is closing.
 */
const HASTY_JS = `require("net").createServer((s) => {
  s.on("error", () => undefined);
  s.on("data", () => {
    s.write("HTTP/1.1 200 OK\\r\\ncontent-length: 8\\r\\n\\r\\nhasty ok");
    setTimeout(() => s.end(), 1);
  });
}).listen(process.env.PORT, "127.0.0.1");`;

/** Answers its version after a short wait, so that requests are in flight when a redeploy switches. */
const VERSIONED_JS = `const v = require("fs").readFileSync(__dirname + "/version.txt", "utf8");
require("http").createServer((q, r) => setTimeout(() => r.end(v), 20)).listen(process.env.PORT, "127.0.0.1");`;

/** Answers its version; an upgraded connection gets its version, then an echo of what it sends. */
const UPGRADE_JS = `const v = require("fs").readFileSync(__dirname + "/version.txt", "utf8");
const s = require("http").createServer((q, r) => r.end(v));
s.on("upgrade", (q, sock) => {
  sock.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n" + v);
  sock.on("data", (d) => sock.write(d));
});
s.listen(process.env.PORT, "127.0.0.1");`;

/** Echoes a request's body as it arrives; GET /headers answers the headers it got; GET /exit answers, then the app exits. */
const ECHO_JS = `require("http").createServer((q, r) => {
  if (q.url === "/exit") return r.end("bye", () => process.exit(0));
  if (q.url === "/headers") {
    r.writeHead(200, ["X-Up", "1", "X-Up", "2", "Content-Type", "application/json"]);
    return r.end(JSON.stringify(q.rawHeaders));
  }
  r.writeHead(200, { "content-type": "application/octet-stream" });
  q.pipe(r);
}).listen(process.env.PORT, "127.0.0.1");`;

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(url: string, host: string, agent: Agent | false = false, path = "/"): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path, agent, headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end();
  });
}

/** `count` GETs over `connections` kept-alive connections; the statuses (and bodies) seen. */
async function hammer(url: string, host: string, count: number, connections: number): Promise<Map<string, number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const seen = new Map<string, number>();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (next++ < count) {
          const a = await get(url, host, agent).catch((err: Error) => ({ status: 0, body: err.message }));
          const k = `${a.status} ${a.body.slice(0, 120)}`;
          seen.set(k, (seen.get(k) ?? 0) + 1);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return seen;
}

describe("deployment router", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let dir: string;
  const host = (app: string) => `${app}.localhost:${new URL(c.url).port}`;

  async function tarOf(files: Record<string, string>): Promise<Buffer> {
    const d = await mkdtemp(join(dir, "app-"));
    for (const [name, text] of Object.entries(files)) await writeFile(join(d, name), text);
    return execFileSync("tar", ["-czf", "-", "-C", d, "."]);
  }

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const fixture = withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-router-"));
  });

  it("answers 2,000 requests over 16 kept-alive connections without a 502, whether the app keeps connections or not", async () => {
    await cairn.deployments.deploy({ app: "py", data: await tarOf({ "main.py": MAIN_PY }) });
    await cairn.deployments.deploy({ app: "hasty", data: await tarOf({ "server.js": HASTY_JS }), cmd: "node server.js" });
    assert.deepEqual([...(await hammer(c.url, host("py"), 2000, 16))], [["200 py ok", 2000]]);
    assert.deepEqual([...(await hammer(c.url, host("hasty"), 2000, 16))], [["200 hasty ok", 2000]]);
    await cairn.deployments.remove({ app: "py", deleteFilesystem: true });
    await cairn.deployments.remove({ app: "hasty", deleteFilesystem: true });
  });

  it("switches to a new version without a failed request for clients looping meanwhile", async () => {
    const version = async (v: string) => tarOf({ "server.js": VERSIONED_JS, "version.txt": v });
    await cairn.deployments.deploy({ app: "loop", data: await version("v1"), cmd: "node server.js" });
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const seen = new Map<string, number>();
    let stop = false;
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const a = await get(c.url, host("loop"), agent).catch((err: Error) => ({ status: 0, body: err.message }));
        const k = `${a.status} ${a.body.slice(0, 120)}`;
        seen.set(k, (seen.get(k) ?? 0) + 1);
      }
    });
    try {
      while (!seen.has("200 v1")) await new Promise((r) => setTimeout(r, 10));
      await cairn.deployments.deploy({ app: "loop", data: await version("v2"), cmd: "node server.js" });
      await cairn.deployments.deploy({ app: "loop", data: await version("v3"), cmd: "node server.js" });
      assert.equal((await get(c.url, host("loop"))).body, "v3", "the route switched when the deploy returned");
      const before = seen.get("200 v3") ?? 0;
      while ((seen.get("200 v3") ?? 0) < before + 8) await new Promise((r) => setTimeout(r, 10));
    } finally {
      stop = true;
      await Promise.all(clients);
      agent.destroy();
    }
    assert.deepEqual([...seen.keys()].filter((k) => !k.startsWith("200 ")), [], `every answer a 200: ${JSON.stringify([...seen])}`);
    assert.ok(seen.has("200 v1") && seen.has("200 v3"));
    const states = (await cairn.deployments.list({ app: "loop" })).map((d) => [d.version, d.state]);
    assert.deepEqual(states, [[3, "running"], [2, "superseded"], [1, "superseded"]]);
    await cairn.deployments.remove({ app: "loop", deleteFilesystem: true });
  });

  it("streams a large body both ways: the echo comes back while the upload still goes", async () => {
    await cairn.deployments.deploy({ app: "echo", data: await tarOf({ "server.js": ECHO_JS }), cmd: "node server.js" });
    const chunk = Buffer.alloc(1 << 20);
    const sent = createHash("sha256");
    const got = createHash("sha256");
    let received = 0;
    let echoing: () => void = () => undefined;
    const echoStarted = new Promise<void>((r) => (echoing = r));
    // 64 MiB, of which the last 48 only once the first echoed bytes are back: a router that
    // buffered the request (or the answer) would wait here forever.
    async function* body() {
      for (let i = 0; i < 64; i++) {
        if (i === 16) await echoStarted;
        chunk.fill(i);
        sent.update(chunk);
        yield Buffer.from(chunk);
      }
    }
    const u = new URL(c.url);
    const status = await new Promise<number>((resolve, reject) => {
      const r = request({ host: u.hostname, port: u.port, method: "POST", path: "/", headers: { host: host("echo"), "transfer-encoding": "chunked" } }, (res) => {
        res.on("data", (d: Buffer) => {
          got.update(d);
          received += d.length;
          if (received >= 1 << 20) echoing();
        });
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      });
      r.on("error", reject);
      Readable.from(body()).pipe(r);
    });
    assert.equal(status, 200);
    assert.equal(received, 64 << 20);
    assert.equal(got.digest("hex"), sent.digest("hex"));
  });

  it("passes headers as written, repeated ones included, and says itself which host was asked for", async () => {
    const u = new URL(c.url);
    const { raw, seen } = await new Promise<{ raw: string[]; seen: string[] }>((resolve, reject) => {
      const headers = ["Host", host("echo"), "X-Forwarded-Host", "evil.example", "X-Dup", "a", "X-Dup", "b"];
      const r = request({ host: u.hostname, port: u.port, path: "/headers", headers }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ raw: res.rawHeaders, seen: JSON.parse(body) as string[] }));
      });
      r.on("error", reject);
      r.end();
    });
    const values = (list: string[], name: string) => list.filter((_, i) => i % 2 === 1 && list[i - 1] === name);
    assert.deepEqual(values(seen, "X-Dup"), ["a", "b"]);
    assert.deepEqual(values(seen, "X-Forwarded-Host"), [host("echo")], "a client's own X-Forwarded-Host is not passed on");
    assert.deepEqual(values(raw, "X-Up"), ["1", "2"]);
  });

  it("answers 502 problem+json APP_UNAVAILABLE once the app is gone, to requests and upgrades alike", async () => {
    assert.equal((await get(c.url, host("echo"), false, "/exit")).body, "bye");
    let a: Answer;
    do a = await get(c.url, host("echo"));
    while (a.status === 200);
    assert.equal(a.status, 502);
    assert.equal(a.headers["content-type"], "application/problem+json");
    const problem = JSON.parse(a.body) as Record<string, unknown>;
    assert.equal(problem.code, "APP_UNAVAILABLE");
    assert.equal(problem.status, 502);
    assert.equal(problem.title, "App not answering");
    assert.match(String(problem.detail), /^echo\.production did not answer/);
    assert.equal(problem.requestId, a.headers["x-request-id"]);

    const sock = connect(Number(new URL(c.url).port), "127.0.0.1");
    let raw = "";
    sock.on("data", (d) => (raw += d));
    const closed = new Promise((r) => sock.on("close", r));
    sock.write(`GET /ws HTTP/1.1\r\nHost: ${host("echo")}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
    await closed;
    assert.match(raw, /^HTTP\/1.1 502 /);
    assert.match(raw, /"code":"APP_UNAVAILABLE"/);

    const missing = await get(c.url, host("nothing-here"));
    assert.equal(missing.status, 404);
    assert.equal((JSON.parse(missing.body) as { code: string }).code, "DEPLOYMENT_NOT_FOUND");
    await cairn.deployments.remove({ app: "echo", deleteFilesystem: true });
  });

  it("lets a superseded version finish an upgraded connection, and stops it at once when cairnd stops", async () => {
    const version = async (v: string) => tarOf({ "server.js": UPGRADE_JS, "version.txt": v });
    const v1 = await cairn.deployments.deploy({ app: "hold", data: await version("v1"), cmd: "node server.js" });
    const sock = connect(Number(new URL(c.url).port), "127.0.0.1");
    let got = "";
    const waitFor = async (text: string) => {
      while (!got.includes(text)) await new Promise((r) => setTimeout(r, 10));
    };
    sock.on("data", (d) => (got += d));
    sock.on("error", () => undefined);
    const closed = new Promise((r) => sock.on("close", r));
    sock.write(`GET /ws HTTP/1.1\r\nHost: ${host("hold")}\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n`);
    await waitFor("v1");
    const v2 = await cairn.deployments.deploy({ app: "hold", data: await version("v2"), cmd: "node server.js" });
    assert.equal((await get(c.url, host("hold"))).body, "v2");
    sock.write("still there?");
    await waitFor("still there?"); // v1 answers on the connection it had when the route switched
    await fixture.restart("stop");
    await closed;
    assert.equal((await cairn.sandboxes.get(v1.sandbox!)).state, "stopped", "the draining version stopped with cairnd");
    assert.equal((await cairn.sandboxes.get(v2.sandbox!)).state, "running");
    assert.equal((await get(c.url, host("hold"))).body, "v2", "the serving version is routed again after the restart");
    await cairn.deployments.remove({ app: "hold", deleteFilesystem: true });
  });
});
