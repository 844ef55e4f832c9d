/**
 * Keys and projects through the HTTP stack (on fakes): who may call what, and one project never
 * sees another's volumes, checkpoints or sandboxes.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { useFakeCairnd, codeOf } from "../testing/node-test.js";

const raw = { "content-type": "application/octet-stream" };

describe("API keys and projects", () => {
  const cairnd = useFakeCairnd();
  let alphaKey = "";
  let betaKey = "";
  let alphaVolumeId = "";
  let alphaSandboxId = "";

  before(async () => {
    const c = cairnd();
    const project = async (name: string) => {
      const r = await c.request({ method: "POST", url: "/v1/projects", payload: { name } });
      assert.equal(r.statusCode, 201, r.body);
      const key = (JSON.parse(r.body) as { apiKey: { key: string } }).apiKey.key;
      assert.ok(key.startsWith("cairn_"));
      return key;
    };
    alphaKey = await project("alpha");
    betaKey = await project("beta");
    const v = await c.request({ method: "POST", url: "/v1/volumes", payload: { name: "secret" }, key: alphaKey });
    assert.equal(v.statusCode, 201, v.body);
    alphaVolumeId = (JSON.parse(v.body) as { id: string }).id;
    await c.request({ method: "PUT", url: "/v1/volumes/secret/files/content?path=/token", payload: "alpha's secret", headers: raw, key: alphaKey });
    await c.request({ method: "POST", url: "/v1/volumes/secret/checkpoints", payload: { name: "snap" }, key: alphaKey });
    const s = await c.request({ method: "POST", url: "/v1/sandboxes", payload: {}, key: alphaKey });
    alphaSandboxId = (JSON.parse(s.body) as { id: string }).id;
  });

  it("refuses a request without a key: 401 with how to send one", async () => {
    const r = await cairnd().request({ method: "GET", url: "/v1/volumes", key: null });
    assert.equal(codeOf(r), "UNAUTHORIZED");
    assert.match(r.body, /Authorization: Bearer/);
  });

  for (const [what, header] of [
    ["a wrong key", "Bearer cairn_wrong"],
    ["an empty bearer", "Bearer "],
    ["another scheme", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"],
    ["a key with spaces inside", "Bearer a b c"],
    ["a very long key", `Bearer ${"x".repeat(10_000)}`],
  ] as const) {
    it(`refuses ${what} with 401`, async () => {
      const r = await cairnd().request({ method: "GET", url: "/v1/volumes", key: null, headers: { authorization: header } });
      assert.equal(codeOf(r), "UNAUTHORIZED");
    });
  }

  it("answers health and the OpenAPI document without a key", async () => {
    assert.equal((await cairnd().request({ method: "GET", url: "/healthz", key: null })).statusCode, 200);
    assert.equal((await cairnd().request({ method: "GET", url: "/openapi.json", key: null })).statusCode, 200);
  });

  it("keeps project admin to the admin key", async () => {
    const r = await cairnd().request({ method: "POST", url: "/v1/projects", payload: { name: "gamma" }, key: alphaKey });
    assert.equal(codeOf(r), "FORBIDDEN");
    assert.equal(codeOf(await cairnd().request({ method: "GET", url: "/v1/projects", key: betaKey })), "FORBIDDEN");
  });

  it("refuses a project key that names another project", async () => {
    const r = await cairnd().request({ method: "GET", url: "/v1/volumes", key: betaKey, headers: { "x-cairn-project": "alpha" } });
    assert.equal(codeOf(r), "FORBIDDEN");
  });

  it("never lists another project's volumes", async () => {
    const r = await cairnd().request({ method: "GET", url: "/v1/volumes", key: betaKey });
    assert.equal(r.statusCode, 200);
    assert.deepEqual((JSON.parse(r.body) as { items: unknown[] }).items, []);
  });

  for (const [what, method, url] of [
    ["get by name", "GET", "/v1/volumes/secret"],
    ["get by id", "GET", "/v1/volumes/{vol}"],
    ["read a file", "GET", "/v1/volumes/{vol}/files/content?path=/token"],
    ["list files", "GET", "/v1/volumes/{vol}/files/list?path=/"],
    ["search", "GET", "/v1/volumes/{vol}/files/search?query=secret"],
    ["list checkpoints", "GET", "/v1/volumes/{vol}/checkpoints"],
    ["delete it", "DELETE", "/v1/volumes/{vol}"],
    ["restore its checkpoint", "POST", "/v1/volumes/{vol}/checkpoints/snap/restore"],
  ] as const) {
    it(`hides a volume of another project: ${what} is VOLUME_NOT_FOUND`, async () => {
      const r = await cairnd().request({ method, url: url.replace("{vol}", alphaVolumeId), key: betaKey });
      assert.equal(codeOf(r), "VOLUME_NOT_FOUND");
      assert.doesNotMatch(r.body, /alpha's secret/);
    });
  }

  it("refuses to mount another project's volume into a sandbox", async () => {
    const r = await cairnd().request({ method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: alphaVolumeId, mountPath: "/steal" }] }, key: betaKey });
    assert.equal(codeOf(r), "VOLUME_NOT_FOUND");
  });

  it("refuses to fork another project's checkpoint", async () => {
    const r = await cairnd().request({ method: "POST", url: "/v1/volumes", payload: { name: "stolen", fromCheckpoint: `${alphaVolumeId}:snap` }, key: betaKey });
    assert.equal(codeOf(r), "VOLUME_NOT_FOUND");
  });

  for (const [what, method, url, payload] of [
    ["get", "GET", "/v1/sandboxes/{sbx}", undefined],
    ["exec", "POST", "/v1/sandboxes/{sbx}/exec", { command: "echo hi" }],
    ["kill", "DELETE", "/v1/sandboxes/{sbx}", undefined],
    ["fork", "POST", "/v1/sandboxes/{sbx}/fork", undefined],
  ] as const) {
    it(`hides a sandbox of another project: ${what} is SANDBOX_NOT_FOUND`, async () => {
      const r = await cairnd().request({ method, url: url.replace("{sbx}", alphaSandboxId), payload, key: betaKey });
      assert.equal(codeOf(r), "SANDBOX_NOT_FOUND");
    });
  }

  it("a revoked key is refused at its next request", async () => {
    const c = cairnd();
    const res = await c.request({ method: "POST", url: "/v1/projects/alpha/keys", payload: { name: "ci" } });
    assert.equal(res.statusCode, 201, res.body);
    const made = JSON.parse(res.body) as { id: string; key: string };
    assert.ok(made.key.startsWith("cairn_"));
    assert.equal((await c.request({ method: "GET", url: "/v1/volumes", key: made.key })).statusCode, 200);
    const revoked = await c.request({ method: "DELETE", url: `/v1/projects/alpha/keys/${made.id}` });
    assert.ok(revoked.statusCode < 300, revoked.body);
    assert.equal(codeOf(await c.request({ method: "GET", url: "/v1/volumes", key: made.key })), "UNAUTHORIZED");
  });

  it("lists a project's keys without the secrets", async () => {
    const r = await cairnd().request({ method: "GET", url: "/v1/projects/alpha/keys" });
    assert.equal(r.statusCode, 200);
    assert.ok(!r.body.includes(alphaKey), "a key listing never contains a key");
  });
});
