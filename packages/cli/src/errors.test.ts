import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CairnError, ERROR_CODES, type ErrorCode } from "@cairn/protocol";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT, EXIT_CODES, HINTS, describeError, exitCodeFor, exitCodeHelp, reportError, UsageError } from "./errors.js";

describe("exit codes", () => {
  it("the table names every error code of the protocol", () => {
    const missing = Object.keys(ERROR_CODES).filter((c) => !Object.hasOwn(EXIT_CODES, c));
    assert.deepEqual(missing, [], "decide an exit code for these in src/errors.ts");
  });

  it("follows the documented groups", () => {
    const expected: Record<number, (code: ErrorCode, status: number) => boolean> = {
      [EXIT.USAGE]: (c, s) => c.startsWith("INVALID_") || (s >= 400 && s < 500 && ![401, 403, 404, 409, 412].includes(s)),
      [EXIT.NOT_FOUND]: (c) => c.endsWith("NOT_FOUND"),
      [EXIT.CONFLICT]: (c, s) => s === 409 || s === 412,
      [EXIT.AUTH]: (c) => c === "UNAUTHORIZED" || c === "FORBIDDEN",
      [EXIT.FULL]: (c) => c === "QUOTA_EXCEEDED" || c === "POOL_FULL",
      [EXIT.UNAVAILABLE]: (c, s) => s === 503 || s === 502,
      [EXIT.INTERNAL]: (c) => c === "INTERNAL",
    };
    for (const [code, { status }] of Object.entries(ERROR_CODES) as [ErrorCode, { status: number }][]) {
      const exit = exitCodeFor(code);
      assert.ok(expected[exit]?.(code, status), `${code} (${status}) → ${exit}`);
    }
    assert.equal(exitCodeFor("VOLUME_SHRINK_NOT_ALLOWED"), 4);
    assert.equal(exitCodeFor("INVALID_RANGE"), 2, "416 is a usage error");
    assert.equal(exitCodeFor("PRECONDITION_FAILED"), 4);
  });

  it("help shows every code once", () => {
    const help = exitCodeHelp();
    for (const code of Object.keys(EXIT_CODES)) assert.equal(help.split(new RegExp(`\\b${code}\\b`)).length, 2, code);
  });
});

describe("error output", () => {
  const sink = (isTTY: boolean) => {
    let text = "";
    return { stream: { isTTY, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream, text: () => text };
  };

  it("JSON when stderr is not a terminal", () => {
    const s = sink(false);
    const exit = reportError(new CairnError("VOLUME_NOT_FOUND", 'Volume "x" not found', { requestId: "req_1" }), { url: "u", json: false, stderr: s.stream });
    assert.equal(exit, 3);
    const body = JSON.parse(s.text()) as { error: Record<string, unknown> };
    assert.deepEqual(body.error, {
      code: "VOLUME_NOT_FOUND",
      detail: 'Volume "x" not found',
      status: 404,
      requestId: "req_1",
      hint: "`cairn volume list` shows your volumes",
    });
  });

  it("text with a hint on a terminal; --json still forces JSON", () => {
    process.env.NO_COLOR = "1";
    const s = sink(true);
    assert.equal(reportError(new CairnError("UNAVAILABLE", "Cannot reach"), { url: "http://h:1", json: false, stderr: s.stream }), 7);
    assert.equal(s.text(), "error: Cannot reach\nhint: is cairnd running at http://h:1? start one with `cairn server`, or point CAIRN_URL / --url at it\n");
    const j = sink(true);
    reportError(new UsageError("bad"), { url: "u", json: true, stderr: j.stream });
    assert.deepEqual(JSON.parse(j.text()), { error: { code: "USAGE", detail: "bad" } });
  });

  it("anything else is INTERNAL, exit 1", () => {
    const r = describeError(new TypeError("boom"), { url: "u" });
    assert.equal(r.code, "INTERNAL");
    assert.equal(r.exit, 1);
  });
});

describe("hints", () => {
  /** Every long flag some command of this CLI declares (read from the sources: what --help shows). */
  function declaredFlags(): Set<string> {
    const flags = new Set<string>();
    const dir = fileURLToPath(new URL("../../src", import.meta.url));
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) {
          for (const m of readFileSync(p, "utf8").matchAll(/(?:option|Option)\(\s*"(?:-\w, )?(--[a-z][a-z-]*)/g)) flags.add(m[1]!);
        }
      }
    };
    walk(dir);
    return flags;
  }

  it("name only flags that exist", () => {
    const flags = declaredFlags();
    assert.ok(flags.has("--overwrite") && flags.has("--if-missing"), [...flags].join(" "));
    const contexts = ["cairn volume mv", "cairn checkpoint restore", "cairn sandbox detach", "cairn volume create"];
    for (const [code, hint] of Object.entries(HINTS)) {
      for (const command of contexts) {
        for (const detail of ["Size must be at least 16 MiB for ext4", "anything"]) {
          const text = hint!({ url: "http://x", command }, detail) ?? "";
          for (const [flag] of text.matchAll(/--[a-z][a-z-]*/g)) assert.ok(flags.has(flag), `${code}'s hint names ${flag}, which no command has`);
          assert.doesNotMatch(text, /\w+: true/, `${code}'s hint speaks API, not CLI`);
        }
      }
    }
  });

  it("calls a size out of bounds out of bounds, not misspelt", () => {
    const tooSmall = describeError(new CairnError("INVALID_SIZE", "Size must be at least 16 MiB for ext4"), { url: "http://x" });
    assert.doesNotMatch(tooSmall.hint ?? "", /look like/);
    const misspelt = describeError(new CairnError("INVALID_SIZE", "Invalid size \"ten gigs\""), { url: "http://x" });
    assert.match(misspelt.hint ?? "", /look like/);
  });

  it("tells `cairn volume mv` about --overwrite when the target exists", () => {
    const r = describeError(new CairnError("PATH_ALREADY_EXISTS", "/b already exists"), { url: "http://x", command: "cairn volume mv" });
    assert.match(r.hint ?? "", /--overwrite/);
  });
});
