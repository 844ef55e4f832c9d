/**
 * Sandboxes from real OCI images: a registry on loopback started here, images built here from a
 * static busybox and pushed with skopeo, pulled by cairnd's own client, unpacked into the pool,
 * run by crun. What a pull must refuse (a tampered blob, a registry that breaks off) leaves nothing.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Cairn, Sandbox } from "@cairn/sdk";
import { codeOf, withCairnd, type CairndProcess } from "./harness.js";
import { buildLayer, busyboxLayer, pushImage, startRegistry, type BuiltLayer, type TestRegistry } from "./registry.js";

describe("images (registry on loopback, crun)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let reg: TestRegistry;
  let base: BuiltLayer;
  const cleanup: Sandbox[] = [];
  /** Entries of a directory of the pool, seen inside cairnd's namespace (where the pool is mounted). */
  const lsPool = async (sub: string) => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile("nsenter", [`--mount=${c.dataDir}/run/mnt.ns`, "--", "ls", "-A", join(c.dataDir, "pool", "images", sub)], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    return out.split("\n").filter(Boolean).sort();
  };

  before(async () => {
    reg = await startRegistry();
    base = await busyboxLayer();
  });
  after(async () => {
    for (const sb of cleanup) await sb.kill().catch(() => undefined);
  });
  withCairnd({ env: { CAIRN_WARM_SANDBOXES: "0", CAIRN_IMAGE_MAX_LAYERS: "3" } }, (s) => ({ c, cairn } = s));
  after(async () => {
    await reg?.stop();
  });
  const track = (sb: Sandbox) => (cleanup.push(sb), sb);

  it("pulls by tag and by digest; a sandbox runs the image with its env, working dir and user", async () => {
    const app = await buildLayer([
      { path: "app/hello.txt", content: "from the image\n", uid: 1000 },
      { path: "app/bin/setuid-tool", content: "#!/bin/sh\necho tool\n", mode: 0o4755 },
    ]);
    const pushed = await pushImage(reg.host, "team/app:1", {
      layers: [base, app],
      config: { Env: ["GREETING=hi", "PATH=/bin"], WorkingDir: "/app", User: "app", Cmd: ["/bin/sh", "-c", "echo started from cmd"], ExposedPorts: { "3000/tcp": {} } },
    });
    const image = await cairn.images.pull(`${reg.proxy}/team/app:1`);
    assert.equal(image.digest, pushed.digest);
    assert.deepEqual(image.refs, [`${reg.proxy}/team/app:1`]);
    assert.equal(image.layers, 2);
    assert.deepEqual(image.config.exposedPorts, ["3000/tcp"]);
    // By digest: the same image, nothing fetched again.
    const before = reg.requests.filter((r) => r.includes("/blobs/")).length;
    const byDigest = await cairn.images.pull(`${reg.proxy}/team/app@${pushed.digest}`);
    assert.equal(byDigest.digest, pushed.digest);
    assert.equal(reg.requests.filter((r) => r.includes("/blobs/")).length, before + 1, "only the config again, no layer");
    assert.ok((await cairn.images.list()).some((i) => i.digest === pushed.digest));
    // Another project sees nothing of it: not in its list, not by name, not by digest, and cannot remove it.
    const { apiKey } = await cairn.projects.create("images-other");
    const other = new Cairn({ url: c.url, apiKey: apiKey.key });
    assert.deepEqual(await other.images.list(), []);
    assert.equal(await codeOf(other.images.get(`${reg.proxy}/team/app:1`)), "IMAGE_NOT_FOUND");
    assert.equal(await codeOf(other.images.get(pushed.digest)), "IMAGE_NOT_FOUND");
    assert.equal(await codeOf(other.images.remove(pushed.digest)), "IMAGE_NOT_FOUND");
    assert.ok((await cairn.images.list()).some((i) => i.digest === pushed.digest), "still there for its project");

    const sb = track(await cairn.sandboxes.create({ image: `${reg.proxy}/team/app:1` }));
    assert.equal(sb.info.template, "image");
    assert.deepEqual(sb.info.image, { ref: `${reg.proxy}/team/app:1`, digest: pushed.digest, exposedPorts: ["3000/tcp"] });
    const r = await sb.exec('echo "$GREETING $(pwd) $(id -u):$(id -g) $HOME"; cat hello.txt; cat /etc/image-release; ls -l /app/bin/setuid-tool');
    assert.equal(r.exitCode, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.equal(lines[0], "hi /app 1000:1000 /home/app");
    assert.equal(lines[1], "from the image");
    assert.equal(lines[2], "busybox test image", "the image's own /etc, not the host's");
    assert.match(lines[3]!, /^-rwxr-xr-x/, "setuid bits are cleared");
    // The image's files belong to the sandbox's ids: its root can change them (they copy up to its disk).
    const w = await sb.exec("echo changed > /app/hello.txt && cat /app/hello.txt && touch /home/app/new && echo ok; touch /etc/new");
    assert.equal(w.stdout, "changed\nok\n", w.stderr);
    assert.match(w.stderr, /Permission denied/, "the image's user is not root: the image's /etc is root's");
    // A timeout ends the command and everything it started, with cairnd's own timeout (an image
    // may have none): the answer comes at once, not after the sleeps.
    const t0 = Date.now();
    const slow = await sb.exec("sleep 30 & sleep 30", { timeoutMs: 1000 });
    assert.equal(slow.exitCode, 137, slow.stderr);
    assert.ok(Date.now() - t0 < 25_000, `a 1 s timeout answered in ${Date.now() - t0} ms`);
    assert.equal((await sb.exec("ps -o comm | grep -c '^sleep' || true")).stdout.trim(), "0", "no sleep left behind");
    // A background process without a command runs the image's cmd.
    const p = await sb.startDefault();
    const done = await p.wait();
    assert.equal(done.exitCode, 0);
    assert.equal(done.stdout, "started from cmd\n");
    // Hibernate and resume keep its layer; a fork starts from a clone of it, on the same image.
    await sb.hibernate();
    await sb.resume();
    assert.equal((await sb.exec("cat /app/hello.txt")).stdout, "changed\n");
    const copy = track(await sb.fork());
    assert.deepEqual(copy.info.image, sb.info.image);
    assert.equal((await copy.exec("cat /app/hello.txt; id -u")).stdout, "changed\n1000\n");
    await copy.kill();
    await sb.kill();
  });

  it("honours whiteouts, opaque directories and zstd layers; multi-platform indexes pick this host's", async () => {
    const l1 = await buildLayer([
      { path: "data/gone.txt", content: "deleted above" },
      { path: "data/kept.txt", content: "kept" },
      { path: "opq/old-a", content: "a" },
      { path: "opq/old-b", content: "b" },
    ]);
    const l2 = await buildLayer([
      { path: "data/.wh.gone.txt", content: "" },
      { path: "opq/.wh..wh..opq", content: "" },
      { path: "opq/new", content: "new" },
    ]);
    const l3 = await buildLayer([{ path: "zst/file", content: "zstd layer\n" }], "zstd");
    const amd = { layers: [base, l1, l2, l3], architecture: "amd64" };
    const arm = { layers: [base, await buildLayer([{ path: "arch", content: "arm64" }])], architecture: "arm64" };
    const pushed = await pushImage(reg.host, "team/multi:2", { platforms: [arm, amd] });
    const image = await cairn.images.pull(`${reg.proxy}/team/multi:2`);
    assert.equal(image.digest, pushed.manifests[1], "the amd64 manifest of the index");
    assert.equal(image.platform, "linux/amd64");
    assert.equal(image.layers, 4, "more than CAIRN_IMAGE_MAX_LAYERS (3): flattened into one tree");
    const sb = track(await cairn.sandboxes.create({ image: `${reg.proxy}/team/multi:2` }));
    const r = await sb.exec("ls /data; echo --; ls /opq; echo --; cat /zst/file; test -e /arch || echo no-arm");
    assert.equal(r.stdout, "kept.txt\n--\nnew\n--\nzstd layer\nno-arm\n", r.stderr);
    await sb.kill();
  });

  it("refuses a tampered blob and a registry that breaks off, leaving nothing", async () => {
    const layersBefore = await lsPool("layers");
    const big = await buildLayer([{ path: "big.bin", content: randomBytes(3 * 1024 * 1024) }]);
    await pushImage(reg.host, "team/cut:1", { layers: [base, big] });
    reg.breakBlobsAfter = 64 * 1024;
    try {
      assert.equal(await codeOf(cairn.images.pull(`${reg.proxy}/team/cut:1`)), "REGISTRY_ERROR");
    } finally {
      reg.breakBlobsAfter = undefined;
    }
    const evil = await buildLayer([{ path: "evil.txt", content: "original content" }]);
    await pushImage(reg.host, "team/evil:1", { layers: [base, evil] });
    // Change the layer's bytes where the registry keeps them: same size, other content.
    const hex = createHash("sha256").update(evil.blob).digest("hex");
    const file = join(reg.storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const bytes = await readFile(file);
    bytes[bytes.length - 10]! ^= 0xff;
    await writeFile(file, bytes);
    assert.equal(await codeOf(cairn.images.pull(`${reg.proxy}/team/evil:1`)), "IMAGE_DIGEST_MISMATCH");
    assert.deepEqual(await lsPool("layers"), layersBefore, "no layer of either was kept");
    assert.deepEqual(await lsPool("tmp"), [], "no work left behind");
    assert.ok(!(await cairn.images.list()).some((i) => i.refs.some((r) => /team\/(cut|evil)/.test(r))));
    assert.equal(await codeOf(cairn.images.pull(`${reg.proxy}/team/none:1`)), "IMAGE_NOT_FOUND");
    assert.equal(await codeOf(cairn.images.pull("127.0.0.1:1/team/none:1")), "REGISTRY_ERROR");
  });

  it("pulls an image ten concurrent creates name once; refuses rm while a sandbox runs it; the seed flow keeps /workspace", async () => {
    const tool = await buildLayer([{ path: "opt/tool/VERSION", content: "1.2\n" }]);
    await pushImage(reg.host, "team/tool:1.2", { layers: [base, tool] });
    const ref = `${reg.proxy}/team/tool:1.2`;
    const seen = reg.requests.length;
    const sbs = await Promise.all(Array.from({ length: 10 }, () => cairn.sandboxes.create({ image: ref }).then(track)));
    const manifestGets = reg.requests.slice(seen).filter((r) => r.startsWith("GET /v2/team/tool/manifests/1.2"));
    assert.equal(manifestGets.length, 1, reg.requests.slice(seen).join("\n"));
    assert.equal(new Set(sbs.map((s) => s.info.image?.digest)).size, 1);
    assert.equal(await codeOf(cairn.images.remove(ref)), "IMAGE_IN_USE");
    await Promise.all(sbs.map((s) => s.kill()));

    // The seed flow: a volume at /workspace outlives the sandbox; the next one from the image sees it.
    const first = track(await cairn.sandboxes.create({ image: ref, volumes: { "/workspace": "seed_project" } }));
    const w = await first.exec("mkdir -p /workspace/node_modules/dep && echo built > /workspace/out.txt && cp /opt/tool/VERSION /workspace/node_modules/dep/");
    assert.equal(w.exitCode, 0, w.stderr);
    await first.kill();
    const second = track(await cairn.sandboxes.create({ image: ref, volumes: { "/workspace": "seed_project" } }));
    const r = await second.exec("cat /workspace/out.txt /workspace/node_modules/dep/VERSION");
    assert.equal(r.stdout, "built\n1.2\n", r.stderr);
    await second.kill();

    const layersBefore = await lsPool("layers");
    const removed = await cairn.images.remove(ref);
    assert.equal(removed.untagged[0], ref);
    const layersAfter = await lsPool("layers");
    assert.equal(layersAfter.length, layersBefore.length - 1, "its own layer went; the shared busybox layer stays");
    assert.equal(await codeOf(cairn.images.get(ref)), "IMAGE_NOT_FOUND");
  });

  it("imports a docker save archive and runs it", async () => {
    const marker = await buildLayer([{ path: "imported", content: "yes\n" }]);
    const pushed = await pushImage(reg.host, "team/imp:1", { layers: [base, marker], config: { Cmd: ["/bin/true"] } }, { keepLayout: true });
    const archive = `${pushed.layout}.tar`;
    after(() => Promise.all([rm(pushed.layout, { recursive: true, force: true }), rm(archive, { force: true })]));
    await new Promise<void>((resolve, reject) =>
      execFile("skopeo", ["copy", "--quiet", `oci:${pushed.layout}:t`, `docker-archive:${archive}:local/imported:3`], (err) => (err ? reject(err) : resolve())),
    );
    const [image] = await cairn.images.import(createReadStream(archive));
    assert.deepEqual(image!.refs, ["local/imported:3"].map((r) => `docker.io/${r}`));
    const sb = track(await cairn.sandboxes.create({ image: "local/imported:3" }));
    assert.equal((await sb.exec("cat /imported")).stdout, "yes\n");
    await sb.kill();
  });
});
