import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CairnError } from "@cairn/protocol";
import { collect, parseFields, parseLabels, parseRange, sizeFrom } from "./args.js";
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
});
