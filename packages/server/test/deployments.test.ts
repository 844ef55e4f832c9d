/** Deployments end to end: real sandboxes, a real persistent filesystem, real HTTP through the router. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn, CairnError } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";

const MAIN_PY = `import os, http.server, pathlib
fs = pathlib.Path(os.environ["CAIRN_LOCAL_FS"]); (fs / "uploads").mkdir(parents=True, exist_ok=True)
count = fs / "count"; n = int(count.read_text()) + 1 if count.exists() else 1; count.write_text(str(n))
app_files = sorted(os.listdir("/data/app"))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("deploy #%d %s" % (n, ",".join(app_files))).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`;

/** GET through the router with a Host header, as a browser on *.localhost would. */
function get(url: string, host: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path: "/", headers: { host } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on("error", reject);
    r.end();
  });
}

describe("deployments", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let dir: string;
  const port = () => new URL(c.url).port;

  async function tarOf(files: Record<string, string>): Promise<Buffer> {
    const d = await mkdtemp(join(dir, "app-"));
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(d, name, ".."), { recursive: true });
      await writeFile(join(d, name), text);
    }
    return execFileSync("tar", ["-czf", "-", "-C", d, "."]);
  }

  // Registered first, so it runs before the fixture destroys cairnd (after hooks run in order).
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-deploy-"));
  });

  it("keeps /data/local-fs across redeploys, replaces /data/app, and separates projects and environments", async () => {
    const v1 = await tarOf({ "main.py": MAIN_PY, "v1-only.txt": "1" });
    const d1 = await cairn.deployments.deploy({ app: "shop", data: v1 });
    assert.equal(d1.state, "running");
    assert.equal(d1.command, "python3 main.py");
    assert.equal(d1.url, `http://shop.localhost:${port()}/`);
    let r = await get(c.url, `shop.localhost:${port()}`);
    assert.equal(r.status, 200);
    assert.equal(r.body, "deploy #1 main.py,v1-only.txt");

    const v2 = await tarOf({ "main.py": MAIN_PY, "v2-only.txt": "2" });
    const d2 = await cairn.deployments.deploy({ app: "shop", data: v2 });
    assert.equal(d2.version, 2);
    r = await get(c.url, `shop.localhost:${port()}`);
    assert.equal(r.body, "deploy #2 main.py,v2-only.txt", "the counter survived; deploy 1's code is gone");
    const versions = await cairn.deployments.list({ app: "shop" });
    assert.deepEqual(versions.map((d) => [d.version, d.state]), [[2, "running"], [1, "superseded"]]);

    await cairn.deployments.deploy({ app: "blog", data: v1 });
    assert.equal((await get(c.url, `blog.localhost:${port()}`)).body, "deploy #1 main.py,v1-only.txt", "another project, another filesystem");
    await cairn.deployments.deploy({ app: "shop", env: "beta", data: v1 });
    assert.equal((await get(c.url, `shop.beta.localhost:${port()}`)).body, "deploy #1 main.py,v1-only.txt", "beta is separate from production");
    assert.equal((await get(c.url, `shop.localhost:${port()}`)).body, "deploy #2 main.py,v2-only.txt");

    // The project filesystem is an ordinary volume.
    const vol = await cairn.volumes.get("local-fs-shop-production");
    assert.equal(await vol.files.readText("/count"), "2");
    assert.equal((await get(c.url, `nope.localhost:${port()}`)).status, 404, "unknown hosts get 404");
  });

  it("keeps the old version serving when a new one fails", async () => {
    const broken = await tarOf({ "main.py": "raise SystemExit('boom')\n" });
    await assert.rejects(cairn.deployments.deploy({ app: "shop", data: broken }), (err: unknown) => {
      assert.ok(err instanceof CairnError);
      assert.equal(err.code, "DEPLOY_FAILED");
      assert.match(err.message, /boom/);
      return true;
    });
    assert.equal((await get(c.url, `shop.localhost:${port()}`)).body, "deploy #2 main.py,v2-only.txt");
    const noEntry = await tarOf({ "README.md": "nothing to run" });
    await assert.rejects(cairn.deployments.deploy({ app: "shop", data: noEntry }), /No entrypoint/);
    await assert.rejects(cairn.deployments.deploy({ app: "shop", data: Buffer.from("not a tarball") }), /Unpacking the app failed in the sandbox: .*gzip/);
    const vol = await cairn.volumes.get("local-fs-shop-production");
    assert.equal(await vol.files.readText("/count"), "2", "the volume is untouched");
    const logs = await cairn.deployments.logs({ app: "shop" });
    assert.equal(logs.deployment.state, "failed");
  });

  it("proxies websocket upgrades to the app", async () => {
    const ws = await tarOf({
      "package.json": JSON.stringify({ name: "ws", scripts: { start: "node server.js" } }),
      // A bare upgrade handler that echoes: enough to prove the router splices both ways.
      "server.js": `const s = require('http').createServer((q, r) => r.end('http ok'));
s.on('upgrade', (req, sock) => { sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n'); sock.on('data', (d) => sock.write('echo:' + d)); });
s.listen(process.env.PORT, '127.0.0.1');`,
    });
    await cairn.deployments.deploy({ app: "wsapp", data: ws });
    const { connect } = await import("node:net");
    const sock = connect(Number(port()), "127.0.0.1");
    let got = "";
    sock.on("data", (d) => (got += d));
    await new Promise((r) => sock.on("connect", r));
    sock.write(`GET /chat HTTP/1.1\r\nHost: wsapp.localhost:${port()}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
    for (let i = 0; i < 50 && !got.includes("101"); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(got, /^HTTP\/1.1 101/);
    sock.write("hello");
    for (let i = 0; i < 50 && !got.includes("echo:hello"); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(got, /echo:hello/);
    sock.destroy();
    await cairn.deployments.remove({ app: "wsapp", deleteFilesystem: true });
  });

  it("runs a package.json start script, and stops an app while keeping its filesystem unless asked", async () => {
    const node = await tarOf({
      "package.json": JSON.stringify({ name: "n", scripts: { start: "node server.js" } }),
      "server.js": "require('http').createServer((q,s)=>s.end('node ok')).listen(process.env.PORT, '127.0.0.1')",
    });
    const d = await cairn.deployments.deploy({ app: "nodeapp", data: node });
    assert.equal(d.command, "npm start");
    assert.equal((await get(c.url, `nodeapp.localhost:${port()}`)).body, "node ok");
    await cairn.deployments.remove({ app: "nodeapp" });
    assert.equal((await get(c.url, `nodeapp.localhost:${port()}`)).status, 404);
    await cairn.volumes.get("local-fs-nodeapp-production");
    await cairn.deployments.remove({ app: "blog", deleteFilesystem: true });
    await assert.rejects(cairn.volumes.get("local-fs-blog-production"), /not found/);
  });
});
