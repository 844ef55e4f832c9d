/**
 * Ports in: `getUrl(port)` reaches a server inside the sandbox through cairnd's router — plain
 * requests, a streamed answer, a websocket-style upgrade — and a private port refuses whoever
 * lacks its token or a key of the project. The sandbox never sees the token or the key.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import type { Socket } from "node:net";
import { Cairn, type Sandbox } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";

/** A server in the sandbox: echoes what it was sent (url, authorization, cookie), streams /stream, upgrades /ws to an echo. */
const SERVER = `
const http = require("http"), fs = require("fs");
const s = http.createServer((q, r) => {
  if (q.url === "/stream") {
    r.write("first\\n");
    const t = setInterval(() => { if (fs.existsSync("/tmp/go")) { clearInterval(t); r.end("second\\n"); } }, 20);
    return;
  }
  r.end(JSON.stringify({ url: q.url, authorization: q.headers.authorization ?? null, cookie: q.headers.cookie ?? null, project: q.headers["x-cairn-project"] ?? null }));
});
s.on("upgrade", (q, sock) => { sock.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n"); sock.pipe(sock); });
s.listen(Number(process.argv[2]), process.argv[3], () => console.log("listening"));
`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request to a routed URL, sent to cairnd's address with the URL's host name in Host (as a browser on *.localhost would). */
function get(c: CairndProcess, url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const u = new URL(url);
  const api = new URL(c.url);
  return new Promise((resolve, reject) => {
    const r = request({ host: api.hostname, port: api.port, path: u.pathname + u.search, headers: { host: u.host, ...headers } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on("error", reject);
    r.end();
  });
}

async function serve(sb: Sandbox, port: number, address = "127.0.0.1"): Promise<void> {
  await sb.files.write("/tmp/server.js", SERVER);
  await sb.exec(`node /tmp/server.js ${port} ${address}`, { background: true });
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    if ((await sb.exec(`bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null && echo up`)).stdout.includes("up")) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the server in the sandbox did not listen");
}

describe("sandbox ports through the router", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  withCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } }, (s) => ({ c, cairn } = s));

  it("a private port: the URL's token works (then a cookie), an API key works, nothing else does; the app sees neither", async () => {
    const sb = await cairn.sandboxes.create({}); // no network: the router goes in through its namespace
    try {
      await serve(sb, 3000);
      const url = await sb.getUrl(3000);
      const u = new URL(url);
      assert.equal(u.hostname, `3000-${sb.id.replace("_", "-")}.localhost`);
      const token = u.searchParams.get("cairn_token");
      assert.ok(token && token.length >= 32);
      assert.equal(await sb.getUrl(3000), url, "asking again gives the same URL");

      const ok = await get(c, `${url.replace("/?", "/hello?q=1&")}`);
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(JSON.parse(ok.body), { url: "/hello?q=1", authorization: null, cookie: null, project: null });
      const cookie = String(ok.headers["set-cookie"]).split(";")[0]!;
      assert.equal(cookie, `cairn_token=${token}`);

      const bare = `http://${u.host}/`;
      for (const headers of [{}, { authorization: "Bearer wrong" }, { "x-unused": "1" }, { cookie: "cairn_token=wrong" }, { authorization: `Bearer ${token!.slice(0, -1)}x` }]) {
        const refused = await get(c, bare, headers as Record<string, string>);
        assert.equal(refused.status, 401, JSON.stringify(headers));
        assert.equal(JSON.parse(refused.body).code, "UNAUTHORIZED");
      }
      assert.equal((await get(c, `${bare}?cairn_token=wrong`)).status, 401);

      const withCookie = await get(c, bare, { cookie: `theirs=1; ${cookie}` });
      assert.equal(withCookie.status, 200);
      assert.equal(JSON.parse(withCookie.body).cookie, "theirs=1");
      const withToken = await get(c, bare, { authorization: `Bearer ${token}` });
      assert.equal(JSON.parse(withToken.body).authorization, null);
      const withKey = await get(c, bare, { authorization: `Bearer ${c.adminKey}` });
      assert.equal(withKey.status, 200);
      assert.equal(JSON.parse(withKey.body).authorization, null, "the key never reaches the sandbox");

      // Another project's key is refused.
      const { apiKey } = await cairn.projects.create("elsewhere");
      assert.equal((await get(c, bare, { authorization: `Bearer ${apiKey.key}` })).status, 401);

      await sb.unexpose(3000);
      const gone = await get(c, url);
      assert.equal(gone.status, 404);
      assert.equal(JSON.parse(gone.body).code, "PORT_NOT_FOUND");
    } finally {
      await sb.kill();
    }
  });

  it("streams an answer as the app writes it, upgrades to a two-way connection, and a public port needs no token", async () => {
    const sb = await cairn.sandboxes.create({ network: "egress" });
    try {
      await serve(sb, 8000, "0.0.0.0");
      const url = new URL(await sb.getUrl(8000));
      const api = new URL(c.url);
      // Streaming: the first line arrives while the app still holds the answer open.
      const first = await new Promise<{ chunk: string; rest: Promise<string> }>((resolve, reject) => {
        const r = request({ host: api.hostname, port: api.port, path: `/stream${url.search}`, headers: { host: url.host } }, (res) => {
          let all = "";
          const rest = new Promise<string>((done) => res.on("end", () => done(all)));
          res.once("data", (d) => {
            all += d;
            resolve({ chunk: String(d), rest });
            res.on("data", (more) => (all += more));
          });
        });
        r.on("error", reject);
        r.end();
      });
      assert.equal(first.chunk, "first\n");
      await sb.exec("touch /tmp/go");
      assert.equal(await first.rest, "first\nsecond\n");

      // An upgrade (as a websocket's): bytes both ways on the same connection.
      const echoed = await new Promise<string>((resolve, reject) => {
        const r = request({ host: api.hostname, port: api.port, path: `/ws${url.search}`, headers: { host: url.host, connection: "Upgrade", upgrade: "echo" } });
        r.on("upgrade", (res, socket: Socket) => {
          assert.equal(res.statusCode, 101);
          socket.write("ping over the router");
          socket.once("data", (d) => {
            resolve(String(d));
            socket.destroy();
          });
        });
        r.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
        r.on("error", reject);
        r.end();
      });
      assert.equal(echoed, "ping over the router");
      const noToken = await new Promise<number>((resolve, reject) => {
        const r = request({ host: api.hostname, port: api.port, path: "/ws", headers: { host: url.host, connection: "Upgrade", upgrade: "echo" } });
        r.on("upgrade", (_res, socket: Socket) => {
          socket.destroy();
          resolve(101);
        });
        r.on("response", (res) => resolve(res.statusCode ?? 0));
        r.on("error", reject);
        r.end();
      });
      assert.equal(noToken, 401);

      const pub = await sb.expose(8000, { public: true });
      assert.equal(pub.token, null);
      assert.equal(new URL(pub.url).search, "");
      assert.equal((await get(c, pub.url)).status, 200);
      assert.deepEqual((await sb.ports()).map((p) => [p.port, p.public]), [[8000, true]]);
    } finally {
      await sb.kill();
    }
    // A killed sandbox's port is gone with it.
    const after = await get(c, `http://8000-${sb.id.replace("_", "-")}.localhost/`);
    assert.equal(after.status, 404);
  });
});
