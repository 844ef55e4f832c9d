/**
 * The watcher's translation of inotify events, fed by hand: orderings the kernel and a busy machine
 * produce only sometimes (the real watcher is tested against a real cairnd in test/files-watch).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { WatchEvent } from "@cairn/protocol";
import { VolumeWatcher } from "./watch.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function watcher() {
  const root = await mkdtemp(join(tmpdir(), "cairn-watch-"));
  dirs.push(root);
  const w = new VolumeWatcher("vol_test", { path: root, release() {} }, 100, quiet);
  const got: string[] = [];
  w.add(
    {
      path: "/",
      send: (_id: string, e: WatchEvent) => got.push(`${e.type} ${e.path}${e.isDir ? "/" : ""}`),
      reset() {},
      end() {},
    },
    undefined,
  );
  return { root, w, got };
}

describe("watch events", () => {
  it("a file a scan of its new directory found is not created twice when its own event comes late", async () => {
    const { root, w, got } = await watcher();
    await mkdir(join(root, "inbox"));
    await writeFile(join(root, "inbox/a.txt"), "1");
    w.handle(["CREATE", "ISDIR"], "/inbox", "inbox");
    await sleep(200); // the scan of the new directory runs and reports a.txt
    w.handle(["MOVED_TO"], "/inbox/a.txt", "a.txt"); // the atomic write's rename, seen after the scan
    w.handle(["CREATE"], "/inbox/b.txt", "b.txt");
    assert.deepEqual(got, ["create /inbox/", "create /inbox/a.txt", "create /inbox/b.txt"]);
    w.stop();
  });

  it("a scanned file deleted and made again is reported again", async () => {
    const { root, w, got } = await watcher();
    await mkdir(join(root, "d"));
    await writeFile(join(root, "d/f"), "1");
    w.handle(["CREATE", "ISDIR"], "/d", "d");
    await sleep(200);
    w.handle(["DELETE"], "/d/f", "f");
    w.handle(["CREATE"], "/d/f", "f");
    assert.deepEqual(got, ["create /d/", "create /d/f", "delete /d/f", "create /d/f"]);
    w.stop();
  });
});
