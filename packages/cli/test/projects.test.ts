/** `cairn project …` and `cairn key …` against a real cairnd: what an operator does without curl. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";
import { cli, json, ok } from "./helpers.js";

describe("cairn project and cairn key", () => {
  let cairnd: CairndProcess;
  const { cairn } = cli(() => cairnd);
  before(async () => {
    cairnd = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } });
  });
  after(async () => {
    await cairnd?.destroy();
  });

  it("creates a project whose key sees only that project; lists, adds and revokes keys", async () => {
    const created = await cairn(["project", "create", "shop"]);
    ok(created);
    const shopKey = created.out.trim();
    assert.match(shopKey, /^cairn_\S+$/, "piped: the key alone");
    assert.ok(json<{ name: string }[]>(await cairn(["project", "list"])).some((p) => p.name === "shop"));

    // The new key works, for its project only.
    ok(await cairn(["volume", "create", "shop-data"], { env: { CAIRN_API_KEY: shopKey } }));
    assert.deepEqual(json<{ name: string }[]>(await cairn(["volume", "list"], { env: { CAIRN_API_KEY: shopKey } })).map((v) => v.name), ["shop-data"]);
    assert.equal((await cairn(["volume", "get", "shop-data"])).code, 3, "the default project does not see it");

    const ci = await cairn(["key", "create", "shop", "--name", "ci"]);
    ok(ci);
    const ciKey = ci.out.trim();
    const keys = json<{ id: string; name: string }[]>(await cairn(["key", "list", "shop"]));
    assert.deepEqual(keys.map((k) => k.name).sort(), ["ci", "default"]);
    assert.doesNotMatch(JSON.stringify(keys), /cairn_/, "listing never shows a secret");
    ok(await cairn(["volume", "list"], { env: { CAIRN_API_KEY: ciKey } }));

    const ciId = keys.find((k) => k.name === "ci")!.id;
    ok(await cairn(["key", "revoke", "shop", ciId]));
    const refused = await cairn(["volume", "list"], { env: { CAIRN_API_KEY: ciKey } });
    assert.equal(refused.code, 5, `a revoked key is refused: ${refused.stderr}`);
    ok(await cairn(["volume", "list"], { env: { CAIRN_API_KEY: shopKey } }));
    const again = await cairn(["key", "revoke", "shop", ciId]);
    assert.equal(again.code, 3);
    assert.match(again.stderr, /has no key/);
    assert.equal((await cairn(["key", "list", "nope"])).code, 3);
    // A project key is not an admin key.
    assert.equal((await cairn(["project", "list"], { env: { CAIRN_API_KEY: shopKey } })).code, 5);
  });
});
