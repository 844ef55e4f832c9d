/**
 * `cairn deploy`, `cairn run` and `cairn deployments …`: the built binary against a real cairnd,
 * real sandboxes and real HTTP through cairnd's router. Needs root.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";
import { spawn } from "node:child_process";
import { CLI, cli, fails, getVia, json, killAllSandboxes, ok } from "./helpers.js";

/** Counts its starts in the persistent filesystem and serves "deploy #N"; says so on stdout. */
const MAIN_PY = `import os, http.server, pathlib
count = pathlib.Path(os.environ["CAIRN_LOCAL_FS"]) / "count"
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
print("starting deploy #%d" % n, flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("deploy #%d" % n).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`;

/** Serves "ticker" and writes a line every 300 ms, starting before it serves. */
const TICKER_PY = `import os, sys, threading, time, http.server
def tick():
    n = 0
    while True:
        n += 1
        print("tick %d" % n, flush=True)
        time.sleep(0.3)
threading.Thread(target=tick, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "6"); self.end_headers(); self.wfile.write(b"ticker")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`;

const SERVER_JS = `require("http").createServer((q, s) => s.end("node ok")).listen(process.env.PORT, "127.0.0.1");\n`;

interface DeploymentJson {
  id: string;
  app: string;
  env: string;
  version: number;
  state: string;
  command: string;
  url: string;
}

describe("cairn deploy", () => {
  let cairnd: CairndProcess;
  let scratch: string;
  let appDir: string;
  const { cairn } = cli(() => cairnd);
  const port = () => new URL(cairnd.url).port;
  const get = (host: string) => getVia(cairnd.url, `${host}:${port()}`);

  before(async () => {
    cairnd = await startCairnd();
    scratch = await mkdtemp(join(tmpdir(), "cairn-cli-deploy-"));
    appDir = join(scratch, "app");
    await mkdir(appDir);
    await writeFile(join(appDir, "main.py"), MAIN_PY);
  });
  after(async () => {
    try {
      if (cairnd) {
        // Stop every app through the SDK (not the CLI under test), then any sandbox left.
        const sdk = new Cairn({ url: cairnd.url, apiKey: cairnd.adminKey });
        const apps = new Set((await sdk.deployments.list()).map((d) => d.app));
        for (const app of apps) await sdk.deployments.remove({ app }).catch(() => undefined);
        await killAllSandboxes(cairnd);
      }
    } finally {
      await cairnd?.destroy();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }
  });

  describe("help", () => {
    for (const args of [["deploy"], ["run"], ["deployments", "list"], ["deployments", "logs"], ["deployments", "delete"]]) {
      it(`cairn ${args.join(" ")} --help has an example and says what --project means`, async () => {
        const r = await cairn([...args, "--help"]);
        ok(r);
        assert.match(r.out, new RegExp(`Usage: cairn ${args.join(" ")}`));
        assert.match(r.out, new RegExp(`\\$ .*cairn ${args.join(" ")} `));
        assert.match(r.out, /--project names the deployed app/);
      });
    }

    it("cairn deployments --help lists its verbs", async () => {
      const r = await cairn(["deployments", "--help"]);
      ok(r);
      for (const verb of ["list", "logs", "delete"]) assert.match(r.out, new RegExp(`^ {2}${verb}\\b`, "m"));
    });
  });

  describe("deploy twice: the filesystem survives the redeploy", () => {
    it("deploy prints the URL; the router serves deploy #1", async () => {
      const r = await cairn(["deploy", appDir, "--project", "shop"]);
      ok(r);
      assert.equal(r.out, `http://shop.localhost:${port()}/\n`, "the URL alone when piped");
      assert.equal(r.stderr, "", "no progress when stderr is not a terminal");
      const res = await get("shop.localhost");
      assert.equal(res.status, 200);
      assert.equal(res.body, "deploy #1");
    });

    it("a second deploy serves deploy #2: the counter in $CAIRN_LOCAL_FS was kept", async () => {
      const r = await cairn(["deploy", appDir, "--project", "shop", "--json"]);
      ok(r);
      const d = json<DeploymentJson>(r);
      assert.equal(d.version, 2);
      assert.equal(d.state, "running");
      assert.equal(d.command, "python3 main.py");
      assert.equal((await get("shop.localhost")).body, "deploy #2");
    });

    it("run main.py from inside the app's directory deploys it with python3 main.py", async () => {
      const r = await cairn(["run", "main.py", "--project", "shop"], { cwd: appDir });
      ok(r);
      assert.equal(r.out, `http://shop.localhost:${port()}/\n`);
      assert.equal((await get("shop.localhost")).body, "deploy #3");
    });

    it("deployments list --project shows every version, newest first", async () => {
      const r = await cairn(["deployments", "list", "--project", "shop"]);
      ok(r);
      const items = json<DeploymentJson[]>(r);
      assert.deepEqual(items.map((d) => [d.app, d.env, d.version, d.state]), [
        ["shop", "production", 3, "running"],
        ["shop", "production", 2, "superseded"],
        ["shop", "production", 1, "superseded"],
      ]);
      assert.equal(items[0]!.command, "python3 main.py");
    });

    it("deployments logs prints the serving version's output", async () => {
      const r = await cairn(["deployments", "logs", "shop"]);
      ok(r);
      assert.match(r.out, /starting deploy #3/);
      const byOption = await cairn(["deployments", "logs", "--project", "shop", "--json"]);
      ok(byOption);
      const logs = json<{ deployment: DeploymentJson; stdout: string }>(byOption);
      assert.equal(logs.deployment.version, 3);
      assert.match(logs.stdout, /starting deploy #3/);
    });

    it("--env beta is another URL with its own filesystem; delete --env stops only it", async () => {
      const r = await cairn(["deploy", appDir, "--project", "shop", "--env", "beta"]);
      ok(r);
      assert.equal(r.out, `http://shop.beta.localhost:${port()}/\n`);
      assert.equal((await get("shop.beta.localhost")).body, "deploy #1");
      assert.deepEqual(json<DeploymentJson[]>(await cairn(["deployments", "list", "--project", "shop", "--env", "beta"])).map((d) => d.env), ["beta"]);
      const d = await cairn(["deployments", "delete", "shop", "--env", "beta"]);
      ok(d);
      assert.equal(d.out, "", "quiet when piped");
      assert.equal((await get("shop.beta.localhost")).status, 404);
      assert.equal((await get("shop.localhost")).body, "deploy #3", "production keeps serving");
    });
  });

  describe("failures", () => {
    it("a version that does not start is exit 2 (DEPLOY_FAILED); the old one keeps serving; logs say why", async () => {
      const broken = join(scratch, "broken");
      await mkdir(broken);
      await writeFile(join(broken, "main.py"), "import sys\nprint('about to fail', flush=True)\nraise SystemExit('boom')\n");
      const r = await cairn(["deploy", broken, "--project", "shop"]);
      const p = fails(r, 2, "DEPLOY_FAILED");
      assert.match(p.detail, /boom/);
      assert.match(p.hint ?? "", /cairn deployments logs/);
      assert.equal((await get("shop.localhost")).body, "deploy #3");
      const logs = await cairn(["deployments", "logs", "shop", "--json"]);
      ok(logs);
      const failed = json<{ deployment: DeploymentJson; stderr: string }>(logs);
      assert.equal(failed.deployment.state, "failed");
      assert.match(failed.stderr, /boom/);
      // The version that still serves has its logs too.
      const serving = await cairn(["deployments", "logs", "shop", "--serving", "--json"]);
      ok(serving);
      const s = json<{ deployment: DeploymentJson; stdout: string }>(serving);
      assert.equal(s.deployment.state, "running");
      assert.equal(s.deployment.version, failed.deployment.version - 1);
      assert.match(s.stdout, /starting deploy #3/);
    });

    it("deployments logs --follow prints what the app writes later, and ends when its version stops", async () => {
      const tickerDir = join(scratch, "ticker");
      await mkdir(tickerDir, { recursive: true });
      await writeFile(join(tickerDir, "main.py"), TICKER_PY);
      ok(await cairn(["deploy", tickerDir, "--project", "ticker"]));
      const child = spawn(process.execPath, [CLI, "deployments", "logs", "ticker", "--follow"], {
        env: { ...process.env, CAIRN_URL: cairnd.url, CAIRN_API_KEY: cairnd.adminKey },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => child.on("close", r));
      try {
        const waitFor = async (re: RegExp) => {
          for (let i = 0; i < 600 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 100));
          assert.match(out, re);
        };
        await waitFor(/tick 1\n/);
        await waitFor(/tick 4\n/); // written after the first answer: only following shows it
        assert.equal(out.match(/tick 1\n/g)?.length, 1, "nothing printed twice");
        ok(await cairn(["deployments", "delete", "ticker"]));
        const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running"), 60_000))]);
        assert.equal(code, 0, "follow ends with the version it follows");
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
    });

    it("serves an app to a client that does not resolve *.localhost: the Host header on cairnd's own address", async () => {
      const res = await getVia(cairnd.url.replace("localhost", "127.0.0.1"), `shop.localhost:${port()}`);
      assert.equal(res.status, 200);
      assert.match(res.body, /deploy #\d+/);
    });

    it("usage errors: no app, no directory, --project twice, a file run cannot start", async () => {
      fails(await cairn(["deploy", appDir]), 2, "USAGE");
      fails(await cairn(["deploy", join(scratch, "no-such-dir"), "--project", "shop"]), 2, "USAGE");
      const twice = fails(await cairn(["--project", "default", "deploy", appDir, "--project", "shop"]), 2, "USAGE");
      assert.match(twice.detail, /--project is given twice/);
      fails(await cairn(["run", "main.rb", "--project", "shop"], { cwd: appDir }), 2, "USAGE");
      fails(await cairn(["run", "missing.py", "--project", "shop"], { cwd: appDir }), 2, "USAGE");
      fails(await cairn(["run", "../app/main.py", "--project", "shop"], { cwd: appDir }), 2, "USAGE");
      fails(await cairn(["deployments", "logs"]), 2, "USAGE");
      fails(await cairn(["deployments", "logs", "shop", "--project", "blog"]), 2, "USAGE");
      fails(await cairn(["deploy", appDir, "--project", "Not_An_App"]), 2, "INVALID_REQUEST");
      fails(await cairn(["deployments", "logs", "nothing-here"]), 3, "DEPLOYMENT_NOT_FOUND");
    });
  });

  describe("a node app via run, stopped with its filesystem deleted", () => {
    it("run server.js uses node; delete --delete-filesystem removes the app's volume", async () => {
      const nodeDir = join(scratch, "nodeapp");
      await mkdir(nodeDir);
      await writeFile(join(nodeDir, "server.js"), SERVER_JS);
      const r = await cairn(["run", "server.js", "--project", "nodeapp"], { cwd: nodeDir });
      ok(r);
      assert.equal((await get("nodeapp.localhost")).body, "node ok");
      const [d] = json<DeploymentJson[]>(await cairn(["deployments", "list", "--project", "nodeapp"]));
      assert.equal(d!.command, "node server.js");
      ok(await cairn(["volume", "get", "local-fs-nodeapp-production"]));

      const del = await cairn(["deployments", "delete", "nodeapp", "--delete-filesystem", "--json"]);
      ok(del);
      assert.equal(json<{ deployments: number }>(del).deployments, 1);
      assert.equal((await get("nodeapp.localhost")).status, 404);
      fails(await cairn(["volume", "get", "local-fs-nodeapp-production"]), 3, "VOLUME_NOT_FOUND");
    });
  });
});
