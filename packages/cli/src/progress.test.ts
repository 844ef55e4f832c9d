/** The progress bar on a terminal, and the totals it is given for directories. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { progress } from "./progress.js";
import { treeSize } from "./transfer.js";

function fakeTty(): NodeJS.WriteStream & { text: () => string } {
  let out = "";
  return { isTTY: true, columns: 80, write: (s: string) => ((out += s), true), text: () => out } as unknown as NodeJS.WriteStream & { text: () => string };
}

describe("progress bar", () => {
  it("is erased before the final line and never drawn after it", () => {
    const tty = fakeTty();
    const bar = progress("uploading x", 1000, tty);
    bar.setTotal(1000);
    bar.update(500);
    bar.done();
    tty.write("✓ done\n");
    bar.update(1000); // a late progress callback
    bar.done();
    const text = tty.text();
    assert.ok(text.endsWith("\r\u001b[2K✓ done\n"), JSON.stringify(text.slice(-40)));
  });

  it("writes nothing when the stream is not a terminal", () => {
    let out = "";
    const pipe = { isTTY: false, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
    const bar = progress("x", 10, pipe);
    bar.update(5);
    bar.done();
    assert.equal(out, "");
  });

  it("is given a directory's exact tar size: it ends at 100%, not short of it or past it", async () => {
    const d = mkdtempSync(join(tmpdir(), "cairn-tarsize-"));
    try {
      mkdirSync(join(d, "sub", "deeper"), { recursive: true });
      mkdirSync(join(d, "empty"));
      for (const [i, size] of [0, 1, 511, 512, 513, 100_000, 3 * 10240 + 7].entries()) writeFileSync(join(d, `f${i}`), Buffer.alloc(size, 7));
      // Names around tar's 100-byte limit (with "./sub/" in front), a long directory name, links.
      for (const n of [95, 98, 99, 100, 101, 150]) writeFileSync(join(d, "sub", "x".repeat(n - 6)), "abc");
      mkdirSync(join(d, "d".repeat(99)));
      symlinkSync("short-target", join(d, "link"));
      symlinkSync("t".repeat(120), join(d, "long-link"));
      linkSync(join(d, "f5"), join(d, "hard"));
      for (const [blocks, recordBytes] of [["1", 512], ["20", 10240]] as const) {
        // -b 1: records of one block, so the sizes must agree to the byte before any padding.
        const real = execFileSync("tar", ["-c", "-b", blocks, "-f", "-", "-C", d, "."], { maxBuffer: 1 << 26 }).length;
        assert.equal((await treeSize(d, { recordBytes })).bytes, real, `records of ${recordBytes}`);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
