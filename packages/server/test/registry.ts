/**
 * A real registry for the image suites: Debian's `docker-registry` on loopback, in a data dir of
 * its own, a counting proxy in front of it (which can break a layer off half-way), and images
 * built here as OCI layouts from a static busybox and pushed with skopeo. Everything is stopped and
 * deleted by `stop()`.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

const exec = promisify(execFile);
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface TestRegistry {
  /** host:port of the registry itself (pushes). */
  host: string;
  /** host:port of the counting proxy in front of it (pulls). */
  proxy: string;
  /** Where the registry keeps its blobs (to tamper with one). */
  storage: string;
  /** GET paths the proxy forwarded, in order. */
  requests: string[];
  /** Break the next blob responses off after this many bytes (undefined: pass whole). */
  breakBlobsAfter: number | undefined;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-registry-"));
  const port = await freePort();
  const config = [
    "version: 0.1",
    "log: { level: error }",
    `storage: { filesystem: { rootdirectory: ${dir}/data }, delete: { enabled: true } }`,
    `http: { addr: 127.0.0.1:${port} }`,
    "",
  ].join("\n");
  await writeFile(join(dir, "config.yml"), config);
  const child: ChildProcess = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 300 || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const reg: TestRegistry = {
    host: `127.0.0.1:${port}`,
    proxy: "",
    storage: join(dir, "data"),
    requests: [],
    breakBlobsAfter: undefined,
    stop: async () => undefined,
  };
  const proxy: Server = createServer((req, res) => {
    reg.requests.push(`${req.method} ${req.url}`);
    const up = request({ host: "127.0.0.1", port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      const cut = reg.breakBlobsAfter;
      if (cut === undefined || !req.url?.includes("/blobs/") || req.method !== "GET") return void r.pipe(res);
      let sent = 0;
      r.on("data", (d: Buffer) => {
        if (sent + d.length > cut) {
          res.write(d.subarray(0, Math.max(0, cut - sent)));
          res.destroy(); // the registry goes away mid-layer
          r.destroy();
          return;
        }
        sent += d.length;
        res.write(d);
      });
      r.on("end", () => res.end());
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  reg.proxy = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  reg.stop = async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    if (child.exitCode === null) await exited;
    await rm(dir, { recursive: true, force: true });
  };
  return reg;
}

/** A file of a layer: content, a directory, a symlink, or a whiteout/opaque marker by its name. */
export type Entry = { path: string; content?: string | Buffer; dir?: true; link?: string; mode?: number; uid?: number; gid?: number };

export interface BuiltLayer {
  blob: Buffer;
  mediaType: string;
  diffId: string;
}

/** A layer tar of these entries (owned by root unless said), gzip, zstd or plain. */
export async function buildLayer(entries: Entry[], compression: "gzip" | "zstd" | "none" = "gzip"): Promise<BuiltLayer> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-layer-"));
  try {
    const root = join(dir, "root");
    await mkdir(root);
    for (const e of entries) {
      const p = join(root, e.path);
      await mkdir(dirname(p), { recursive: true });
      if (e.dir) await mkdir(p, { recursive: true });
      else if (e.link !== undefined) await symlink(e.link, p);
      else await writeFile(p, e.content ?? "");
      if (e.mode !== undefined) await chmod(p, e.mode);
      if (e.uid !== undefined) await chown(p, e.uid, e.gid ?? e.uid);
    }
    const { stdout } = await exec("tar", ["-c", "-f", "-", "--numeric-owner", "--sort=name", "--mtime=@0", "-C", root, "."], { encoding: "buffer", maxBuffer: 256 * 1024 * 1024 });
    const tar = stdout as unknown as Buffer;
    let blob = tar;
    let mediaType = "application/vnd.oci.image.layer.v1.tar";
    if (compression === "gzip") {
      blob = gzipSync(tar);
      mediaType += "+gzip";
    } else if (compression === "zstd") {
      await writeFile(join(dir, "l.tar"), tar);
      await exec("zstd", ["-q", "-f", join(dir, "l.tar"), "-o", join(dir, "l.tar.zst")]);
      blob = await readFile(join(dir, "l.tar.zst"));
      mediaType += "+zstd";
    }
    return { blob, mediaType, diffId: sha(tar) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The layer every test image starts from: a static busybox as /bin/sh and friends, and an /etc of its own. */
export async function busyboxLayer(): Promise<BuiltLayer> {
  const { stdout } = await exec("/bin/busybox", ["--list"]);
  const busybox = await readFile("/bin/busybox");
  const entries: Entry[] = [
    { path: "bin/busybox", content: busybox, mode: 0o755 },
    ...stdout.split("\n").filter((n) => n && n !== "busybox").map((n) => ({ path: `bin/${n}`, link: "busybox" })),
    { path: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" },
    { path: "etc/group", content: "root:x:0:\napp:x:1000:\n" },
    { path: "etc/image-release", content: "busybox test image\n" },
    { path: "root", dir: true, mode: 0o700 },
    { path: "home/app", dir: true, uid: 1000 },
    { path: "tmp", dir: true, mode: 0o1777 },
  ];
  return buildLayer(entries, "gzip");
}

export interface ImageSpec {
  layers: BuiltLayer[];
  config?: { Env?: string[]; WorkingDir?: string; User?: string; Entrypoint?: string[]; Cmd?: string[]; ExposedPorts?: Record<string, object> };
  architecture?: string;
}

async function putBlob(layout: string, b: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(b);
  await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
  await writeFile(join(layout, "blobs", "sha256", digest.slice(7)), b);
  return { digest, size: b.length };
}

async function putManifest(layout: string, spec: ImageSpec): Promise<{ digest: string; size: number; bytes: Buffer }> {
  const config = {
    architecture: spec.architecture ?? "amd64",
    os: "linux",
    config: spec.config ?? {},
    rootfs: { type: "layers", diff_ids: spec.layers.map((l) => l.diffId) },
  };
  const cfg = await putBlob(layout, Buffer.from(JSON.stringify(config)));
  const layers = [];
  for (const l of spec.layers) layers.push({ mediaType: l.mediaType, ...(await putBlob(layout, l.blob)) });
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg }, layers }),
  );
  return { ...(await putBlob(layout, manifest)), bytes: manifest };
}

/**
 * Write an OCI layout holding one image (or, with `platforms`, an index of one image per
 * platform) tagged `tag`, and push it to the registry as `repo:tag` with skopeo. Returns the
 * digest of what was pushed at the top (the manifest, or the index).
 */
export async function pushImage(
  registry: string,
  repoTag: string,
  spec: ImageSpec | { platforms: ImageSpec[] },
  options: { keepLayout?: boolean } = {},
): Promise<{ digest: string; layout: string; manifests: string[] }> {
  const layout = await mkdtemp(join(tmpdir(), "cairn-oci-"));
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  let top: { digest: string; size: number; mediaType: string };
  const manifests: string[] = [];
  if ("platforms" in spec) {
    const entries = [];
    for (const p of spec.platforms) {
      const m = await putManifest(layout, p);
      manifests.push(m.digest);
      entries.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: m.digest, size: m.size, platform: { os: "linux", architecture: p.architecture ?? "amd64" } });
    }
    const index = await putBlob(layout, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: entries })));
    top = { ...index, mediaType: "application/vnd.oci.image.index.v1+json" };
  } else {
    const m = await putManifest(layout, spec);
    manifests.push(m.digest);
    top = { digest: m.digest, size: m.size, mediaType: "application/vnd.oci.image.manifest.v1+json" };
  }
  await writeFile(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": "t" } }] }));
  try {
    await exec("skopeo", ["copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false", `oci:${layout}:t`, `docker://${registry}/${repoTag}`], { timeout: 120_000 });
  } finally {
    // The caller deletes a layout it keeps (`keepLayout`).
    if (!options.keepLayout) await rm(layout, { recursive: true, force: true });
  }
  return { digest: top.digest, layout, manifests };
}
