import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatAge, pickFields, renderTable, volumeTable } from "./output.js";

describe("tables", () => {
  it("aligns columns, right-aligns numbers, trims trailing blanks", () => {
    const text = renderTable(["NAME", "SIZE", "X"], [["a", "1 GiB", ""], ["long-name", "10 GiB", "y"]], { rightAlign: [false, true, false] });
    assert.equal(text, ["NAME       SIZE    X", "a           1 GiB", "long-name  10 GiB  y", ""].join("\n"));
  });

  it("volume columns follow the chosen fields", () => {
    const text = volumeTable([{ name: "v", sizeBytes: 2 * 1024 ** 3, labels: { team: "ml", env: "prod" } }], ["name", "sizeBytes", "labels"]);
    assert.equal(text, "NAME  SIZE   LABELS\nv     2 GiB  team=ml,env=prod\n");
  });

  it("ages are short", () => {
    const now = Date.parse("2025-01-10T12:00:00Z");
    assert.equal(formatAge("2025-01-10T11:59:30Z", now), "just now");
    assert.equal(formatAge("2025-01-10T11:55:00Z", now), "5m ago");
    assert.equal(formatAge("2025-01-10T09:00:00Z", now), "3h ago");
    assert.equal(formatAge("2025-01-08T12:00:00Z", now), "2d ago");
    assert.equal(formatAge("2024-01-01T00:00:00Z", now), "2024-01-01");
  });

  it("pickFields keeps the requested order and only present keys", () => {
    assert.deepEqual(Object.keys(pickFields({ name: "a", id: "b", status: "ready" }, ["status", "name", "sizeBytes"])), ["status", "name"]);
  });
});

import { unseen } from "./commands/deployments/logs.js";

describe("deployments logs --follow", () => {
  it("prints only what is new, also after the oldest output was dropped", () => {
    assert.equal(unseen("", "a\nb\n"), "a\nb\n");
    assert.equal(unseen("a\n", "a\nb\n"), "b\n");
    assert.equal(unseen("a\nb\n", "a\nb\n"), "");
    // The log keeps its last bytes only: "a\n" fell off the front.
    assert.equal(unseen("a\nb\nc\n", "b\nc\nd\n"), "d\n");
  });
});
