/**
 * The error handler, in process: what a client gets back when a route fails after reading the
 * body, and how a code the route does not declare is caught.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import Fastify from "fastify";
import { z } from "zod";
import { CairnError, PROBLEM_CONTENT_TYPE } from "@cairn/protocol";
import { setProblemHandler } from "./app.js";
import { defineRoute, registerRoute } from "./route.js";
import { declaredErrors, type UndeclaredError } from "./route-errors.js";

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

describe("a problem code the route does not declare", () => {
  it("is answered as it is, and told with the operation that answered it", async (t) => {
    const told: UndeclaredError[] = [];
    const app = Fastify({ logger: false });
    setProblemHandler(app, (e) => told.push(e));
    const probe = defineRoute({
      method: "GET",
      path: "/probe/{volume}",
      operationId: "probe",
      summary: "Fails with the code it is asked for",
      tags: ["test"],
      auth: false,
      params: z.object({ volume: z.enum(["VOLUME_NOT_FOUND", "VOLUME_BUSY", "QUOTA_EXCEEDED"]) }),
      responses: { 204: { description: "Never" } },
      errors: ["VOLUME_BUSY"],
      handler: async ({ params }) => {
        throw new CairnError(params.volume, "as asked");
      },
    });
    registerRoute(app, probe, async () => assert.fail("no key is asked for"), declaredErrors(probe));
    t.after(() => app.close());
    const codes = [];
    for (const code of ["VOLUME_NOT_FOUND", "VOLUME_BUSY", "QUOTA_EXCEEDED", "bad"]) {
      const res = await app.inject({ url: `/probe/${code}` });
      codes.push(`${res.statusCode} ${(res.json() as { code: string }).code}`);
    }
    assert.deepEqual(codes, ["404 VOLUME_NOT_FOUND", "409 VOLUME_BUSY", "507 QUOTA_EXCEEDED", "400 INVALID_REQUEST"]);
    // {volume} implies VOLUME_NOT_FOUND, a params schema INVALID_REQUEST; QUOTA_EXCEEDED is declared nowhere.
    assert.deepEqual(told.map(({ operationId, code, method, url }) => ({ operationId, code, method, url })), [
      { operationId: "probe", code: "QUOTA_EXCEEDED", method: "GET", url: "/probe/QUOTA_EXCEEDED" },
    ]);
    assert.match(told[0]!.requestId, /./);
  });
});
