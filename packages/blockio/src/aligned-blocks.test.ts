/** The process-wide pool of 4 MiB aligned blocks that file reads and writes share. No root needed. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BLOCK_BYTES, giveBackBlock, takeBlock } from "./aligned-blocks.js";

describe("aligned blocks", () => {
  it("keeps at most four idle blocks and hands them out again, to readers and writers alike", () => {
    const taken = Array.from({ length: 6 }, () => takeBlock());
    assert.ok(taken.every((b) => b.length === BLOCK_BYTES));
    assert.equal(new Set(taken).size, 6);
    for (const b of taken) giveBackBlock(b);
    const again = Array.from({ length: 6 }, () => takeBlock());
    const reused = again.filter((b) => taken.includes(b));
    assert.equal(reused.length, 4, "the pool kept four of the six blocks");
    // Each block is memory of its own, not views of one.
    again[0]!.fill(7);
    assert.ok(again.slice(1).every((b) => b[0] !== 7 && b[BLOCK_BYTES - 1] !== 7));
    for (const b of again) giveBackBlock(b);
  });
});
