/** Pure parts of the file API: globs, signed URLs, tus headers, the replace engine. No root needed. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CairnError } from "@cairn/protocol";
import { globToRegExp } from "./search.js";
import { UrlSigner } from "./signing.js";
import { parseChecksum, parseMetadata } from "./tus.js";
import { countOccurrences, replaceBytes } from "./ops.js";
import { saysNoSpace } from "../host/exec.js";

const code = (fn: () => unknown) => {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof CairnError ? err.code : String(err);
  }
};

describe("globs", () => {
  const m = (glob: string, path: string) => {
    const { re, matchBase } = globToRegExp(glob);
    return re.test(matchBase ? path.slice(path.lastIndexOf("/") + 1) : path);
  };
  it("match as people expect", () => {
    assert.ok(m("*.ts", "src/lib/a.ts"));
    assert.ok(!m("*.ts", "src/lib/a.tsx"));
    assert.ok(m("src/*.ts", "src/a.ts"));
    assert.ok(!m("src/*.ts", "src/lib/a.ts"), "* stays within one name");
    assert.ok(m("src/**/*.ts", "src/a.ts"), "**/ may be empty");
    assert.ok(m("src/**/*.ts", "src/x/y/a.ts"));
    assert.ok(m("**/test/*", "a/b/test/c"));
    assert.ok(m("f?.txt", "f1.txt") && !m("f?.txt", "f10.txt"));
    assert.ok(m("[a-c]*.md", "b.md") && !m("[!a-c]*.md", "b.md"));
    assert.ok(m("*.{md,txt}", "x.txt") && !m("*.{md,txt}", "x.ts"));
    assert.ok(m("a.b", "a.b") && !m("a.b", "axb"), "regex characters are literal");
    assert.ok(m("\\*.txt", "*.txt") && !m("\\*.txt", "a.txt"));
  });
  it("refuses broken ones with INVALID_PATTERN", () => {
    for (const g of ["[a", "{a,b", "", "x".repeat(1001)]) assert.equal(code(() => globToRegExp(g)), "INVALID_PATTERN", g);
  });
});

describe("signed URLs", () => {
  const signer = new UrlSigner(Buffer.alloc(32, 7));
  const now = Date.UTC(2026, 0, 1);
  const expires = now / 1000 + 60;
  const signed = new URL("http://x" + signer.sign({ method: "GET", volumeId: "vol_a", path: "/r.pdf", expires }));
  const query = (u: URL) => Object.fromEntries(u.searchParams);
  const verify = (u: URL, method = "GET", volumeId = "vol_a", at = now) => {
    try {
      signer.verify({ method, volumeId, query: query(u) }, at);
      return "ok";
    } catch (err) {
      return (err as CairnError).meta?.reason as string;
    }
  };
  const tweak = (k: string, v: string) => {
    const u = new URL(signed);
    u.searchParams.set(k, v);
    return u;
  };
  it("accept the URL as signed, HEAD as GET", () => {
    assert.equal(verify(signed), "ok");
    assert.equal(verify(signed, "HEAD"), "ok");
    assert.equal(verify(tweak("path", "//r.pdf")), "ok", "the same path, normalised");
  });
  it("refuse anything else", () => {
    assert.equal(verify(signed, "PUT"), "method");
    assert.equal(verify(signed, "GET", "vol_b"), "invalid");
    assert.equal(verify(signed, "GET", "vol_a", (expires + 1) * 1000), "expired");
    assert.equal(verify(tweak("path", "/other.pdf")), "invalid");
    assert.equal(verify(tweak("expires", String(expires + 1))), "invalid");
    assert.equal(verify(tweak("method", "PUT"), "PUT"), "invalid");
    assert.equal(verify(tweak("signature", "")), "invalid");
    assert.equal(verify(tweak("path", "/../x")), "invalid");
    const u = new URL(signed);
    u.searchParams.delete("expires");
    assert.equal(verify(u), "malformed");
    assert.equal(verify(signed, "GET", "vol_a", now), "ok");
    assert.equal(new UrlSigner(Buffer.alloc(32, 8)).sign({ method: "GET", volumeId: "vol_a", path: "/r.pdf", expires }) === signed.pathname + signed.search, false);
  });
});

describe("tus headers", () => {
  it("parse Upload-Metadata and Upload-Checksum", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    assert.deepEqual(parseMetadata(`path ${b64("/a b/ü.txt")},filename ${b64("ü.txt")},empty`), { path: "/a b/ü.txt", filename: "ü.txt", empty: "" });
    assert.deepEqual(parseMetadata(undefined), {});
    assert.equal(parseChecksum(`sha256 ${Buffer.alloc(32).toString("base64")}`)?.algorithm, "sha256");
    assert.equal(parseChecksum("crc32 y/Q5Jg==")?.digest.toString("hex"), "cbf43926");
    assert.equal(code(() => parseChecksum("blake3 AAAA")), "INVALID_REQUEST");
    assert.equal(code(() => parseChecksum("sha1")), "INVALID_REQUEST");
  });
});

describe("edit", () => {
  it("counts and replaces bytes, one or all", () => {
    const b = Buffer.from("a-b-a-b-a");
    assert.equal(countOccurrences(b, Buffer.from("a")), 3);
    assert.equal(countOccurrences(b, Buffer.from("aa")), 0);
    assert.equal(countOccurrences(Buffer.from("aaaa"), Buffer.from("aa")), 2, "non-overlapping");
    assert.equal(replaceBytes(b, Buffer.from("a"), Buffer.from("X"), false).toString(), "X-b-a-b-a");
    assert.equal(replaceBytes(b, Buffer.from("a"), Buffer.from("XY"), true).toString(), "XY-b-XY-b-XY");
  });
});

describe("saysNoSpace", () => {
  it("knows a full filesystem in the words tools use, and nothing else", () => {
    assert.ok(saysNoSpace("tar: ./a.bin: Cannot write: No space left on device"));
    assert.ok(saysNoSpace("tar: ./b.bin: Wrote only 512 of 10240 bytes\ntar: Exiting with failure status"));
    assert.ok(!saysNoSpace("tar: This does not look like a tar archive"));
    assert.ok(!saysNoSpace("tar: ./c: Cannot open: Permission denied"));
  });
});
