/**
 * Signed URLs against a real cairnd: they work with no key for their one path and method, survive
 * a cairnd restart (the key is kept in the data dir), and every tampered, expired, re-targeted or
 * re-methoded use is refused with 403 without reading or writing anything.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cairn, type Volume } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { sleep } from "./files-helpers.js";

describe("signed URLs", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;

  const server = withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "signed" });
    await v.files.write("/report.pdf", "%PDF-1.7 the report");
    await v.files.write("/other.txt", "not for you");
  });

  const problem = async (res: Response) => {
    assert.equal(res.status, 403, `status ${res.status}`);
    const body = (await res.json()) as { code: string; detail: string; meta?: { reason?: string } };
    assert.equal(body.code, "FORBIDDEN");
    return body;
  };

  it("downloads with no key, ranges included, only the file it names", async () => {
    const s = await v.files.sign("/report.pdf", { expiresIn: 600 });
    assert.equal(s.method, "GET");
    assert.ok(Date.parse(s.expiresAt) > Date.now() + 590_000);
    assert.ok(s.url.startsWith(c.url + "/v1/signed/"), s.url);
    const res = await fetch(s.url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "%PDF-1.7 the report");
    const part = await fetch(s.url, { headers: { range: "bytes=0-7" } });
    assert.equal(part.status, 206);
    assert.equal(await part.text(), "%PDF-1.7");
    assert.equal((await fetch(s.url, { method: "HEAD" })).status, 200);
    // The signed route needs no key, and the normal routes still do.
    assert.equal((await fetch(`${c.url}/v1/volumes/${v.id}/files/content?path=/report.pdf`)).status, 401);
  });

  it("uploads with a PUT URL, atomically, and only there", async () => {
    const s = await v.files.sign("/inbox/data.csv", { method: "PUT", expiresIn: 60 });
    const res = await fetch(s.url, { method: "PUT", body: "a,b\n1,2\n" });
    assert.equal(res.status, 201);
    assert.equal(await v.files.readText("/inbox/data.csv"), "a,b\n1,2\n");
    const again = await fetch(s.url, { method: "PUT", body: "a,b\n3,4\n", headers: { "if-none-match": "*" } });
    assert.equal(again.status, 412, "preconditions work on signed PUTs too");
    // A PUT URL does not read.
    const read = await problem(await fetch(s.url));
    assert.match(read.detail, /signed for PUT/);
  });

  it("refuses expired, re-targeted, re-methoded and tampered URLs, touching nothing", async () => {
    const get = new URL((await v.files.sign("/report.pdf", { expiresIn: 600 })).url);
    const put = new URL((await v.files.sign("/report.pdf", { method: "PUT", expiresIn: 600 })).url);
    const variant = (base: URL, change: (u: URL) => void) => {
      const u = new URL(base);
      change(u);
      return u.toString();
    };
    // Another path, another volume, another expiry, another method, a flipped signature byte.
    const otherPath = variant(get, (u) => u.searchParams.set("path", "/other.txt"));
    const dotPath = variant(get, (u) => u.searchParams.set("path", "/report.pdf/../other.txt"));
    const otherVolume = variant(get, (u) => (u.pathname = u.pathname.replace(v.id, "vol_00000000000000000000")));
    const later = variant(get, (u) => u.searchParams.set("expires", String(Number(u.searchParams.get("expires")) + 3600)));
    const asPut = variant(get, (u) => u.searchParams.set("method", "PUT"));
    const sig = get.searchParams.get("signature")!;
    const flipped = variant(get, (u) => u.searchParams.set("signature", (sig[0] === "A" ? "B" : "A") + sig.slice(1)));
    const lastByte = Buffer.from(sig, "base64url");
    lastByte[lastByte.length - 1]! ^= 1;
    const flippedLast = variant(get, (u) => u.searchParams.set("signature", lastByte.toString("base64url")));
    const shortSig = variant(get, (u) => u.searchParams.set("signature", sig.slice(0, 10)));
    const noSig = variant(get, (u) => u.searchParams.delete("signature"));
    for (const url of [otherPath, dotPath, otherVolume, later, asPut, flipped, flippedLast, shortSig, noSig]) {
      const body = await problem(await fetch(url));
      assert.doesNotMatch(JSON.stringify(body), /not for you|the report/, "nothing is read");
    }
    // A GET URL used to PUT, and a PUT URL with its body aimed at another file: refused, nothing written.
    assert.match((await problem(await fetch(get, { method: "PUT", body: "overwritten" }))).detail, /signed for GET/);
    await problem(await fetch(variant(put, (u) => u.searchParams.set("path", "/other.txt")), { method: "PUT", body: "overwritten" }));
    assert.equal(await v.files.readText("/report.pdf"), "%PDF-1.7 the report");
    assert.equal(await v.files.readText("/other.txt"), "not for you");
    // Expiry: valid, then not.
    const short = await v.files.sign("/report.pdf", { expiresIn: 1 });
    assert.equal((await fetch(short.url)).status, 200);
    await sleep(2100);
    const expired = await problem(await fetch(short.url));
    assert.equal(expired.meta?.reason, "expired");
    assert.match(expired.detail, /expired at/);
  });

  it("keeps working across a restart (the key is in the data dir), and dies with its volume", async () => {
    const s = await v.files.sign("/report.pdf", { expiresIn: 600 });
    await server.restart();
    const url = s.url.replace(/^http:\/\/[^/]+/, c.url);
    assert.equal(await (await fetch(url)).text(), "%PDF-1.7 the report");
    const cairn2 = new Cairn({ url: c.url, apiKey: c.adminKey });
    const doomed = await cairn2.volumes.create({ name: "doomed" });
    await doomed.files.write("/f", "x");
    const d = await doomed.files.sign("/f");
    await cairn2.volumes.delete("doomed");
    const gone = await fetch(d.url.replace(/^http:\/\/[^/]+/, c.url));
    assert.equal(gone.status, 404);
  });
});
