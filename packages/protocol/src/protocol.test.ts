import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CairnError, ERROR_CODES, GiB, MiB, formatSize, normalizeVolumePath, parseSize, VOLUME_NAME_PATTERN, VolumeName, CheckpointName } from "./index.js";

describe("sizes", () => {
  it("parses what people type", () => {
    assert.equal(parseSize("10GiB"), 10 * GiB);
    assert.equal(parseSize("10G"), 10 * GiB);
    assert.equal(parseSize("1.5g"), 1.5 * GiB);
    assert.equal(parseSize("512MiB"), 512 * MiB);
    assert.equal(parseSize("1GB"), 1e9);
    assert.equal(parseSize("4096"), 4096);
    for (const bad of ["", "ten", "10XB", "-1G", "1e3", "G"]) assert.equal(parseSize(bad), undefined, bad);
  });
  it("formats for people", () => {
    assert.equal(formatSize(GiB), "1 GiB");
    assert.equal(formatSize(1536), "1.5 KiB");
    assert.equal(formatSize(100), "100 B");
  });
});

describe("volume names", () => {
  it("follow the documented rule", () => {
    for (const ok of ["team-data", "my_project", "a", "0x", "a".repeat(63)]) assert.ok(VOLUME_NAME_PATTERN.test(ok), ok);
    for (const bad of ["Team", "-a", "_a", "a".repeat(64), "a.b", "a b", "", "ä"]) assert.ok(!VOLUME_NAME_PATTERN.test(bad), bad);
  });

  it("never take the shape of an id", () => {
    assert.equal(VolumeName.safeParse("vol_0123456789abcdefghjk").success, false);
    assert.equal(CheckpointName.safeParse("cp_0123456789abcdefghjk").success, false);
    assert.equal(VolumeName.safeParse("vol_data").success, true, "a prefix alone is a fine name");
  });
});

describe("normalizeVolumePath", () => {
  it("normalises to an absolute path inside the volume", () => {
    assert.equal(normalizeVolumePath("hello.txt"), "/hello.txt");
    assert.equal(normalizeVolumePath("/a//b/./c/"), "/a/b/c");
    assert.equal(normalizeVolumePath("/a/b/../c"), "/a/c");
    assert.equal(normalizeVolumePath("/"), "/");
  });

  it("refuses thousands of hostile paths before they reach a disk", () => {
    const seeds = ["..", "../", "/..", "a/../..", "./../x", "a/b/../../../etc/passwd", "/../../../../etc/shadow"];
    const hostile: string[] = [];
    for (const s of seeds) {
      for (let depth = 1; depth <= 40; depth++) {
        hostile.push("../".repeat(depth) + s, "/x/".repeat(depth) + "../".repeat(depth + 1) + s, s + "/" + "../".repeat(depth));
      }
    }
    for (let i = 0; i < 500; i++) hostile.push(`/a${"\0".repeat((i % 3) + 1)}b${i}`);
    for (let i = 0; i < 300; i++) hostile.push("/" + "x".repeat(256 + i));
    hostile.push("/" + "d/".repeat(2100), "");
    assert.ok(hostile.length > 1000);
    for (const p of hostile) {
      assert.throws(() => normalizeVolumePath(p), (err: unknown) => err instanceof CairnError && err.code === "INVALID_PATH", JSON.stringify(p.slice(0, 80)));
    }
  });
});

describe("errors", () => {
  it("round-trip through a problem body", () => {
    const e = new CairnError("QUOTA_EXCEEDED", "full", { requestId: "req_1" });
    const p = e.toProblem();
    assert.equal(p.status, 507);
    const back = CairnError.fromProblem(JSON.parse(JSON.stringify(p)), 507);
    assert.equal(back.code, "QUOTA_EXCEEDED");
    assert.equal(back.requestId, "req_1");
    assert.equal(CairnError.fromProblem("<html>", 502).code, "INTERNAL");
    for (const [code, { status }] of Object.entries(ERROR_CODES)) assert.ok(status >= 400 && status < 600, code);
  });
});
