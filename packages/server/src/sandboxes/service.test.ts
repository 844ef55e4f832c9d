/**
 * The sandbox service's logic on fakes (directory volumes, fake driver), through the HTTP API:
 * claims and access modes, attach/detach, hibernate/resume, fork, background processes, kill.
 * The root suites in test/ run the same kinds of flows on real containers and loop devices.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Attachment, Sandbox } from "@cairn/protocol";
import { useFakeCairnd, codeOf } from "../testing/node-test.js";

const raw = { "content-type": "application/octet-stream" };

describe("sandbox service (fakes)", () => {
  const cairnd = useFakeCairnd();
  const json = async <T>(o: Parameters<ReturnType<typeof cairnd>["request"]>[0]): Promise<T> => {
    const r = await cairnd().request(o);
    assert.ok(r.statusCode < 300, `${o.method} ${o.url}: ${r.statusCode} ${r.body}`);
    return JSON.parse(r.body) as T;
  };
  const volume = (name: string, extra: object = {}) => json<{ id: string }>({ method: "POST", url: "/v1/volumes", payload: { name, ...extra } });
  const sandbox = (payload: object = {}) => json<Sandbox>({ method: "POST", url: "/v1/sandboxes", payload });
  const exec = async (id: string, command: string, extra: object = {}) => {
    const r = await cairnd().request({ method: "POST", url: `/v1/sandboxes/${id}/exec`, payload: { command, ...extra } });
    assert.equal(r.statusCode, 200, r.body);
    const events = r.body.trim().split("\n").map((l) => JSON.parse(l) as { type: string; data?: string; exitCode?: number });
    return {
      stdout: events.filter((e) => e.type === "stdout").map((e) => e.data).join(""),
      stderr: events.filter((e) => e.type === "stderr").map((e) => e.data).join(""),
      exitCode: events.at(-1)?.exitCode,
    };
  };

  it("mounts a volume by the { path: name } shorthand, creating it, and runs a command that reads it", async () => {
    const sb = await sandbox({ volumes: { "/workspace": "auto-made" } });
    assert.equal(sb.state, "running");
    assert.equal(sb.attachments[0]?.volumeName, "auto-made");
    await json({ method: "PUT", url: "/v1/volumes/auto-made/files/content?path=/hello.txt", payload: "persistent\n", headers: raw });
    const r = await exec(sb.id, "cat /workspace/hello.txt");
    assert.equal(r.stdout, "persistent\n");
    assert.equal(r.exitCode, 0);
  });

  it("passes the exit status of a command and its environment", async () => {
    const sb = await sandbox({ env: { GREETING: "from create" } });
    assert.equal((await exec(sb.id, "exit 3")).exitCode, 3);
    assert.equal((await exec(sb.id, "printenv GREETING")).stdout, "from create\n");
    assert.equal((await exec(sb.id, "printenv GREETING", { env: { GREETING: "from exec" } })).stdout, "from exec\n");
  });

  it("refuses a second read-write claim of a ReadWriteOnce volume, and frees it when the holder is killed", async () => {
    await volume("rwo");
    const first = await sandbox({ volumes: [{ volume: "rwo", mountPath: "/w" }] });
    const second = await cairnd().request({ method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: "rwo", mountPath: "/w" }] } });
    assert.equal(codeOf(second), "VOLUME_ALREADY_ATTACHED");
    await json({ method: "DELETE", url: `/v1/sandboxes/${first.id}` });
    const third = await sandbox({ volumes: [{ volume: "rwo", mountPath: "/w" }] });
    assert.equal(third.state, "running");
  });

  it("lets many sandboxes mount a ReadOnlyMany volume, and the driver gets it read-only", async () => {
    await volume("shared-ro", { accessMode: "ReadOnlyMany" });
    const a = await sandbox({ volumes: [{ volume: "shared-ro", mountPath: "/ro", mode: "ro" }] });
    const b = await sandbox({ volumes: [{ volume: "shared-ro", mountPath: "/ro", mode: "ro" }] });
    for (const id of [a.id, b.id]) assert.deepEqual(cairnd().driver.mounts(id).map((m) => [m.destination, m.readonly]), [["/ro", true]]);
  });

  it("hot-plugs a volume into a running sandbox and detaches it by path", async () => {
    await volume("hot");
    await json({ method: "PUT", url: "/v1/volumes/hot/files/content?path=/plugged.txt", payload: "plugged\n", headers: raw });
    const sb = await sandbox();
    const att = await json<Attachment>({ method: "POST", url: `/v1/sandboxes/${sb.id}/attachments`, payload: { volume: "hot", mountPath: "/hot", mode: "ro" } });
    assert.equal(att.state, "mounted");
    assert.equal((await exec(sb.id, "cat /hot/plugged.txt")).stdout, "plugged\n");
    const detached = await json<Attachment>({ method: "POST", url: `/v1/sandboxes/${sb.id}/detach`, payload: { mountPath: "/hot" } });
    assert.equal(detached.state, "released");
    assert.equal(cairnd().driver.mounts(sb.id).length, 0);
    assert.equal(codeOf(await cairnd().request({ method: "POST", url: `/v1/sandboxes/${sb.id}/detach`, payload: { mountPath: "/hot" } })), "ATTACHMENT_NOT_FOUND");
  });

  it("mounts a subpath of a volume, created when missing", async () => {
    await volume("with-sub");
    const sb = await sandbox({ volumes: [{ volume: "with-sub", mountPath: "/proj", subpath: "/projects/one" }] });
    const [m] = cairnd().driver.mounts(sb.id);
    assert.ok(m && m.source.endsWith("/projects/one"), m?.source);
    const listed = await json<{ items: { name: string }[] }>({ method: "GET", url: "/v1/volumes/with-sub/files/list?path=/projects" });
    assert.deepEqual(listed.items.map((i) => i.name), ["one"]);
  });

  it("refuses a subpath that climbs out of the volume", async () => {
    await volume("sub-escape");
    const r = await cairnd().request({ method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: "sub-escape", mountPath: "/p", subpath: "/../../etc" }] } });
    assert.ok(["INVALID_PATH", "INVALID_MOUNT"].includes(codeOf(r)), r.body);
  });

  it("refuses more volumes than a sandbox may have", async () => {
    const volumes = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`/v${i}`, `many-${i}`]));
    const r = await cairnd().request({ method: "POST", url: "/v1/sandboxes", payload: { volumes } });
    assert.equal(codeOf(r), "TOO_MANY_VOLUMES");
  });

  it("hibernates (driver stopped, claims kept) and resumes with the same mounts", async () => {
    await volume("hib");
    const sb = await sandbox({ volumes: [{ volume: "hib", mountPath: "/h" }] });
    const hib = await json<Sandbox>({ method: "POST", url: `/v1/sandboxes/${sb.id}/hibernate` });
    assert.equal(hib.state, "hibernated");
    assert.equal(await cairnd().driver.isRunning(sb.id), false);
    assert.equal(codeOf(await cairnd().request({ method: "POST", url: `/v1/sandboxes/${sb.id}/exec`, payload: { command: "true" } })), "SANDBOX_NOT_RUNNING");
    const other = await cairnd().request({ method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: "hib", mountPath: "/h" }] } });
    assert.equal(codeOf(other), "VOLUME_ALREADY_ATTACHED", "a hibernated sandbox keeps its claim");
    const resumed = await json<Sandbox>({ method: "POST", url: `/v1/sandboxes/${sb.id}/resume` });
    assert.equal(resumed.state, "running");
    assert.deepEqual(cairnd().driver.mounts(sb.id).map((m) => m.destination), ["/h"]);
  });

  it("forks a sandbox: its files copied, its read-write volume forked and labelled, deleted with the fork", async () => {
    const src = await volume("fork-src");
    await json({ method: "PUT", url: "/v1/volumes/fork-src/files/content?path=/f.txt", payload: "origin\n", headers: raw });
    const sb = await sandbox({ volumes: [{ volume: "fork-src", mountPath: "/src" }] });
    const fork = await json<Sandbox>({ method: "POST", url: `/v1/sandboxes/${sb.id}/fork` });
    assert.equal(fork.state, "running");
    const forkVolume = fork.attachments[0]!;
    assert.notEqual(forkVolume.volumeName, "fork-src");
    assert.equal((await exec(fork.id, "cat /src/f.txt")).stdout, "origin\n");
    const v = await json<{ labels: Record<string, string> }>({ method: "GET", url: `/v1/volumes/${forkVolume.volume}` });
    assert.equal(v.labels["cairn.dev/fork-of"], src.id);
    await json({ method: "DELETE", url: `/v1/sandboxes/${fork.id}` });
    assert.equal(codeOf(await cairnd().request({ method: "GET", url: `/v1/volumes/${forkVolume.volume}` })), "VOLUME_NOT_FOUND");
    assert.equal((await json<{ id: string }>({ method: "GET", url: "/v1/volumes/fork-src" })).id.length > 0, true);
  });

  it("runs a background process: returns at once, its output and exit code readable later", async () => {
    const sb = await sandbox();
    const p = await json<{ id: string; state: string }>({ method: "POST", url: `/v1/sandboxes/${sb.id}/exec`, payload: { command: "echo started && sleep 0.2 && echo done", background: true } });
    assert.equal(p.state, "running");
    const done = await json<{ state: string; exitCode: number; stdout: string }>({ method: "GET", url: `/v1/sandboxes/${sb.id}/processes/${p.id}?wait=true&logs=true` });
    assert.equal(done.state, "exited");
    assert.equal(done.exitCode, 0);
    assert.equal(done.stdout, "started\ndone\n");
  });

  it("writes and reads a sandbox's own files through the API", async () => {
    const sb = await sandbox();
    const w = await cairnd().request({ method: "PUT", url: `/v1/sandboxes/${sb.id}/files/content?path=/root/notes.txt`, payload: "in the sandbox\n", headers: raw });
    assert.ok(w.statusCode < 300, w.body);
    const r = await cairnd().request({ method: "GET", url: `/v1/sandboxes/${sb.id}/files/content?path=/root/notes.txt` });
    assert.equal(r.body, "in the sandbox\n");
    assert.equal(codeOf(await cairnd().request({ method: "GET", url: `/v1/sandboxes/${sb.id}/files/content?path=/root/none.txt` })), "PATH_NOT_FOUND");
  });

  it("kills a sandbox: stopped, its claims released, its exec refused", async () => {
    await volume("killed-claim");
    const sb = await sandbox({ volumes: [{ volume: "killed-claim", mountPath: "/k" }] });
    const killed = await json<Sandbox>({ method: "DELETE", url: `/v1/sandboxes/${sb.id}` });
    assert.equal(killed.state, "stopped");
    assert.ok(killed.attachments.every((a) => a.state === "released"));
    assert.equal(await cairnd().driver.isRunning(sb.id), false);
    assert.equal(codeOf(await cairnd().request({ method: "POST", url: `/v1/sandboxes/${sb.id}/exec`, payload: { command: "true" } })), "SANDBOX_NOT_RUNNING");
  });

  it("filters the list by state", async () => {
    const running = await sandbox();
    const stopped = await sandbox();
    await json({ method: "DELETE", url: `/v1/sandboxes/${stopped.id}` });
    const list = await json<{ items: Sandbox[] }>({ method: "GET", url: "/v1/sandboxes?state=running" });
    assert.ok(list.items.some((s) => s.id === running.id));
    assert.ok(list.items.every((s) => s.state === "running"));
    const gone = await json<{ items: Sandbox[] }>({ method: "GET", url: "/v1/sandboxes?state=stopped" });
    assert.ok(gone.items.some((s) => s.id === stopped.id));
  });

  it("says which region a volume is in when a sandbox asks for another", async () => {
    const r = await cairnd().request({ method: "POST", url: "/v1/sandboxes", payload: { region: "iad" } });
    assert.equal(codeOf(r), "REGION_MISMATCH");
  });
});
