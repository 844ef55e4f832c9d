/**
 * Watch (SSE) against a real cairnd: events for changes through the API, by processes that have
 * the volume mounted (as sandboxes do), and from inside a real sandbox; a reconnecting client with
 * its last cursor misses nothing; an unknown cursor gets a reset; shutdown ends open watches.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cairn, type Volume } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { auth, cairndMounts, shellOnMount, sleep } from "./files-helpers.js";

type Ev = { type: string; path?: string; oldPath?: string; isDir?: boolean; cursor: string };

/** Collect a watch's messages in the background. */
function collect(v: Volume, path: string, options: { cursor?: string } = {}) {
  const ac = new AbortController();
  const got: Ev[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const done = (async () => {
    for await (const m of v.files.watch(path, { signal: ac.signal, ...options })) {
      got.push(m as Ev);
      if (m.type === "ready") ready();
    }
  })().catch(() => undefined);
  return {
    got,
    ready: isReady,
    events: () => got.filter((m) => m.type !== "ready"),
    /** Wait until `pred` holds for the collected events (or time out with what was seen). */
    async until(pred: (evs: Ev[]) => boolean, ms = 10_000): Promise<Ev[]> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (pred(this.events())) return this.events();
        await sleep(25);
      }
      assert.fail(`timed out; events so far: ${JSON.stringify(this.events().map((e) => [e.type, e.path, e.oldPath]))}`);
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
}

const summary = (evs: Ev[]) => evs.map((e) => (e.type === "rename" ? `rename ${e.oldPath} -> ${e.path}` : `${e.type} ${e.path}${e.isDir ? "/" : ""}`));
const has = (evs: Ev[], ...lines: string[]) => lines.every((l) => summary(evs).includes(l));

describe("watch (SSE)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;

  const server = withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "watched" });
  });

  it("reports changes made through the API, under the watched path only", async () => {
    const all = collect(v, "/");
    const inbox = collect(v, "/inbox");
    await Promise.all([all.ready, inbox.ready]);
    await v.files.write("/inbox/a.txt", "1");
    await v.files.write("/inbox/a.txt", "2");
    await v.files.write("/elsewhere.txt", "x");
    await v.files.move("/inbox/a.txt", "/inbox/b.txt");
    await v.files.mkdir("/inbox/sub");
    await v.files.writeMany([{ path: "/inbox/sub/c.txt", content: "c" }]);
    await v.files.edit("/inbox/sub/c.txt", "c", "C");
    await v.files.remove("/inbox/b.txt");
    await v.files.remove("/inbox/sub", { recursive: true });
    const expected = [
      "create /inbox/",
      "create /inbox/a.txt",
      "modify /inbox/a.txt",
      "rename /inbox/a.txt -> /inbox/b.txt",
      "create /inbox/sub/",
      "create /inbox/sub/c.txt",
      "modify /inbox/sub/c.txt",
      "delete /inbox/b.txt",
      "delete /inbox/sub/",
    ];
    const evs = await inbox.until((e) => has(e, ...expected));
    assert.deepEqual(summary(evs), expected, "exactly these, in order, for /inbox");
    const everything = await all.until((e) => has(e, ...expected, "create /elsewhere.txt"));
    assert.ok(!summary(evs).includes("create /elsewhere.txt"));
    // Cursors increase.
    const seqs = everything.map((e) => Number(e.cursor.split(".")[1]));
    assert.deepEqual([...seqs].sort((a, b) => a - b), seqs);
    await Promise.all([all.stop(), inbox.stop()]);
  });

  it("reports changes made by other processes on the mounted volume, as sandboxes make them", async () => {
    const w = collect(v, "/");
    await w.ready;
    await shellOnMount(c, v.id, "mkdir -p $M/ext/a/b");
    // inotify watches a new directory only once it has seen it: what happens inside in the same
    // instant is reported by a scan as its final state (files-watch.ts). Under load that instant
    // grows, so the files come after the directories are reported.
    await w.until((e) => has(e, "create /ext/", "create /ext/a/", "create /ext/a/b/"));
    await shellOnMount(c, v.id, "echo hi > $M/ext/a/b/f.txt && mv $M/ext/a/b/f.txt $M/ext/g.txt && echo more >> $M/ext/g.txt && rm $M/ext/g.txt");
    await w.until((e) => has(e, "create /ext/a/b/f.txt", "rename /ext/a/b/f.txt -> /ext/g.txt", "modify /ext/g.txt", "delete /ext/g.txt"));
    await w.stop();
  });

  it("reports changes made inside a real sandbox", async () => {
    // The directory exists first: inotify learns of a new directory only after it is made, so what
    // happens in it in the same instant is reported by a scan as its final state (see files-watch.ts).
    await v.files.mkdir("/from-sandbox");
    const w = collect(v, "/from-sandbox");
    await w.ready;
    const sb = await cairn.sandboxes.create({ volumes: [v.mount("/data")] });
    try {
      const r = await sb.exec("echo hello > /data/from-sandbox/out.txt && mv /data/from-sandbox/out.txt /data/from-sandbox/done.txt");
      assert.equal(r.exitCode, 0, r.stderr);
      await w.until((e) => has(e, "create /from-sandbox/out.txt", "rename /from-sandbox/out.txt -> /from-sandbox/done.txt"));
    } finally {
      await sb.kill();
      await w.stop();
    }
  });

  it("a client that reconnects with its cursor gets exactly what it missed", async () => {
    const first = collect(v, "/resume");
    await first.ready;
    await v.files.write("/resume/1.txt", "1");
    const seen = await first.until((e) => has(e, "create /resume/1.txt"));
    const cursor = seen.at(-1)!.cursor;
    await first.stop();
    // While nobody listens (the watcher lingers), changes happen.
    await v.files.write("/resume/2.txt", "2");
    await v.files.remove("/resume/1.txt");
    const second = collect(v, "/resume", { cursor });
    await second.ready;
    await v.files.write("/resume/3.txt", "3");
    const evs = await second.until((e) => has(e, "create /resume/3.txt"));
    assert.deepEqual(summary(evs), ["create /resume/2.txt", "delete /resume/1.txt", "create /resume/3.txt"]);
    await second.stop();
    // A cursor this watcher never gave out: a reset, so the client knows to list again.
    const stranger = collect(v, "/", { cursor: "deadbeef.42" });
    await stranger.ready;
    const reset = await stranger.until((e) => e.some((x) => x.type === "reset"));
    assert.equal(reset[0]?.type, "reset", "the reset comes before any event");
    await stranger.stop();
  });

  it("speaks plain SSE: event-stream, ready first, ids, Last-Event-ID", async () => {
    const ac = new AbortController();
    const res = await fetch(`${c.url}/v1/volumes/${v.id}/files/watch?path=/sse`, { headers: auth(c), signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (re: RegExp) => {
      while (!re.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(/event: ready\ndata: .*\n\n/);
    assert.match(text, /^retry: \d+\nid: [0-9a-f]+\.\d+\nevent: ready\n/);
    await v.files.write("/sse/x.txt", "x");
    await readUntil(/"path":"\/sse\/x\.txt"/);
    assert.match(text, /id: [0-9a-f]+\.\d+\ndata: \{"type":"create","path":"\/sse\/x\.txt","isDir":false,"at":"[^"]+"\}\n\n/);
    ac.abort();
    // Errors before the stream starts are problem+json as usual.
    const missing = await fetch(`${c.url}/v1/volumes/nope/files/watch`, { headers: auth(c) });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, "VOLUME_NOT_FOUND");
  });

  it("holds the volume mounted while watched, and a graceful stop ends open watches", async () => {
    const w = collect(v, "/");
    await w.ready;
    assert.ok((await cairndMounts(c)).includes(v.id), "mounted while watched");
    const started = Date.now();
    const code = await c.stop();
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 15_000, "an open watch does not hold up shutdown");
    await w.stop();
    await server.restart();
  });
});

