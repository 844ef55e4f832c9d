/**
 * `cairn sandbox …`: the built binary against a real cairnd running real crun sandboxes with real
 * volumes. Needs root. Every sandbox still alive is killed in `after`, whatever the tests did.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";
import { cli, fails, haveScript, json, killAllSandboxes, ok } from "./helpers.js";

const VERBS = ["create", "exec", "logs", "list", "get", "attach", "detach", "attachments", "hibernate", "resume", "fork", "kill"];

interface AttachmentJson {
  volume: string;
  volumeName: string;
  mountPath: string;
  mode: string;
  subpath: string;
  checkpoint: string | null;
  state: string;
}
interface SandboxJson {
  id: string;
  state: string;
  template: string;
  env: Record<string, string>;
  cwd: string;
  memoryMb: number;
  pids: number;
  timeoutMs: number | null;
  attachments: AttachmentJson[];
}

describe("cairn sandbox", () => {
  let cairnd: CairndProcess;
  const { cairn, tty } = cli(() => cairnd);

  /** `cairn sandbox create …` → the id it printed (alone, as stdout is a pipe). */
  async function create(...args: string[]): Promise<string> {
    const r = await cairn(["sandbox", "create", ...args]);
    ok(r);
    assert.match(r.out, /^sbx_\S+\n$/, "the id alone on stdout when piped");
    return r.out.trim();
  }
  const attachments = async (id: string) => json<AttachmentJson[]>(await cairn(["sandbox", "attachments", id]));

  before(async () => {
    cairnd = await startCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "300" } });
    ok(await cairn(["volume", "create", "team-data"]));
    ok(await cairn(["volume", "write", "team-data", "/hello.txt"], { input: "persistent\n" }));
  });
  after(async () => {
    try {
      if (cairnd) await killAllSandboxes(cairnd);
    } finally {
      await cairnd?.destroy();
    }
  });

  describe("help", () => {
    it("cairn sandbox --help lists every verb", async () => {
      const r = await cairn(["sandbox", "--help"]);
      ok(r);
      for (const verb of VERBS) assert.match(r.out, new RegExp(`^ {2}${verb}\\b`, "m"), `sandbox --help lacks ${verb}`);
    });

    for (const verb of VERBS) {
      it(`cairn sandbox ${verb} --help shows usage and an example`, async () => {
        const r = await cairn(["sandbox", verb, "--help"]);
        ok(r);
        assert.match(r.out, new RegExp(`Usage: cairn sandbox ${verb}`));
        assert.match(r.out, new RegExp(`\\$ (\\S+=\\$\\()?cairn sandbox ${verb} `));
      });
    }
  });

  describe("create and exec", () => {
    let id = "";
    before(async () => {
      id = await create("--template", "base", "--volume", "ref=team-data,mount=/workspace/shared", "--env", "GREETING=hello there", "--memory", "256", "--pids", "128", "--timeout", "10m");
    });
    after(async () => void (await cairn(["sandbox", "kill", id])));

    it("--json gives the sandbox with its limits, env and mounted volume", async () => {
      const sb = json<SandboxJson>(await cairn(["sandbox", "get", id]));
      assert.equal(sb.state, "running");
      assert.equal(sb.template, "base");
      assert.deepEqual(sb.env, { GREETING: "hello there" });
      assert.equal(sb.memoryMb, 256);
      assert.equal(sb.pids, 128);
      assert.equal(sb.timeoutMs, 600_000);
      assert.deepEqual(sb.attachments.map((a) => [a.volumeName, a.mountPath, a.mode, a.state]), [["team-data", "/workspace/shared", "rw", "mounted"]]);
    });

    it("exec prints what the volume holds and exits 0", async () => {
      const r = await cairn(["sandbox", "exec", id, "--", "cat", "/workspace/shared/hello.txt"]);
      ok(r);
      assert.equal(r.out, "persistent\n");
      assert.equal(r.stderr, "");
    });

    it("exec exits with the command's exit code, stdout and stderr kept apart", async () => {
      const r = await cairn(["sandbox", "exec", id, "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
      assert.equal(r.code, 7, r.stderr);
      assert.equal(r.out, "out\n");
      assert.equal(r.stderr, "err\n");
      assert.equal((await cairn(["sandbox", "exec", id, "--", "false"])).code, 1);
    });

    it("exec --background returns the process id at once; logs shows its output, --wait its end and status", async () => {
      const r = await cairn(["sandbox", "exec", id, "--background", "--", "sh", "-c", "echo started; exec sleep 600"]);
      ok(r);
      const pid = r.out.trim();
      assert.match(pid, /^\S+$/);
      // It returned while the command still runs (for ten minutes).
      let logs = await cairn(["sandbox", "logs", id, pid, "--json"]);
      for (let i = 0; i < 100 && !json<{ stdout: string }>(logs).stdout; i++) logs = await cairn(["sandbox", "logs", id, pid, "--json"]);
      assert.deepEqual(json<{ state: string; stdout: string }>(logs).state, "running");
      assert.equal(json<{ stdout: string }>(logs).stdout, "started\n");
      const quick = (await cairn(["sandbox", "exec", id, "--background", "--", "sh", "-c", "echo out; echo err >&2; exit 4"])).out.trim();
      const done = await cairn(["sandbox", "logs", id, quick, "--wait"]);
      assert.equal(done.code, 4);
      assert.equal(done.out, "out\n");
      assert.equal(done.stderr, "err\n");
    });

    it("exec quotes each word: spaces, quotes and $ reach the command unchanged", async () => {
      const r = await cairn(["sandbox", "exec", id, "--", "printf", "%s|", "a b", "it's", "$GREETING", "*", ""]);
      ok(r);
      assert.equal(r.out, "a b|it's|$GREETING|*||");
    });

    it("exec --cwd and --env; the sandbox's env is there too", async () => {
      const r = await cairn(["sandbox", "exec", id, "--cwd", "/workspace/shared", "--env", "EXTRA=1", "--", "sh", "-c", 'pwd; echo "$GREETING/$EXTRA"; cat hello.txt']);
      ok(r);
      assert.equal(r.out, "/workspace/shared\nhello there/1\npersistent\n");
    });

    it("exec streams output as it comes, not at the end", async () => {
      let firstAt = 0;
      const started = Date.now();
      const r = await cairn(["sandbox", "exec", id, "--", "sh", "-c", "echo first; sleep 2; echo second"], {
        onStdout: () => (firstAt ||= Date.now()),
      });
      const ended = Date.now();
      ok(r);
      assert.equal(r.out, "first\nsecond\n");
      assert.ok(firstAt > 0 && ended - firstAt >= 1500, `first line ${firstAt - started} ms after start, exit ${ended - started} ms`);
    });

    it("exec --timeout kills a command that runs too long (exit 137)", async () => {
      const started = Date.now();
      // `exec`: cairnd's timeout kills the shell it started, and a child of that shell would keep
      // the output open until it ends by itself (see the report on cairnd's exec timeout).
      const r = await cairn(["sandbox", "exec", id, "--timeout", "1s", "--", "exec", "sleep", "30"]);
      assert.equal(r.code, 137, r.stderr);
      assert.ok(Date.now() - started < 27_000, "did not wait for sleep 30");
    });

    it("exec --json collects {stdout, stderr, exitCode} and still exits with the code", async () => {
      const r = await cairn(["sandbox", "exec", id, "--json", "--", "sh", "-c", "echo hi; exit 3"]);
      assert.equal(r.code, 3);
      assert.deepEqual(json(r), { stdout: "hi\n", stderr: "", exitCode: 3 });
    });

    it("writes through the sandbox land in the volume", async () => {
      ok(await cairn(["sandbox", "exec", id, "--", "sh", "-c", "echo from-sandbox > /workspace/shared/new.txt"]));
      const r = await cairn(["volume", "read", "team-data", "/new.txt"]);
      assert.equal(r.out, "from-sandbox\n");
    });

    it("list shows it running; --state filters", async () => {
      const all = json<SandboxJson[]>(await cairn(["sandbox", "list"]));
      assert.ok(all.some((sb) => sb.id === id && sb.state === "running"));
      const stopped = json<SandboxJson[]>(await cairn(["sandbox", "list", "--state", "stopped"]));
      assert.ok(!stopped.some((sb) => sb.id === id));
    });

    it("a second sandbox cannot take the ReadWriteOnce volume: exit 4", async () => {
      const r = await cairn(["sandbox", "create", "--volume", "ref=team-data,mount=/x"]);
      const p = fails(r, 4, "VOLUME_ALREADY_ATTACHED");
      assert.match(p.hint ?? "", /ReadWriteOnce/);
    });
  });

  describe("mount options", () => {
    it("mode=ro refuses writes; subpath shows only that directory; checkpoint= mounts a checkpoint", async () => {
      ok(await cairn(["volume", "create", "ro-data"]));
      ok(await cairn(["volume", "write", "ro-data", "/readme.txt"], { input: "read me" }));
      ok(await cairn(["volume", "create", "proj-tree", "--access-mode", "ReadWriteMany"]));
      ok(await cairn(["volume", "write", "proj-tree", "/projects/p1/a.txt"], { input: "p1" }));
      ok(await cairn(["volume", "write", "proj-tree", "/projects/p2/secret.txt"], { input: "p2" }));
      ok(await cairn(["checkpoint", "create", "proj-tree", "--name", "cp"]));
      ok(await cairn(["volume", "write", "proj-tree", "/projects/p1/a.txt"], { input: "p1 changed" }));
      const id = await create(
        "--volume", "ref=ro-data,mount=/data,mode=ro",
        "--volume", "ref=proj-tree,mount=/proj,subpath=projects/p1",
        "--volume", "ref=proj-tree,mount=/old,checkpoint=cp",
      );
      try {
        const ro = await cairn(["sandbox", "exec", id, "--", "sh", "-c", "cat /data/readme.txt; echo x > /data/new.txt"]);
        assert.notEqual(ro.code, 0);
        assert.equal(ro.out, "read me");
        assert.match(ro.stderr, /Read-only file system/);
        const sub = await cairn(["sandbox", "exec", id, "--", "ls", "-A", "/proj"]);
        assert.equal(sub.out, "a.txt\n", "only projects/p1 is visible");
        const old = await cairn(["sandbox", "exec", id, "--", "cat", "/old/projects/p1/a.txt"]);
        assert.equal(old.out, "p1", "the checkpoint, not the live volume");
        assert.equal((await cairn(["sandbox", "exec", id, "--", "touch", "/old/x"])).code, 1, "a checkpoint is read-only");
        const atts = new Map((await attachments(id)).map((a) => [a.mountPath, a]));
        assert.deepEqual([...atts.keys()].sort(), ["/data", "/old", "/proj"]);
        assert.equal(atts.get("/data")!.mode, "ro");
        assert.equal(atts.get("/proj")!.mode, "rw");
        assert.match(atts.get("/proj")!.subpath, /projects\/p1/);
        assert.equal(atts.get("/old")!.mode, "ro", "a checkpoint mounts read-only");
        assert.match(atts.get("/old")!.checkpoint ?? "", /^cp_/, "the attachment names the checkpoint by id");
      } finally {
        ok(await cairn(["sandbox", "kill", id]));
      }
    });

    it("a malformed --volume is exit 2 with the form to write, and starts nothing", async () => {
      const before = json<SandboxJson[]>(await cairn(["sandbox", "list"])).length;
      const cases: [string, RegExp][] = [
        ["ref=team-data", /mount is missing/],
        ["mount=/data", /ref is missing/],
        ["ref=team-data,mount=/data,readonly", /"readonly" \(not key=value\)/],
        ["ref=team-data,mount=/data,path=/x", /unknown key "path"/],
        ["ref=team-data,mount=/data,mode=rx", /mode is rw or ro/],
        ["ref=team-data,mount=data", /absolute path/],
        ["ref=,mount=/data", /ref= needs a value/],
        ["ref=a,ref=b,mount=/data", /ref is given twice/],
      ];
      for (const [spec, message] of cases) {
        const p = fails(await cairn(["sandbox", "create", "--volume", spec]), 2, "USAGE");
        assert.match(p.detail, message, spec);
        assert.match(p.hint ?? "", /--volume ref=<volume>,mount=/, spec);
      }
      for (const args of [["--env", "1BAD=x"], ["--memory", "lots"], ["--pids", "-1"], ["--timeout", "soon"]]) {
        fails(await cairn(["sandbox", "create", ...args]), 2, "USAGE");
      }
      assert.equal(json<SandboxJson[]>(await cairn(["sandbox", "list"])).length, before);
    });

    it("server-side refusals keep their exit codes", async () => {
      fails(await cairn(["sandbox", "create", "--template", "ubuntu"]), 2, "INVALID_TEMPLATE");
      fails(await cairn(["sandbox", "create", "--volume", "ref=no-such-volume,mount=/x"]), 3, "VOLUME_NOT_FOUND");
      fails(await cairn(["sandbox", "get", "sbx_nope"]), 3, "SANDBOX_NOT_FOUND");
      fails(await cairn(["sandbox", "exec", "sbx_nope", "--", "true"]), 3, "SANDBOX_NOT_FOUND");
    });
  });

  describe("attach and detach", () => {
    it("hot-plugs a volume into a running sandbox, lists the states, detaches by mount path", async () => {
      ok(await cairn(["volume", "create", "cache"]));
      ok(await cairn(["volume", "write", "cache", "/c.txt"], { input: "cached" }));
      const id = await create();
      try {
        ok(await cairn(["sandbox", "exec", id, "--", "sh", "-c", "echo started > /tmp/marker"]));
        const a = await cairn(["sandbox", "attach", id, "--volume", "ref=cache,mount=/cache"]);
        ok(a);
        assert.deepEqual([json<AttachmentJson>(a).mountPath, json<AttachmentJson>(a).state], ["/cache", "mounted"]);
        const r = await cairn(["sandbox", "exec", id, "--", "sh", "-c", "cat /cache/c.txt /tmp/marker"]);
        assert.equal(r.out, "cachedstarted\n", "the sandbox kept running while the volume was plugged in");
        assert.deepEqual((await attachments(id)).map((x) => [x.mountPath, x.state]), [["/cache", "mounted"]]);

        fails(await cairn(["sandbox", "attach", id]), 2, "USAGE");
        fails(await cairn(["sandbox", "detach", id]), 2, "USAGE");
        fails(await cairn(["sandbox", "detach", id, "--mount", "/nothing-here"]), 3, "ATTACHMENT_NOT_FOUND");

        const d = await cairn(["sandbox", "detach", id, "--mount", "/cache"]);
        ok(d);
        assert.equal(json<AttachmentJson>(d).state, "released");
        assert.deepEqual((await attachments(id)).map((x) => [x.mountPath, x.state]), [["/cache", "released"]]);
        assert.equal((await cairn(["sandbox", "exec", id, "--", "sh", "-c", "ls /cache 2>/dev/null | wc -l"])).out.trim(), "0");
      } finally {
        ok(await cairn(["sandbox", "kill", id]));
      }
    });
  });

  describe("hibernate, resume, fork, kill", () => {
    it("keeps the filesystem and the volume across hibernate/resume, copies both into a fork", async () => {
      ok(await cairn(["volume", "create", "hib-vol"]));
      const id = await create("--volume", "ref=hib-vol,mount=/own");
      let fork = "";
      try {
        ok(await cairn(["sandbox", "exec", id, "--", "sh", "-c", "echo kept > /root/state.txt; echo one > /own/data.txt"]));

        const h = await cairn(["sandbox", "hibernate", id]);
        ok(h);
        assert.equal(json<SandboxJson>(h).state, "hibernated");
        assert.deepEqual((await attachments(id)).map((a) => a.state), ["suspended"]);
        const p = fails(await cairn(["sandbox", "exec", id, "--", "true"]), 4, "SANDBOX_NOT_RUNNING");
        assert.match(p.hint ?? "", /cairn sandbox resume/);

        const r = await cairn(["sandbox", "resume", id]);
        ok(r);
        assert.equal(json<SandboxJson>(r).state, "running");
        assert.deepEqual((await attachments(id)).map((a) => a.state), ["mounted"]);
        assert.equal((await cairn(["sandbox", "exec", id, "--", "cat", "/root/state.txt", "/own/data.txt"])).out, "kept\none\n");

        const f = await cairn(["sandbox", "fork", id]);
        ok(f);
        assert.match(f.out, /^sbx_\S+\n$/, "the new id alone when piped");
        fork = f.out.trim();
        assert.notEqual(fork, id);
        assert.equal((await cairn(["sandbox", "exec", fork, "--", "cat", "/root/state.txt", "/own/data.txt"])).out, "kept\none\n");
        ok(await cairn(["sandbox", "exec", fork, "--", "sh", "-c", "echo fork > /own/data.txt"]));
        assert.equal((await cairn(["sandbox", "exec", id, "--", "cat", "/own/data.txt"])).out, "one\n", "a ReadWriteOnce volume is forked, not shared");
      } finally {
        if (fork) await cairn(["sandbox", "kill", fork]);
        const k = await cairn(["sandbox", "kill", id]);
        ok(k);
        assert.equal(k.out, "", "kill is quiet when piped");
      }
      const after = json<SandboxJson>(await cairn(["sandbox", "get", id]));
      assert.equal(after.state, "stopped");
      assert.deepEqual(after.attachments.map((a) => a.state), ["released"]);
      fails(await cairn(["sandbox", "exec", id, "--", "true"]), 4, "SANDBOX_NOT_RUNNING");
      // Released: the volume is free for the next sandbox.
      const next = await create("--volume", "ref=hib-vol,mount=/again");
      assert.equal((await cairn(["sandbox", "exec", next, "--", "cat", "/again/data.txt"])).out, "one\n");
      const k = await cairn(["sandbox", "kill", next, "--json"]);
      ok(k);
      assert.equal(json<SandboxJson>(k).state, "stopped", "--json prints the stopped sandbox");
    });
  });

  describe("on a terminal", { skip: haveScript ? false : "util-linux `script` not installed" }, () => {
    it("create shows the details and the mounts; list is a table; kill confirms", async () => {
      ok(await cairn(["volume", "create", "tty-vol"]));
      const r = await tty(["sandbox", "create", "--volume", "ref=tty-vol,mount=/data,mode=ro", "--timeout", "90s"]);
      assert.equal(r.code, 0, r.out);
      const id = /^ID:\s+(sbx_\S+)$/m.exec(r.out)?.[1];
      assert.ok(id, r.out);
      try {
        assert.match(r.out, /^STATE:\s+running$/m);
        assert.match(r.out, /^TIMEOUT:\s+1m30s$/m);
        assert.match(r.out, /^MOUNT\s+VOLUME\s+MODE\s+SUBPATH\s+CHECKPOINT\s+STATE/m);
        assert.match(r.out, /^\/data\s+tty-vol\s+ro\s+/m);
        const list = await tty(["sandbox", "list", "--state", "running"]);
        assert.match(list.out, /^ID\s+TEMPLATE\s+STATE\s+VOLUMES\s+CREATED$/m);
        assert.match(list.out, new RegExp(`^${id}\\s+base\\s+running\\s+tty-vol:/data \\(ro\\)\\s+just now$`, "m"));
        const exec = await tty(["sandbox", "exec", id, "--", "sh", "-c", "echo on-a-tty; exit 5"]);
        assert.equal(exec.code, 5);
        assert.equal(exec.out, "on-a-tty\n");
      } finally {
        const k = await tty(["sandbox", "kill", id]);
        assert.equal(k.code, 0, k.out);
        assert.equal(k.out, `✓ killed sandbox ${id}\n`);
      }
    });
  });
});
