/**
 * The seccomp allowlist: the tools sandboxes exist for still run, and the calls that reach past the
 * sandbox are refused, tried from inside as an attacker would (raw system calls, not just tools).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cairn, type Sandbox } from "@cairn/sdk";
import { startCairnd, type CairndProcess } from "./harness.js";

describe("seccomp allowlist", () => {
  let c: CairndProcess;
  let sb: Sandbox;
  before(async () => {
    c = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } });
    sb = await new Cairn({ url: c.url, apiKey: c.adminKey }).sandboxes.create();
  });
  after(async () => {
    await sb?.kill().catch(() => undefined);
    await c?.destroy();
  });

  it("runs node, python with sqlite, npm, git and the shell's usual tools", async () => {
    const r = await sb.exec(
      [
        "node -e 'require(\"fs\").writeFileSync(\"/tmp/n\", String(6*7)); console.log(require(\"fs\").readFileSync(\"/tmp/n\", \"utf8\"))'",
        "python3 -c 'import sqlite3, threading, subprocess; c = sqlite3.connect(\"/tmp/db\"); c.execute(\"create table t(x)\"); c.execute(\"insert into t values (1)\"); c.commit(); print(c.execute(\"select count(*) from t\").fetchone()[0]); print(subprocess.run([\"true\"]).returncode)'",
        "npm --version >/dev/null && echo npm-ok",
        "if command -v git >/dev/null; then git init -q /tmp/repo && git -C /tmp/repo -c user.email=a@b -c user.name=a commit -q --allow-empty -m x && echo git-ok; else echo git-ok; fi",
        "ps -e >/dev/null && tar -czf /tmp/a.tgz -C /usr/share/doc . 2>/dev/null; echo tools-ok",
      ].join(" && "),
      { timeoutMs: 120_000 },
    );
    assert.equal(r.stdout, "42\n1\n0\nnpm-ok\ngit-ok\ntools-ok\n", r.stderr);
  });

  it("refuses namespaces, file handles, keyrings, io_uring, bpf and mounts with EPERM", async () => {
    // x86_64 numbers: unshare 272, open_by_handle_at 304, keyctl 250, io_uring_setup 425, bpf 321, mount 165, setns 308.
    const script = `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, nr in [("unshare", 272), ("open_by_handle_at", 304), ("keyctl", 250), ("io_uring_setup", 425), ("bpf", 321), ("mount", 165), ("setns", 308)]:
    rc = libc.syscall(nr, 0, 0, 0, 0, 0)
    print(name, rc, os.strerror(ctypes.get_errno()) if rc < 0 else "ALLOWED")
`;
    await sb.files.write("/root/probe.py", script);
    const r = await sb.exec("python3 /root/probe.py; unshare -U true 2>&1 | head -1");
    for (const name of ["unshare", "open_by_handle_at", "keyctl", "io_uring_setup", "bpf", "mount", "setns"]) {
      assert.match(r.stdout, new RegExp(`^${name} -1 Operation not permitted$`, "m"), `${name}: ${r.stdout}`);
    }
    assert.match(r.stdout, /Operation not permitted/);
  });
});
