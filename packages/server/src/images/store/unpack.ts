/**
 * One layer, from its blob to a directory the overlay can stack. The blob is spooled to a file
 * while its digest is computed and checked, so nothing unpacks bytes that are not the layer's;
 * then it is decompressed (gzip in-process, zstd by the system's `zstd`: Node 20's zlib has
 * none), its uncompressed digest (the diff id) checked, and extracted by GNU tar into a private
 * directory. tar refuses `..` and strips leading `/` from names and link targets, and extracts
 * symlinks that point up or out only after everything else, so no member is written through one.
 *
 * Then the tree is made safe and overlay-shaped, by the rules every archive in cairn follows
 * (files/archive.ts): devices, fifos and sockets are dropped, setuid and setgid bits cleared;
 * owners are kept (a sandbox sees its image's owners through an idmapped mount), those beyond
 * a sandbox's 65536 ids become nobody; no extended attribute is taken from a layer. OCI
 * whiteouts become overlay whiteouts: `.wh.<name>` a 0/0 character device named `<name>`,
 * `.wh..wh..opq` the opaque mark on its directory (both the trusted. and the user. attribute).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, type Dirent } from "node:fs";
import { chmod, lchown, lstat, open, opendir, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Duplex, PassThrough, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { CairnError } from "@cairn/protocol";
import { run, saysNoSpace } from "../../host/exec.js";
import { MOUNT_HELPER } from "../../host/native.js";

/** Ids a sandbox's user namespace maps: owners beyond become nobody. */
const ID_LIMIT = 65536;
const NOBODY = 65534;

const isNoSpace = (err: unknown) => ["ENOSPC", "EDQUOT"].includes((err as NodeJS.ErrnoException)?.code ?? "");
export const poolFull = (cause?: unknown) => new CairnError("POOL_FULL", "The storage pool has no room for this image; nothing of it was kept", { cause });

/**
 * Copy a blob to `file`, checking its size and digest: IMAGE_DIGEST_MISMATCH when they are not
 * what the manifest says; REGISTRY_ERROR when the stream breaks off.
 */
export async function spoolBlob(stream: Readable, file: string, expect: { digest: string; size?: number | undefined }, onBytes?: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const hash = createHash("sha256");
  let n = 0;
  const tap = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      n += chunk.length;
      if (expect.size !== undefined && n > expect.size) {
        throw new CairnError("IMAGE_DIGEST_MISMATCH", `Layer ${expect.digest} is longer than the ${expect.size} bytes its manifest says: nothing was stored`);
      }
      hash.update(chunk);
      onBytes?.(chunk.length);
      yield chunk;
    }
  };
  try {
    await pipeline(stream, tap, createWriteStream(file, { flags: "wx" }), ...(signal ? [{ signal }] : []));
  } catch (err) {
    if (err instanceof CairnError) throw err;
    if (isNoSpace(err)) throw poolFull(err);
    if (signal?.aborted) throw err;
    throw new CairnError("REGISTRY_ERROR", `The download of layer ${expect.digest} broke off after ${n} bytes: ${(err as Error).message}`, { cause: err });
  }
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== expect.digest) {
    throw new CairnError("IMAGE_DIGEST_MISMATCH", `Layer ${expect.digest} arrived as ${got}${expect.size !== undefined && n !== expect.size ? ` (${n} of ${expect.size} bytes)` : ""}: nothing was stored`);
  }
}

/** gzip, zstd or a plain tar, by the blob's first bytes (media types lie; magic numbers do not). */
async function decompressorFor(file: string): Promise<{ stream: Duplex; done: () => Promise<void> }> {
  const fh = await open(file, "r");
  const head = Buffer.alloc(4);
  await fh.read(head, 0, 4, 0).finally(() => fh.close());
  if (head[0] === 0x1f && head[1] === 0x8b) return { stream: createGunzip(), done: async () => undefined };
  if (head.readUInt32LE(0) === 0xfd2fb528) {
    const child = spawn("zstd", ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => {
      child.on("error", () => resolve(-1));
      child.on("close", resolve);
    });
    return {
      stream: Duplex.from({ writable: child.stdin, readable: child.stdout }),
      done: async () => {
        const code = await exited;
        if (code !== 0) throw new CairnError("INVALID_IMAGE", `A zstd layer could not be decompressed: ${stderr.trim() || `zstd exited with ${code}`}`);
      },
    };
  }
  return { stream: new PassThrough(), done: async () => undefined };
}

/** Feed a stream to tar, and keep reading (and hashing) what tar leaves unread after its end marker. */
async function feed(source: AsyncIterable<Buffer>, stdin: Writable, hash: ReturnType<typeof createHash>, count: { bytes: number }): Promise<void> {
  let open_ = true;
  stdin.on("error", () => (open_ = false));
  for await (const chunk of source) {
    hash.update(chunk);
    count.bytes += chunk.length;
    if (open_ && !stdin.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stdin.off("drain", done);
          stdin.off("close", done);
          resolve();
        };
        stdin.on("drain", done);
        stdin.on("close", done);
      });
    }
  }
  if (open_) stdin.end();
}

/** Extract a verified blob into `dir` (empty), checking the diff id. Returns the uncompressed size. */
export async function extractLayer(file: string, dir: string, diffId: string): Promise<number> {
  const { stream: decompress, done } = await decompressorFor(file);
  // As root, tar restores owners and modes; xattrs, ACLs and SELinux labels are never taken.
  const tar = spawn("tar", ["-x", "-f", "-", "-C", dir, "--numeric-owner", "--same-owner", "--same-permissions", "--no-xattrs", "--no-acls", "--no-selinux", "--delay-directory-restore"], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  let stderr = "";
  tar.stderr.on("data", (d) => {
    if (stderr.length < 8000) stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => {
    tar.on("error", () => resolve(-1));
    tar.on("close", resolve);
  });
  const hash = createHash("sha256");
  const count = { bytes: 0 };
  let streamError: unknown;
  try {
    await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), decompress, (source: AsyncIterable<Buffer>) => feed(source, tar.stdin, hash, count));
  } catch (err) {
    streamError = err;
    tar.stdin.destroy();
  }
  const code = await exited;
  await done();
  if (streamError) throw new CairnError("INVALID_IMAGE", `A layer could not be decompressed: ${(streamError as Error).message}`, { cause: streamError });
  if (code !== 0) {
    if (saysNoSpace(stderr)) throw poolFull();
    const line = stderr.trim().split("\n").find((l) => !/Exiting with failure status/.test(l)) ?? `tar exited with ${code}`;
    throw new CairnError("INVALID_IMAGE", `Layer ${diffId} could not be unpacked: ${line.slice(0, 300)}`);
  }
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== diffId) throw new CairnError("IMAGE_DIGEST_MISMATCH", `Layer ${diffId} unpacks to ${got}: nothing was stored`);
  return count.bytes;
}

/** Turn an extracted layer into an overlay lower layer, safely (see the top of this file). */
export async function shapeLayer(dir: string): Promise<void> {
  const whiteouts: string[] = [];
  const opaque: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const handle = await opendir(path, { bufferSize: 256 });
    const subdirs: string[] = [];
    for await (const d of handle as AsyncIterable<Dirent>) {
      const p = join(path, d.name);
      if (d.name === ".wh..wh..opq") {
        await unlink(p);
        opaque.push(path);
        continue;
      }
      if (d.name.startsWith(".wh.")) {
        await rm(p, { recursive: true, force: true });
        const name = d.name.slice(4);
        // `.wh..wh.*` are aufs' own records (hard link stores), not deletions.
        if (name !== "" && !name.startsWith(".wh.") && name !== "." && name !== "..") {
          await rm(join(path, name), { recursive: true, force: true });
          whiteouts.push(join(path, name));
        }
        continue;
      }
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue; // a whiteout of this layer removed it a moment ago
      if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink()) {
        await unlink(p);
        continue;
      }
      if (st.uid >= ID_LIMIT || st.gid >= ID_LIMIT) await lchown(p, st.uid >= ID_LIMIT ? NOBODY : st.uid, st.gid >= ID_LIMIT ? NOBODY : st.gid);
      if (!st.isSymbolicLink() && st.mode & 0o6000) await chmod(p, st.mode & 0o1777);
      if (st.isDirectory()) subdirs.push(p);
    }
    for (const s of subdirs) if ((await lstat(s).catch(() => undefined))?.isDirectory()) await walk(s);
  };
  await walk(dir);
  const root = await lstat(dir);
  if (root.mode & 0o6000) await chmod(dir, root.mode & 0o1777);
  for (let i = 0; i < whiteouts.length; i += 200) {
    await run("sh", ["-c", 'for f; do mknod -- "$f" c 0 0 || exit 1; done', "sh", ...whiteouts.slice(i, i + 200)]);
  }
  for (const d of opaque) await run(MOUNT_HELPER, ["opaque", d]);
}
