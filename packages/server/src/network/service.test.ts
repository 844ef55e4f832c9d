/** The sandbox service's use of the network port, on fakes: who gets an interface, when it goes, what a fork and a resume get. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "@cairn/protocol";
import { fakeCairnd, type FakeCairnd } from "../testing/fake-cairnd.js";

describe("sandbox networks (fakes)", () => {
  let f: FakeCairnd;
  before(async () => (f = await fakeCairnd()));
  after(() => f.close());

  const create = async (body: object) => {
    const r = await f.request({ method: "POST", url: "/v1/sandboxes", payload: body });
    return { status: r.statusCode, body: r.json() as Sandbox & { code?: string } };
  };

  it("only a sandbox with a network is connected; its address is reported while it runs", async () => {
    const none = await create({});
    assert.equal(none.status, 201);
    assert.deepEqual(none.body.network, { egress: false, allow: [], deny: [], address: null });
    assert.equal(f.network.connected.has(none.body.id), false);
    const out = await create({ network: { egress: true, allow: ["10.0.0.5:5432"] } });
    assert.equal(out.status, 201);
    assert.deepEqual(out.body.network, { egress: true, allow: ["10.0.0.5/32:5432"], deny: [], address: f.network.connected.get(out.body.id) });
  });

  it("hibernate and kill disconnect, resume connects again, a fork gets the policy and its own address", async () => {
    const { body: sb } = await create({ network: "egress" });
    const hib = (await f.request({ method: "POST", url: `/v1/sandboxes/${sb.id}/hibernate` })).json() as Sandbox;
    assert.equal(hib.network.address, null);
    assert.equal(f.network.connected.has(sb.id), false);
    const res = (await f.request({ method: "POST", url: `/v1/sandboxes/${sb.id}/resume` })).json() as Sandbox;
    assert.equal(res.network.address, f.network.connected.get(sb.id));
    const fork = (await f.request({ method: "POST", url: `/v1/sandboxes/${sb.id}/fork`, payload: {} })).json() as Sandbox;
    assert.equal(fork.network.egress, true);
    assert.ok(fork.network.address && fork.network.address !== res.network.address);
    for (const id of [sb.id, fork.id]) {
      await f.request({ method: "DELETE", url: `/v1/sandboxes/${id}` });
      assert.equal(f.network.connected.has(id), false);
    }
  });

  it("a bad rule is a 400 before anything starts; the operator's default applies when the create names none", async () => {
    const bad = await create({ network: { egress: true, deny: ["10.0.0.0/40"] } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, "INVALID_NETWORK_POLICY");
    const g = await fakeCairnd({ sandboxNetwork: "egress" });
    try {
      const r = await g.request({ method: "POST", url: "/v1/sandboxes", payload: {} });
      assert.equal((r.json() as Sandbox).network.egress, true);
    } finally {
      await g.close();
    }
  });

  it("exposed ports: a private one has a token in its URL, a public one none; unexposing an unknown port is PORT_NOT_FOUND", async () => {
    const { body: sb } = await create({});
    const priv = await f.request({ method: "POST", url: `/v1/sandboxes/${sb.id}/ports`, payload: { port: 3000 } });
    assert.equal(priv.statusCode, 201);
    const p = priv.json() as { url: string; token: string };
    assert.equal(new URL(p.url).hostname, `3000-${sb.id.replace("_", "-")}.localhost`);
    assert.equal(new URL(p.url).searchParams.get("cairn_token"), p.token);
    const pub = (await f.request({ method: "POST", url: `/v1/sandboxes/${sb.id}/ports`, payload: { port: 3000, public: true } })).json() as { token: null; url: string };
    assert.equal(pub.token, null);
    const gone = await f.request({ method: "DELETE", url: `/v1/sandboxes/${sb.id}/ports/4000` });
    assert.equal(gone.statusCode, 404);
    assert.equal((gone.json() as { code: string }).code, "PORT_NOT_FOUND");
    assert.equal((await f.request({ method: "POST", url: `/v1/sandboxes/${sb.id}/ports`, payload: { port: 70000 } })).statusCode, 400);
  });
});
