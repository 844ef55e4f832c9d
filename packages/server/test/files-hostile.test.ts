/**
 * Hostile input against every file route of a real cairnd: thousands of generated bad paths
 * (traversal, encodings, NUL, long names, the reserved /.cairn) and symlinks planted pointing out
 * of the volume. Nothing may be read or written outside the volume, nothing may answer 5xx, and
 * cairnd must keep running.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { Cairn, type Volume } from "@cairn/sdk";
import { normalizeVolumePath } from "@cairn/protocol";
import { withCairnd, type CairndProcess } from "./harness.js";
import { auth, rejectsWith, shellOnMount } from "./files-helpers.js";

const CANARY = `cairn-hostile-${process.pid}`;
const hostHash = async (p: string) => createHash("sha256").update(await readFile(p)).digest("hex");

/** Bad and odd paths: escapes, encodings, NUL, long names, reserved names, and mixes of them. */
function generatePaths(): string[] {
  const ups = ["..", "../..", "../../../../../../../..", "/..", "/../../..", "a/../..", "a/b/../../..", "./../", "a/./../../", "...//..", "..//..//.."];
  const targets = ["etc/passwd", `tmp/${CANARY}`, `tmp/${CANARY}/x`, "", "proc/self/environ", "root/.ssh/authorized_keys"];
  const out = new Set<string>();
  for (const up of ups) for (const t of targets) for (const lead of ["", "/"]) out.add(`${lead}${up}/${t}`);
  // Encodings a naive server would decode once more (inside a volume they are just names).
  for (const enc of ["%2e%2e", "%2E%2E", "%252e%252e", "..%2f", "%2e%2e%2f", "..%5c", "%c0%ae%c0%ae", "%u002e%u002e", "..\\", "..;", "....//"]) {
    for (const t of targets) out.add(`/${enc}/${enc}/${enc}/${t}`);
  }
  // NUL, over-long names and paths.
  for (const t of ["etc/passwd", CANARY, ""]) {
    out.add(`/a\0/${t}`);
    out.add(`/${t}\0.txt`);
    out.add(`/../${t}\0`);
  }
  out.add("/" + "n".repeat(256));
  out.add("/" + "é".repeat(128)); // 256 bytes in UTF-8
  out.add("/" + "a/".repeat(2100));
  out.add("");
  // The reserved directory, directly and by a detour.
  for (const r of ["/.cairn", "/.cairn/", "/.cairn/uploads", "/x/../.cairn/staging/y", "//.cairn//uploads", "/./.cairn"]) out.add(r);
  // Many variants of the same escapes, so the whole set reaches thousands.
  for (let i = 0; i < 150; i++) {
    out.add(`${"../".repeat(1 + (i % 12))}tmp/${CANARY}-${i}`);
    out.add(`/${"x/".repeat(i % 7)}${"../".repeat((i % 7) + 1 + (i % 3))}tmp/${CANARY}-${i}`);
    out.add(`/a/${"./".repeat(i % 5)}../${"../".repeat(i % 4)}etc/shadow`);
  }
  return [...out];
}

const isInvalid = (p: string) => {
  try {
    const n = normalizeVolumePath(p);
    return n === "/.cairn" || n.startsWith("/.cairn/");
  } catch {
    return true;
  }
};

describe("hostile input", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;
  let passwd: string;
  let tmpBefore: string[];

  withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "hostile" });
    await v.files.write("/inside.txt", "inside");
    passwd = await hostHash("/etc/passwd");
    tmpBefore = (await readdir("/tmp")).filter((n) => n.includes(CANARY));
  });

  async function assertHostUntouched(): Promise<void> {
    assert.equal(await hostHash("/etc/passwd"), passwd, "the host's /etc/passwd is unchanged");
    assert.deepEqual((await readdir("/tmp")).filter((n) => n.includes(CANARY)), tmpBefore, "nothing written into the host's /tmp");
    assert.equal(existsSync(`/${CANARY}`), false);
    assert.equal((await cairn.health()).status, "ok", "cairnd still answers");
  }

  it("refuses thousands of generated bad paths on every route, and never leaves the volume", async () => {
    const paths = generatePaths();
    const base = `${c.url}/v1/volumes/${v.id}`;
    const q = (p: string) => encodeURIComponent(p);
    const json = (body: unknown) => ({ method: "POST", headers: auth(c, { "content-type": "application/json" }), body: JSON.stringify(body) });
    const requests: [string, (p: string) => [string, RequestInit]][] = [
      ["read", (p) => [`${base}/files/content?path=${q(p)}`, { headers: auth(c) }]],
      ["write", (p) => [`${base}/files/content?path=${q(p)}`, { method: "PUT", headers: auth(c), body: "pwned" }]],
      ["stat", (p) => [`${base}/files/stat?path=${q(p)}&follow=true`, { headers: auth(c) }]],
      ["list", (p) => [`${base}/files/list?path=${q(p)}&recursive=true`, { headers: auth(c) }]],
      ["mkdir", (p) => [`${base}/files/mkdir`, json({ path: p })]],
      ["move-from", (p) => [`${base}/files/move`, json({ from: p, to: "/moved" })]],
      ["move-to", (p) => [`${base}/files/move`, json({ from: "/inside.txt", to: p })]],
      ["remove", (p) => [`${base}/files?path=${q(p)}&recursive=true`, { method: "DELETE", headers: auth(c) }]],
      ["edit", (p) => [`${base}/files/edit`, json({ path: p, oldString: "root", newString: "pwned" })]],
      ["batch", (p) => [`${base}/files/batch`, json({ files: [{ path: p, content: "pwned" }] })]],
      ["search", (p) => [`${base}/files/search?path=${q(p)}&query=root`, { headers: auth(c) }]],
      ["replace", (p) => [`${base}/files/replace`, json({ path: p, search: "root", replacement: "pwned" })]],
      ["archive", (p) => [`${base}/files/archive?path=${q(p)}`, { headers: auth(c) }]],
      ["extract", (p) => [`${base}/files/archive?path=${q(p)}`, { method: "PUT", headers: auth(c), body: new Uint8Array(10240) }]],
      ["sign", (p) => [`${base}/files/sign`, json({ path: p })]],
      ["upload", (p) => [`${base}/uploads?path=${q(p)}`, { method: "POST", headers: auth(c, { "upload-length": "5", "tus-resumable": "1.0.0" }) }]],
    ];
    let sent = 0;
    let refused = 0;
    for (const path of paths) {
      const invalid = isInvalid(path);
      // Every route for the worst ones; a rotating subset for the rest keeps the run short.
      const routes = invalid ? requests : requests.filter((_, i) => (sent + i) % 4 === 0);
      await Promise.all(
        routes.map(async ([name, make]) => {
          const [url, init] = make(path);
          const res = await fetch(url, init);
          const text = await res.text();
          sent++;
          assert.ok(res.status < 500, `${name} ${JSON.stringify(path)} → ${res.status} ${text.slice(0, 300)}`);
          assert.doesNotMatch(text, /root:x:0:0|pwned/, `${name} ${JSON.stringify(path)} read something it must not`);
          if (invalid && name !== "sign") {
            assert.ok(res.status === 400 || res.status === 404, `${name} ${JSON.stringify(path)} must be refused, got ${res.status} ${text.slice(0, 200)}`);
            refused++;
          }
        }),
      );
    }
    assert.ok(paths.length > 500, `${paths.length} paths`);
    assert.ok(sent > 3000, `${sent} requests`);
    assert.ok(refused > 1500, `${refused} refusals`);
    await assertHostUntouched();
    assert.equal(await v.files.readText("/inside.txt"), "inside");
  });

  it("symlinks planted out of the volume lead back into it, for every operation", async () => {
    // A fresh volume: the generated paths above legitimately created odd names (e.g. /etc/passwd
    // as a directory, from "...//../etc/passwd") in the other one.
    v = await cairn.volumes.create({ name: "hostile-links" });
    await v.files.write("/inside.txt", "inside");
    // A watch holds the volume mounted while we plant links as a sandbox could.
    const ac = new AbortController();
    const it = v.files.watch("/", { signal: ac.signal });
    await it.next();
    try {
      await shellOnMount(
        c,
        v.id,
        `ln -s /etc $M/etc-link; ln -s ../../../../../../../etc $M/rel-etc; ln -s /tmp $M/tmp-link; ln -s /etc/passwd $M/passwd-link; mkdir -p $M/d; ln -s ../../../../.. $M/d/up`,
      );
      // The kernel itself refuses to follow them on cairnd's mount (nosymfollow).
      await assert.rejects(shellOnMount(c, v.id, "cat $M/passwd-link"), /Too many levels of symbolic links|ELOOP|symbolic/);
      for (const p of ["/etc-link/passwd", "/rel-etc/passwd", "/passwd-link", "/d/up/etc/passwd", "/d/up/up/etc/hostname"]) {
        await rejectsWith(v.files.readText(p), "PATH_NOT_FOUND");
        await rejectsWith(v.files.stat(p, { follow: true }), "PATH_NOT_FOUND");
        await rejectsWith(v.files.edit(p, "root", "pwned"), "PATH_NOT_FOUND");
        await rejectsWith(v.files.downloadArchive(p), "PATH_NOT_FOUND");
        const s = await v.files.sign(p);
        assert.equal((await fetch(s.url)).status, 404);
      }
      await rejectsWith(v.files.list("/etc-link"), "PATH_NOT_FOUND");
      await rejectsWith(v.files.search({ path: "/etc-link", query: "root" }), "PATH_NOT_FOUND");
      // Searching and replacing from the root never follows a link out.
      const found = await v.files.search({ path: "/", query: "root:x:0:0" });
      assert.deepEqual(found.matches, []);
      const names = await v.files.search({ path: "/", glob: "passwd" });
      assert.deepEqual(names.matches, []);
      const rep = await v.files.replace({ path: "/", search: "root", replacement: "pwned" });
      assert.equal(rep.filesChanged, 0);
      // Writes through the links land inside the volume.
      await v.files.write(`/tmp-link/${CANARY}-write`, "w");
      await v.files.mkdir(`/tmp-link/${CANARY}-dir`);
      await v.files.writeMany([{ path: `/tmp-link/${CANARY}-batch`, content: "b" }]);
      await v.files.upload(`/tmp-link/${CANARY}-tus`, "t");
      await v.files.move("/inside.txt", `/tmp-link/${CANARY}-moved`);
      await v.files.uploadArchive(`/tmp-link/${CANARY}-extract`, new Uint8Array(10240));
      await v.files.write("/etc-link/passwd", "the volume's own passwd");
      for (const n of ["write", "dir", "batch", "tus", "moved", "extract"]) assert.ok(await v.files.exists(`/tmp/${CANARY}-${n}`), n);
      assert.equal(await v.files.readText("/etc/passwd"), "the volume's own passwd");
      assert.equal(await v.files.readText("/passwd-link"), "the volume's own passwd");
      // Archives store the links as links.
      const tar = Buffer.from(await new Response(await v.files.downloadArchive("/")).arrayBuffer());
      assert.doesNotMatch(tar.toString("latin1"), /root:x:0:0/);
      // Removing a link removes the link, not what it points to.
      await v.files.remove("/etc-link");
      assert.equal((await v.files.stat("/etc")).type, "directory");
      await assertHostUntouched();
    } finally {
      ac.abort();
    }
  });
});
