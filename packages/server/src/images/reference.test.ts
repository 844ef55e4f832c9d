import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatReference, isInsecureRegistry, parseReference } from "./reference.js";

describe("image references", () => {
  it("reads short names as Docker does", () => {
    assert.equal(formatReference(parseReference("node:20")), "docker.io/library/node:20");
    assert.equal(formatReference(parseReference("busybox")), "docker.io/library/busybox:latest");
    assert.equal(formatReference(parseReference("team/app")), "docker.io/team/app:latest");
    assert.equal(formatReference(parseReference("ghcr.io/org/tool:1.2")), "ghcr.io/org/tool:1.2");
    assert.equal(formatReference(parseReference("127.0.0.1:5000/team/tool:1.2")), "127.0.0.1:5000/team/tool:1.2");
    assert.equal(formatReference(parseReference("localhost/x")), "localhost/x:latest");
    const d = `sha256:${"a".repeat(64)}`;
    const r = parseReference(`127.0.0.1:5000/x@${d}`);
    assert.equal(r.tag, undefined);
    assert.equal(r.digest, d);
    assert.equal(parseReference(`node:20@${d}`).tag, "20");
  });

  it("refuses what is no reference", () => {
    for (const bad of ["", "Node:20", "a b", "x@sha256:12", "x:" + "t".repeat(200), "../x", "x//y"]) {
      assert.throws(() => parseReference(bad), (e: Error & { code?: string }) => e.code === "INVALID_IMAGE", bad);
    }
  });

  it("speaks plain HTTP to loopback registries only", () => {
    assert.equal(isInsecureRegistry("127.0.0.1:5000"), true);
    assert.equal(isInsecureRegistry("127.8.9.1"), true);
    assert.equal(isInsecureRegistry("localhost:5000"), true);
    assert.equal(isInsecureRegistry("docker.io"), false);
    assert.equal(isInsecureRegistry("10.0.0.1:5000"), false);
  });
});
