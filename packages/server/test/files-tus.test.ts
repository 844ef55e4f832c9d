/**
 * Resumable uploads (tus 1.0) against a real cairnd: the protocol rules a stock client relies on,
 * a connection cut mid-body resumed to completion (raw, with the SDK, and with tus-js-client through
 * a proxy that cuts the connection), a cairnd restart in the middle, checksums and termination.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { crc32 } from "node:zlib";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, connect, type Server, type Socket } from "node:net";
import { Upload } from "tus-js-client";
import { Cairn, type Volume } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { auth, sha, sleep } from "./files-helpers.js";

const MiB = 1024 * 1024;
const TUS = { "tus-resumable": "1.0.0" };
const b64 = (s: string) => Buffer.from(s).toString("base64");

/**
 * A TCP proxy in front of cairnd that cuts the connection once `cutAfter` bytes went from the
 * client to cairnd (for the first `cuts` times), as a flaky network would.
 */
async function cuttingProxy(target: string, cutAfter: number, cuts = 1): Promise<{ url: string; cutsDone(): number; requestHeads(): string[]; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  let sent = 0;
  let done = 0;
  const sockets = new Set<Socket>();
  /** The first bytes each connection sent: its request line and headers. */
  const heads: string[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    const headAt = heads.push("") - 1;
    client.on("data", (d: Buffer) => {
      if (heads[headAt]!.length < 2048) heads[headAt] += d.subarray(0, 2048).toString("latin1");
      sent += d.length;
      if (done < cuts && sent >= cutAfter) {
        done++;
        sent = 0;
        client.destroy();
        upstream.destroy();
        return;
      }
      if (!upstream.write(d)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    cutsDone: () => done,
    requestHeads: () => heads,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe("resumable uploads (tus 1.0)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;
  let endpoint: string;

  const server = withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "tus", sizeGb: 2 });
    endpoint = `${c.url}/v1/volumes/${v.id}/uploads`;
  });

  const create = async (path: string, length: number | undefined, extra: Record<string, string> = {}) => {
    const headers = auth(c, { ...TUS, "upload-metadata": `path ${b64(path)},filename ${b64("x.bin")}`, ...extra });
    if (length !== undefined) headers["upload-length"] = String(length);
    const res = await fetch(endpoint, { method: "POST", headers });
    return res;
  };
  const head = async (url: string) => fetch(url, { method: "HEAD", headers: auth(c, TUS) });
  const patch = (url: string, offset: number, body: Uint8Array, extra: Record<string, string> = {}) =>
    fetch(url, { method: "PATCH", headers: auth(c, { ...TUS, "content-type": "application/offset+octet-stream", "upload-offset": String(offset), ...extra }), body: body as BodyInit });

  it("follows the protocol: creation, offsets, checksums, atomic completion, termination", async () => {
    const data = randomBytes(3 * MiB);
    const res = await create("/tus/a.bin", data.length);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("tus-resumable"), "1.0.0");
    assert.match(res.headers.get("tus-extension") ?? "", /creation.*termination.*checksum/);
    const url = new URL(res.headers.get("location")!, c.url).toString();
    const h = await head(url);
    assert.equal(h.status, 200);
    assert.equal(h.headers.get("upload-offset"), "0");
    assert.equal(h.headers.get("upload-length"), String(data.length));
    assert.equal(h.headers.get("cache-control"), "no-store");
    assert.ok(h.headers.get("upload-expires"));
    assert.equal((await fetch(url, { method: "PATCH", headers: auth(c, { ...TUS, "upload-offset": "0", "content-type": "text/plain" }), body: "x" })).status, 415);
    const wrong = await patch(url, 5, data.subarray(0, 10));
    assert.equal(wrong.status, 409);
    assert.equal(wrong.headers.get("upload-offset"), "0", "the real offset comes with the 409");
    // A checksum mismatch keeps nothing of the request.
    const bad = await patch(url, 0, data.subarray(0, MiB), { "upload-checksum": `sha256 ${createHash("sha256").update("other").digest("base64")}` });
    assert.equal(bad.status, 460);
    assert.equal((await head(url)).headers.get("upload-offset"), "0");
    const good = await patch(url, 0, data.subarray(0, MiB), { "upload-checksum": `sha1 ${createHash("sha1").update(data.subarray(0, MiB)).digest("base64")}` });
    assert.equal(good.status, 204);
    assert.equal(good.headers.get("upload-offset"), String(MiB));
    assert.equal(await v.files.exists("/tus/a.bin"), false, "nothing visible until complete");
    // CRC-32 too (what the SDK sends when a tus answer lists it): a wrong one keeps nothing.
    assert.deepEqual(good.headers.get("tus-checksum-algorithm")?.split(","), ["sha1", "sha256", "md5", "crc32"]);
    const crc = (bytes: Uint8Array) => {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(crc32(bytes));
      return out.toString("base64");
    };
    const flipped = Buffer.from(data.subarray(MiB));
    flipped[12345]! ^= 1;
    const badCrc = await patch(url, MiB, data.subarray(MiB), { "upload-checksum": `crc32 ${crc(flipped)}` });
    assert.equal(badCrc.status, 460);
    assert.equal((await head(url)).headers.get("upload-offset"), String(MiB));
    assert.equal((await patch(url, MiB, data.subarray(MiB), { "upload-checksum": `crc32 ${crc(data.subarray(MiB))}` })).status, 204);
    assert.equal(sha(await v.files.readBytes("/tus/a.bin")), sha(data));
    // The upload's bytes never show in the volume's listing.
    assert.ok(!(await v.files.list("/")).items.some((e) => e.name === ".cairn"));
    // The digest is CRC-32 as zip and gzip have it, 4 bytes big-endian: the check value of "123456789" is CBF43926.
    const nine = new URL((await create("/tus/nine.txt", 9)).headers.get("location")!, c.url).toString();
    assert.equal((await patch(nine, 0, Buffer.from("123456789"), { "upload-checksum": `crc32 ${Buffer.from("cbf43926", "hex").toString("base64")}` })).status, 204);
    assert.equal(await v.files.readText("/tus/nine.txt"), "123456789");
    // Too much data for Upload-Length.
    const small = new URL((await create("/tus/small.bin", 4)).headers.get("location")!, c.url).toString();
    assert.equal((await patch(small, 0, new Uint8Array(8))).status, 413);
    assert.equal((await head(small)).headers.get("upload-offset"), "0");
    // Termination.
    assert.equal((await fetch(small, { method: "DELETE", headers: auth(c, TUS) })).status, 204);
    assert.equal((await head(small)).status, 404);
    // Another protocol version is refused with the one we speak.
    const v2 = await fetch(endpoint, { method: "POST", headers: auth(c, { "tus-resumable": "2.0.0", "upload-length": "1", "upload-metadata": `path ${b64("/x")}` }) });
    assert.equal(v2.status, 412);
    assert.equal(v2.headers.get("tus-version"), "1.0.0");
    // Bad creations.
    assert.equal((await create("/tus/../../etc/x", 1)).status, 400);
    assert.equal((await fetch(endpoint, { method: "POST", headers: auth(c, { ...TUS, "upload-length": "1" }) })).status, 400, "a path is needed");
    assert.equal((await create("/tus/huge.bin", 50 * 1024 * 1024 * 1024)).status, 507, "more than the volume can hold");
    // Deferred length and creation-with-upload.
    const d = await create("/tus/deferred.txt", undefined, { "upload-defer-length": "1" });
    const durl = new URL(d.headers.get("location")!, c.url).toString();
    assert.equal((await head(durl)).headers.get("upload-defer-length"), "1");
    assert.equal((await patch(durl, 0, Buffer.from("hello "))).status, 204);
    assert.equal((await patch(durl, 6, Buffer.from("world"), { "upload-length": "11" })).status, 204);
    assert.equal(await v.files.readText("/tus/deferred.txt"), "hello world");
    const withBody = await fetch(endpoint, {
      method: "POST",
      headers: auth(c, { ...TUS, "upload-length": "5", "upload-metadata": `path ${b64("/tus/inline.txt")}`, "content-type": "application/offset+octet-stream" }),
      body: "12345",
    });
    assert.equal(withBody.status, 201);
    assert.equal(withBody.headers.get("upload-offset"), "5");
    assert.equal(await v.files.readText("/tus/inline.txt"), "12345");
  });

  it("keeps what arrived before a cut connection, durably, and resumes from there", async () => {
    const data = randomBytes(64 * MiB);
    const url = new URL((await create("/tus/cut.bin", data.length)).headers.get("location")!, c.url);
    // Send half a body and cut the connection.
    await new Promise<void>((resolve) => {
      const req = httpRequest(url, {
        method: "PATCH",
        headers: auth(c, { ...TUS, "content-type": "application/offset+octet-stream", "upload-offset": "0", "content-length": String(data.length) }),
      });
      req.on("error", () => resolve());
      req.write(data.subarray(0, 40 * MiB), () => setTimeout(() => req.destroy(), 200));
      req.on("close", () => resolve());
    });
    let offset = 0;
    for (let i = 0; i < 50 && offset === 0; i++) {
      await sleep(100);
      offset = Number((await head(url.toString())).headers.get("upload-offset"));
    }
    assert.ok(offset > 0 && offset <= 40 * MiB, `kept ${offset} bytes`);
    assert.equal((await patch(url.toString(), offset, data.subarray(offset))).status, 204);
    assert.equal(sha(await v.files.readBytes("/tus/cut.bin")), sha(data));
  });

  it("the SDK resumes through a connection that is cut mid-chunk", async () => {
    const proxy = await cuttingProxy(c.url, 20 * MiB, 2);
    try {
      const viaProxy = new Cairn({ url: proxy.url, apiKey: c.adminKey });
      const pv = await viaProxy.volumes.get(v.id);
      const data = randomBytes(48 * MiB);
      const progress: number[] = [];
      const r = await pv.files.upload("/tus/sdk.bin", new Blob([data]), { chunkSize: 16 * MiB, onProgress: (n) => progress.push(n) });
      assert.equal(r.size, data.length);
      assert.ok(proxy.cutsDone() >= 1, "the connection was cut");
      assert.equal(sha(await v.files.readBytes("/tus/sdk.bin")), sha(data));
      assert.deepEqual([...progress].sort((a, b) => a - b), progress, "progress only moves forward");
    } finally {
      await proxy.close();
    }
  });

  it("the SDK uploads a local file resumably through cut connections, and resumes it by URL", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-tus-file-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const local = join(dir, "src.bin");
    const data = randomBytes(40 * MiB + 7);
    await writeFile(local, data);
    const proxy = await cuttingProxy(c.url, 20 * MiB, 2);
    try {
      const pv = await new Cairn({ url: proxy.url, apiKey: c.adminKey }).volumes.get(v.id);
      const progress: number[] = [];
      const r = await pv.files.uploadFromFile("/tus/file.bin", local, { chunkSize: 16 * MiB, onProgress: (n) => progress.push(n) });
      assert.equal(r.size, data.length);
      assert.ok(proxy.cutsDone() >= 1, "the connection was cut");
      assert.equal(sha(await v.files.readBytes("/tus/file.bin")), sha(data));
      assert.deepEqual([...progress].sort((a, b) => a - b), progress, "progress only moves forward");
      assert.equal(progress.at(-1), data.length);
      const patches = proxy.requestHeads().filter((h) => h.startsWith("PATCH "));
      assert.ok(patches.length >= 3, `${patches.length} PATCH requests`);
      for (const h of patches) assert.match(h, /\r\nupload-checksum: crc32 [A-Za-z0-9+/]{6}==\r\n/i, "the SDK checks chunks with CRC-32, which cairnd offers");
    } finally {
      await proxy.close();
    }
    // Stopped after its first chunk, then resumed by its URL: the rest is sent, not all of it.
    const ac = new AbortController();
    let url = "";
    await assert.rejects(
      v.files.uploadFromFile("/tus/file2.bin", local, { chunkSize: 8 * MiB, signal: ac.signal, onUploadUrl: (u) => (url = u), onProgress: (n) => n > 0 && ac.abort(new Error("stop")) }),
      /stop/,
    );
    const seen: number[] = [];
    const done = await v.files.uploadFromFile("/tus/file2.bin", local, { chunkSize: 8 * MiB, uploadUrl: url, onProgress: (n) => seen.push(n) });
    assert.equal(done.uploadUrl, url);
    assert.ok(seen[0]! >= 8 * MiB, `resumed at ${seen[0]}`);
    assert.equal(sha(await v.files.readBytes("/tus/file2.bin")), sha(data));
  });

  it("a stock tus client (tus-js-client) resumes after a cut connection", async () => {
    const proxy = await cuttingProxy(c.url, 24 * MiB, 1);
    try {
      const data = randomBytes(40 * MiB);
      const patches: number[] = [];
      let uploadUrl: string | null = null;
      await new Promise<void>((resolve, reject) => {
        const upload = new Upload(data, {
          endpoint: `${proxy.url}/v1/volumes/${v.id}/uploads`,
          headers: { authorization: `Bearer ${c.adminKey}` },
          metadata: { path: "/tus/stock.bin", filename: "stock.bin" },
          uploadSize: data.length,
          retryDelays: [0, 200, 500, 1000],
          onBeforeRequest: (req) => {
            if (req.getMethod() === "PATCH") patches.push(Number(req.getHeader("Upload-Offset")));
          },
          onError: reject,
          onSuccess: () => {
            uploadUrl = upload.url;
            resolve();
          },
        });
        upload.start();
      });
      assert.equal(proxy.cutsDone(), 1, "the connection was cut once");
      assert.ok(patches.length >= 2, `resumed with a second PATCH (offsets ${patches.join(", ")})`);
      assert.ok(patches.at(-1)! > 0, "the resumed PATCH started after the bytes already stored, not from 0");
      assert.ok(uploadUrl);
      assert.equal(sha(await v.files.readBytes("/tus/stock.bin")), sha(data));
    } finally {
      await proxy.close();
    }
  });

  it("survives a cairnd restart in the middle of an upload", async () => {
    const data = randomBytes(24 * MiB);
    const location = (await create("/tus/restart.bin", data.length)).headers.get("location")!;
    assert.equal((await patch(new URL(location, c.url).toString(), 0, data.subarray(0, 10 * MiB))).status, 204);
    await server.restart("crash"); // kill -9: only what was fsynced and acknowledged counts
    v = await cairn.volumes.get(v.id);
    const url = new URL(location, c.url).toString();
    const h = await head(url);
    assert.equal(h.status, 200);
    assert.equal(h.headers.get("upload-offset"), String(10 * MiB), "the acknowledged offset survived the crash");
    assert.equal((await patch(url, 10 * MiB, data.subarray(10 * MiB))).status, 204);
    assert.equal(sha(await v.files.readBytes("/tus/restart.bin")), sha(data));
  });

  it("the SDK uploads streams of unknown length and resumes an earlier upload by its URL", async () => {
    const chunks = Array.from({ length: 10 }, () => randomBytes(MiB + 123));
    async function* gen() {
      yield* chunks;
    }
    const r = await v.files.upload("/tus/stream.bin", gen(), { chunkSize: 3 * MiB });
    assert.equal(r.size, 10 * (MiB + 123));
    assert.equal(sha(await v.files.readBytes("/tus/stream.bin")), sha(Buffer.concat(chunks)));
    // An upload interrupted in "another process": resumed by its URL.
    const data = randomBytes(5 * MiB);
    let url = "";
    const ac = new AbortController();
    await assert.rejects(
      v.files.upload("/tus/later.bin", data, {
        chunkSize: MiB,
        signal: ac.signal,
        onUploadUrl: (u) => (url = u),
        onProgress: (n) => {
          if (n >= 2 * MiB) ac.abort(new Error("stopped by the test"));
        },
      }),
      /stopped by the test|abort/i,
    );
    assert.ok(url);
    const done = await v.files.upload("/tus/later.bin", data, { chunkSize: MiB, uploadUrl: url });
    assert.equal(done.uploadUrl, url);
    assert.equal(sha(await v.files.readBytes("/tus/later.bin")), sha(data));
  });
});
