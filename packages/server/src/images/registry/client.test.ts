import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CairnError } from "@cairn/protocol";
import { parseReference } from "../reference.js";
import { loadCredentials, parseChallenge } from "./auth.js";
import { parseMirrors, RegistryClient } from "./client.js";

const sha = (b: string | Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: CairnError) => e.code);

/** A registry of the distribution API in a few lines: bearer tokens from its own realm, for user:secret only. */
function fakeRegistry(): { server: Server; hits: string[]; docs: Map<string, { body: string; type: string }>; blobs: Map<string, string> } {
  const hits: string[] = [];
  const docs = new Map<string, { body: string; type: string }>();
  const blobs = new Map<string, string>();
  const server = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    hits.push(url.pathname);
    const host = req.headers.host!;
    if (url.pathname === "/token") {
      if (req.headers.authorization !== `Basic ${Buffer.from("user:secret").toString("base64")}`) return void res.writeHead(401).end('{"details":"bad credentials"}');
      assert.equal(url.searchParams.get("scope"), "repository:team/app:pull");
      assert.equal(url.searchParams.get("service"), "fake");
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "t0k" }));
    }
    if (req.headers.authorization !== "Bearer t0k") {
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://${host}/token",service="fake",scope="repository:team/app:pull"`, "content-type": "application/json" });
      return void res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    }
    const m = /^\/v2\/team\/app\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    const doc = m?.[1] === "manifests" ? docs.get(m[2]!) : undefined;
    if (doc) return void res.writeHead(200, { "content-type": doc.type }).end(doc.body);
    const blob = m?.[1] === "blobs" ? blobs.get(m[2]!) : undefined;
    if (blob !== undefined) return void res.writeHead(200).end(blob);
    res.writeHead(404, { "content-type": "application/json" }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
  });
  return { server, hits, docs, blobs };
}

describe("registry client (a fake registry on loopback)", () => {
  const reg = fakeRegistry();
  let host: string;
  let amd64: string;
  before(async () => {
    await new Promise<void>((r) => reg.server.listen(0, "127.0.0.1", r));
    host = `127.0.0.1:${(reg.server.address() as AddressInfo).port}`;
    const layer = "layer bytes";
    reg.blobs.set(sha(layer), layer);
    const manifest = (arch: string) => {
      const config = JSON.stringify({ architecture: arch, os: "linux", config: { Env: ["A=1"] }, rootfs: { type: "layers", diff_ids: [sha(layer)] } });
      reg.blobs.set(sha(config), config);
      const body = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length }, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.length }] });
      reg.docs.set(sha(body), { body, type: "application/vnd.oci.image.manifest.v1+json" });
      return { digest: sha(body), size: body.length };
    };
    const arm = manifest("arm64");
    const amd = manifest("amd64");
    amd64 = amd.digest;
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...arm, platform: { os: "linux", architecture: "arm64" } },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...amd, platform: { os: "linux", architecture: "amd64" } },
      ],
    });
    reg.docs.set("1", { body: index, type: "application/vnd.oci.image.index.v1+json" });
    reg.docs.set("liar", { body: index.replace("arm64", "arm65"), type: "application/vnd.oci.image.index.v1+json" });
  });
  after(() => new Promise((r) => reg.server.close(r)));

  const client = (options: ConstructorParameters<typeof RegistryClient>[0] = {}) =>
    new RegistryClient({ credentials: { [host]: { username: "user", password: "secret" } }, platform: { os: "linux", architecture: "amd64" }, ...options });

  it("gets a token from the realm the 401 names, and resolves an index to this platform's manifest", async () => {
    const r = await client().resolve(parseReference(`${host}/team/app:1`));
    assert.equal(r.digest, amd64);
    assert.equal(r.platform, "linux/amd64");
    assert.deepEqual(r.config.config?.Env, ["A=1"]);
    assert.equal(reg.hits.filter((h) => h === "/token").length, 1, "one token for the whole resolve");
    const blob = await client().blob(parseReference(`${host}/team/app:1`), r.layers[0]!);
    let text = "";
    for await (const c of blob) text += c;
    assert.equal(text, "layer bytes");
  });

  it("says what the registry said: no credentials, wrong ones, an unknown tag, an unreachable host", async () => {
    const none = new RegistryClient({ platform: { os: "linux", architecture: "amd64" } });
    const e1 = await none.resolve(parseReference(`${host}/team/app:1`)).catch((e: CairnError) => e);
    assert.equal((e1 as CairnError).code, "REGISTRY_ERROR");
    const wrong = client({ credentials: { [host]: { username: "user", password: "nope" } } });
    const e2 = (await wrong.resolve(parseReference(`${host}/team/app:1`)).catch((e: CairnError) => e)) as CairnError;
    assert.equal(e2.code, "REGISTRY_ERROR");
    assert.match(e2.message, /bad credentials/);
    const e3 = (await client().resolve(parseReference(`${host}/team/app:nope`)).catch((e: CairnError) => e)) as CairnError;
    assert.equal(e3.code, "IMAGE_NOT_FOUND");
    assert.match(e3.message, /manifest unknown/);
    assert.equal(await codeOf(client().resolve(parseReference("127.0.0.1:1/team/app:1"))), "REGISTRY_ERROR");
    assert.equal(await codeOf(client({ platform: { os: "linux", architecture: "s390x" } }).resolve(parseReference(`${host}/team/app:1`))), "IMAGE_NOT_FOUND");
  });

  it("checks a manifest fetched by digest against the digest", async () => {
    // The registry answers other bytes (the index) when asked for the amd64 manifest's digest.
    const real = reg.docs.get(amd64)!;
    reg.docs.set(amd64, reg.docs.get("1")!);
    try {
      assert.equal(await codeOf(client().resolve(parseReference(`${host}/team/app@${amd64}`))), "IMAGE_DIGEST_MISMATCH");
    } finally {
      reg.docs.set(amd64, real);
    }
  });

  it("tries mirrors first and falls back to the registry", async () => {
    const mirrors = parseMirrors(`${host}=http://127.0.0.1:1`);
    assert.deepEqual(mirrors, { [host]: ["http://127.0.0.1:1"] });
    const r = await client({ mirrors }).resolve(parseReference(`${host}/team/app:1`));
    assert.equal(r.digest, amd64);
    assert.throws(() => parseMirrors("docker.io"), /host=url/);
  });

  it("reads credentials from a Docker config and challenges from headers", () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull"'), {
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/node:pull" },
    });
    assert.deepEqual(loadCredentials(undefined), {});
  });
});
