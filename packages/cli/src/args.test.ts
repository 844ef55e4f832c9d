import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CairnError } from "@cairn/protocol";
import { collect, parseCheckpointRef, parseDuration, parseEnv, parseFields, parseLabels, parseMemoryMb, parseMount, parseRange, shellJoin, sizeFrom } from "./args.js";
import { UsageError } from "./errors.js";

describe("option parsing", () => {
  it("fields: repeated or comma-separated, de-duplicated, validated", () => {
    assert.deepEqual(parseFields(["name", "sizeBytes,name", " labels "]), ["name", "sizeBytes", "labels"]);
    assert.equal(parseFields(undefined), undefined);
    assert.throws(() => parseFields(["nope"]), UsageError);
  });

  it("labels: key=value, value may hold '='", () => {
    assert.deepEqual(parseLabels(["team=ml", "q=a=b", "empty="]), { team: "ml", q: "a=b", empty: "" });
    assert.throws(() => parseLabels(["=x"]), (e) => e instanceof CairnError && e.code === "INVALID_LABEL");
    assert.throws(() => parseLabels(["novalue"]), (e) => e instanceof CairnError && e.code === "INVALID_LABEL");
  });

  it("ranges: start-end inclusive or start-", () => {
    assert.deepEqual(parseRange("0-1023"), { start: 0, end: 1023 });
    assert.deepEqual(parseRange("1024-"), { start: 1024 });
    for (const bad of ["-5", "5-1", "a-b", ""]) assert.throws(() => parseRange(bad), (e) => e instanceof CairnError && e.code === "INVALID_RANGE", bad);
  });

  it("sizes: --size parses units, --size-gb whole GiB, not both", () => {
    assert.deepEqual(sizeFrom({ size: "10GiB" }), { sizeBytes: 10 * 1024 ** 3 });
    assert.deepEqual(sizeFrom({ size: "512M" }), { sizeBytes: 512 * 1024 ** 2 });
    assert.deepEqual(sizeFrom({ sizeGb: "3" }), { sizeGb: 3 });
    assert.deepEqual(sizeFrom({}), {});
    assert.throws(() => sizeFrom({ size: "1GiB", sizeGb: "1" }), UsageError);
    assert.throws(() => sizeFrom({ size: "big" }), (e) => e instanceof CairnError && e.code === "INVALID_SIZE");
    assert.throws(() => sizeFrom({ sizeGb: "1.5" }), (e) => e instanceof CairnError && e.code === "INVALID_SIZE");
  });

  it("collect accumulates repeated options", () => {
    assert.deepEqual(collect("b", collect("a", undefined)), ["a", "b"]);
  });

  it("--volume: every key, strictly", () => {
    assert.deepEqual(parseMount("ref=team-data,mount=/workspace/shared"), { volume: "team-data", mountPath: "/workspace/shared" });
    assert.deepEqual(parseMount("mount=/p,ref=v,mode=ro,subpath=projects/p1,checkpoint=cp"), {
      volume: "v",
      mountPath: "/p",
      mode: "ro",
      subpath: "projects/p1",
      checkpoint: "cp",
    });
    for (const bad of ["", "ref=v", "mount=/m", "ref=v,mount=/m,ro", "ref=v,mount=/m,Mode=ro", "ref=v,mount=/m,mode=", "ref=v,mount=m", "ref=v,mount=/m,mode=rwx", "ref=v,ref=w,mount=/m", "ref=v,mount=/m,"]) {
      assert.throws(() => parseMount(bad), (e) => e instanceof UsageError && /ref=<volume>,mount=/.test(e.hint ?? ""), bad);
    }
  });

  it("--env, --timeout, --memory, --from-checkpoint", () => {
    assert.deepEqual(parseEnv(["A=1", "B=x=y", "C="]), { A: "1", B: "x=y", C: "" });
    assert.equal(parseEnv([]), undefined);
    for (const bad of ["A", "=1", "1A=x", "A-B=1"]) assert.throws(() => parseEnv([bad]), UsageError, bad);
    assert.equal(parseDuration("10m"), 600_000);
    assert.equal(parseDuration("90"), 90_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    assert.equal(parseDuration("250ms"), 250);
    for (const bad of ["", "0", "soon", "-1s", "10 minutes"]) assert.throws(() => parseDuration(bad), UsageError, bad);
    assert.equal(parseMemoryMb("512"), 512);
    assert.equal(parseMemoryMb("1GiB"), 1024);
    assert.throws(() => parseMemoryMb("lots"), UsageError);
    assert.equal(parseCheckpointRef("team-data:before-migration"), "team-data:before-migration");
    for (const bad of ["team-data", "a:b:c", ":b", "a:"]) assert.throws(() => parseCheckpointRef(bad), UsageError, bad);
  });

  it("shellJoin quotes only what the shell would change, and round-trips through sh", async () => {
    assert.equal(shellJoin(["cat", "/workspace/shared/hello.txt"]), "cat /workspace/shared/hello.txt");
    assert.equal(shellJoin(["echo", "a b", "it's", "$HOME", ""]), "echo 'a b' 'it'\\''s' '$HOME' ''");
    const { execFileSync } = await import("node:child_process");
    const words = ["a b", "it's", "$HOME", "*", "", "x;y", "`id`", "\\n", "--", "é"];
    const out = execFileSync("/bin/sh", ["-c", `printf '%s\\n' ${shellJoin(words)}`]).toString();
    assert.deepEqual(out.split("\n").slice(0, -1), words);
  });
});
