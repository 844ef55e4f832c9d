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
import { cli, fails, getVia, json, killAllSandboxes, ok } from "./helpers.js";

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
      assert.equal(json<{ deployment: DeploymentJson }>(logs).deployment.state, "failed");
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
