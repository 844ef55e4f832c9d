/** Logic of the SDK above `fetch`: the real server is tested in packages/server/test. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { Cairn, CairnError } from "./index.js";
import { toStream } from "./transport/body.js";
import * as sdk from "./index.js";

function fakeFetch(responses: (() => Response | Promise<Response>)[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const f = (async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = responses.shift();
    if (!next) throw new Error("no more responses");
    return next();
  }) as typeof fetch;
  return { f, calls };
}

const problem = (status: number, code: string, detail: string) =>
  new Response(JSON.stringify({ type: "x", code, title: "t", status, detail, requestId: "req_abc" }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });

describe("SDK", () => {
  it("exports what the docs name", () => {
    for (const name of ["Cairn", "Volume", "Volumes", "VolumeFiles", "CairnError", "ERROR_CODES"]) {
      assert.ok(name in sdk, name);
    }
  });

  it("never serialises or prints the key, from any object", async () => {
    const key = "ck_secret_key_that_must_not_leak";
    const json = (body: unknown) => () => new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
    const volumeInfo = { id: "vol_0123456789abcdefghjk", name: "v", sizeBytes: 1 };
    const sandboxInfo = { id: "sbx_0123456789abcdefghjk", state: "running", attachments: [] };
    const { f, calls } = fakeFetch([json(volumeInfo), json(sandboxInfo)]);
    const cairn = new Cairn({ url: "http://cairn.test", apiKey: key, fetch: f });
    const volume = await cairn.volumes.get("v");
    const sandbox = await cairn.sandboxes.get(sandboxInfo.id);
    assert.equal(new Headers(calls[0]!.init.headers).get("authorization"), `Bearer ${key}`, "the key still goes out on requests");
    const { inspect } = await import("node:util");
    for (const [what, o] of Object.entries({ cairn, volume, sandbox, files: volume.files, checkpoints: volume.checkpoints, sbFiles: sandbox.files })) {
      assert.doesNotMatch(JSON.stringify(o), /secret_key/, `JSON.stringify(${what})`);
      assert.doesNotMatch(inspect(o, { depth: Infinity, showHidden: true }), /secret_key/, `inspect(${what})`);
    }
  });

  it("sends the key and rebuilds errors with their code", async () => {
    const { f, calls } = fakeFetch([() => problem(404, "VOLUME_NOT_FOUND", 'Volume "x" not found')]);
    const cairn = new Cairn({ url: "http://cairn.test/", apiKey: "k1", fetch: f });
    await assert.rejects(cairn.volumes.get("x"), (err: unknown) => {
      assert.ok(err instanceof CairnError);
      assert.equal(err.code, "VOLUME_NOT_FOUND");
      assert.equal(err.status, 404);
      assert.equal(err.requestId, "req_abc");
      return true;
    });
    assert.equal(calls[0]!.url, "http://cairn.test/v1/volumes/x");
    assert.equal((calls[0]!.init.headers as Record<string, string>).authorization, "Bearer k1");
  });

  it("retries idempotent requests on 503 and network errors, never a create or a streamed body", async () => {
    const ok = () => new Response(JSON.stringify({ items: [], nextCursor: null }), { status: 200 });
    const a = fakeFetch([() => problem(503, "UNAVAILABLE", "busy"), () => Promise.reject(new TypeError("fetch failed")), ok]);
    const cairn = new Cairn({ url: "http://cairn.test", apiKey: "k", fetch: a.f });
    await cairn.volumes.list();
    assert.equal(a.calls.length, 3);

    const b = fakeFetch([() => problem(503, "UNAVAILABLE", "busy"), ok]);
    await assert.rejects(new Cairn({ url: "http://cairn.test", fetch: b.f }).volumes.create({ name: "v" }), /busy/);
    assert.equal(b.calls.length, 1, "POST is not retried");

    const c = fakeFetch([() => Promise.reject(new TypeError("fetch failed")), ok]);
    const vol = new sdk.VolumeFiles(new Cairn({ url: "http://cairn.test", fetch: c.f }).http, () => "v");
    await assert.rejects(vol.write("/f", "data"), (err: unknown) => err instanceof CairnError && err.code === "UNAVAILABLE");
    assert.equal(c.calls.length, 1, "a body is never sent twice");
  });

  it("normalises paths before they leave the client and refuses escapes", async () => {
    const { f, calls } = fakeFetch([() => new Response(new Uint8Array([104, 105]), { status: 200 })]);
    const files = new sdk.VolumeFiles(new Cairn({ url: "http://cairn.test", fetch: f }).http, () => "vol_1");
    assert.equal(await files.readText("a//b/./c.txt"), "hi");
    assert.equal(new URL(calls[0]!.url).searchParams.get("path"), "/a/b/c.txt");
    await assert.rejects(files.readText("../../etc/passwd"), (err: unknown) => err instanceof CairnError && err.code === "INVALID_PATH");
  });

  it("passes an AbortSignal through", async () => {
    const { f, calls } = fakeFetch([() => new Response("{}", { status: 200 })]);
    const ac = new AbortController();
    await new Cairn({ url: "http://cairn.test", fetch: f }).volumes.get("v", { signal: ac.signal });
    assert.equal(calls[0]!.init.signal, ac.signal);
  });

  it("reads a Node stream whole and in large pieces, also when data was already buffered", async () => {
    const data = new Uint8Array(9 * 1024 * 1024 + 77).map((_, i) => (i * 7) & 0xff);
    const pieces = (size: number) => {
      const out: Uint8Array[] = [];
      for (let o = 0; o < data.length; o += size) out.push(data.subarray(o, o + size));
      return out;
    };
    const sizes: number[] = [];
    const small = new Readable({
      highWaterMark: 64 * 1024,
      read(n) {
        sizes.push(n);
        this.push(sent < data.length ? data.subarray(sent, (sent += n)) : null);
      },
    });
    let sent = 0;
    const same = async (body: BodyInit) => assert.deepEqual(new Uint8Array(await new Response(body).arrayBuffer()), data);
    await same(toStream(small));
    assert.ok(sizes[1]! >= 4 * 1024 * 1024, `asked for ${sizes.slice(0, 3).join(", ")}`);
    const buffered = Readable.from(pieces(1000), { objectMode: false });
    await new Promise((r) => buffered.once("readable", r));
    await same(toStream(buffered));
    await same(toStream((async function* () { yield* pieces(12345); })()));
  });

  for (const [what, apiKey] of [
    ["a line break", "cairn_abc\n"],
    ["a space", "cairn_abc def"],
    ["a non-ASCII letter", "cairn_clé"],
  ] as const) {
    it(`calls a key with ${what} malformed (401, UNAUTHORIZED), without sending it or blaming the network`, async () => {
      const { f, calls } = fakeFetch([() => new Response("{}")]);
      const cairn = new Cairn({ url: "http://127.0.0.1:1", apiKey, fetch: f });
      await assert.rejects(cairn.volumes.list(), (err: unknown) => err instanceof CairnError && err.code === "UNAUTHORIZED" && err.status === 401 && /malformed/.test(err.message));
      assert.equal(calls.length, 0);
    });
  }
});
