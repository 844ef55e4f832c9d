/** The error handler, in process: what a client gets back when a route fails after reading the body. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import Fastify from "fastify";
import { CairnError, PROBLEM_CONTENT_TYPE } from "@cairn/protocol";
import { setProblemHandler } from "./app.js";

async function appWith(handler: () => Promise<unknown>) {
  const app = Fastify({ logger: false });
  setProblemHandler(app);
  app.post("/r", async (req) => {
    assert.ok(req.body !== undefined, "the body was read");
    return handler();
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  return { app, url: `http://127.0.0.1:${port}/r` };
}

const post = (url: string) => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ a: 1 }) });

describe("problem answers", () => {
  it("an unexpected error after the body was read is a 500 problem, not an empty reply", async (t) => {
    const { app, url } = await appWith(async () => {
      throw new Error("ENOTDIR: not a directory, mkdir '/secret/host/path'");
    });
    t.after(() => app.close());
    const res = await post(url);
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("content-type")?.split(";")[0], PROBLEM_CONTENT_TYPE);
    const body = (await res.json()) as { code: string; detail: string; requestId: string };
    assert.equal(body.code, "INTERNAL");
    assert.doesNotMatch(body.detail, /secret|ENOTDIR/, "the cause is logged, never sent");
    assert.ok(body.requestId);
  });

  it("a CairnError after the body was read keeps its status and code", async (t) => {
    const { app, url } = await appWith(async () => {
      throw new CairnError("PATH_ALREADY_EXISTS", "/f exists");
    });
    t.after(() => app.close());
    const res = await post(url);
    assert.equal(res.status, 409);
    assert.equal(((await res.json()) as { code: string }).code, "PATH_ALREADY_EXISTS");
  });
});
