import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError, resolveConfig, withMallocTunables, withV8Flags } from "./config.js";
import { SERVER_HELP } from "./main.js";

describe("config", () => {
  it("documents every variable it reads, in --help and in the README", () => {
    const source = readFileSync(fileURLToPath(new URL("../../src/config.ts", import.meta.url)), "utf8");
    const readme = readFileSync(fileURLToPath(new URL("../../../../README.md", import.meta.url)), "utf8");
    const vars = [...new Set(source.match(/CAIRN_[A-Z_]+/g))].filter((v) => v !== "CAIRN_DATA_DIR" && v !== "CAIRN_LISTEN" && v !== "CAIRN_REGION");
    assert.ok(vars.length > 10);
    for (const v of vars) {
      assert.ok(SERVER_HELP.includes(v), `cairn server --help names ${v}`);
      assert.ok(readme.includes(`\`${v}\``), `README names ${v}`);
    }
  });

  it("takes option, then environment, then default", () => {
    const d = resolveConfig({}, {});
    assert.equal(d.dataDir, "/var/lib/cairn");
    assert.equal(d.host, "127.0.0.1");
    assert.equal(d.port, 7070);
    assert.equal(d.region, "local");
    assert.deepEqual(d.database, { kind: "sqlite", path: "/var/lib/cairn/cairn.db" });
    assert.ok(Object.isFrozen(d));
    const e = resolveConfig({}, { CAIRN_LISTEN: "0.0.0.0:8080", CAIRN_REGION: "iad", CAIRN_DATABASE_URL: "postgres://u@h/db" });
    assert.equal(e.port, 8080);
    assert.equal(e.region, "iad");
    assert.equal(e.database.kind, "postgres");
    const o = resolveConfig({ listen: "127.0.0.1:9" }, { CAIRN_LISTEN: "0.0.0.0:8080" });
    assert.equal(o.port, 9);
  });
  it("says what is wrong with bad values", () => {
    assert.throws(() => resolveConfig({ listen: "nope" }, {}), ConfigError);
    assert.throws(() => resolveConfig({ region: "Bad Region" }, {}), /--region/);
    assert.throws(() => resolveConfig({}, { CAIRN_POOL_SIZE: "lots" }), /CAIRN_POOL_SIZE/);
  });
});

describe("withMallocTunables", () => {
  it("adds cairnd's malloc settings and keeps the operator's", () => {
    assert.equal(withMallocTunables(undefined), "glibc.malloc.trim_threshold=134217728:glibc.malloc.mmap_threshold=33554432");
    assert.equal(
      withMallocTunables("glibc.malloc.trim_threshold=1:glibc.cpu.x86_shstk=off"),
      "glibc.malloc.trim_threshold=1:glibc.cpu.x86_shstk=off:glibc.malloc.mmap_threshold=33554432",
    );
  });
});

describe("withV8Flags", () => {
  it("sweeps array buffers in the scavenge and exposes gc, unless the operator said otherwise", () => {
    const ours = ["--no-concurrent-array-buffer-sweeping", "--expose-gc"];
    assert.deepEqual(withV8Flags([], undefined), ours);
    assert.deepEqual(withV8Flags(["--max-old-space-size=512"], "--trace-warnings"), ["--max-old-space-size=512", ...ours]);
    assert.deepEqual(withV8Flags(["--concurrent-array-buffer-sweeping"], undefined), ["--concurrent-array-buffer-sweeping", "--expose-gc"]);
    assert.deepEqual(withV8Flags([], "--single-threaded-gc"), ["--expose-gc"]);
    assert.deepEqual(withV8Flags([], " --no-concurrent_array_buffer_sweeping "), ["--expose-gc"]);
    assert.deepEqual(withV8Flags(["--expose-gc"], undefined), ["--expose-gc", "--no-concurrent-array-buffer-sweeping"]);
    assert.deepEqual(withV8Flags([], "--no-expose-gc --single-threaded-gc"), []);
  });
});
