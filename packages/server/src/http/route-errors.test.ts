/** What a route's declaration implies about the problem codes it answers with. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import { defineRoute } from "./route.js";
import { declaredErrors } from "./route-errors.js";

const base = { operationId: "x", summary: "x", tags: ["x"], responses: { 200: { description: "ok" } }, handler: async () => undefined };

describe("declared error codes", () => {
  it("are INTERNAL alone for a public GET without input", () => {
    assert.deepEqual(declaredErrors(defineRoute({ ...base, method: "GET", path: "/healthz", auth: false })), ["INTERNAL"]);
  });

  it("follow from the key, the admin key, the body, its fields and the path's resources", () => {
    const spec = defineRoute({
      ...base,
      method: "POST",
      path: "/v1/volumes/{volume}/checkpoints/{checkpoint}",
      adminOnly: true,
      body: z.object({ name: z.string(), labels: z.record(z.string(), z.string()), other: z.string() }).optional(),
      fieldCodes: { name: "INVALID_CHECKPOINT_NAME" },
      errors: ["VOLUME_BUSY"],
    });
    assert.deepEqual(declaredErrors(spec).sort(), [
      "CHECKPOINT_NOT_FOUND",
      "FORBIDDEN",
      "INTERNAL",
      "INVALID_CHECKPOINT_NAME",
      "INVALID_LABEL",
      "INVALID_REQUEST",
      "PAYLOAD_TOO_LARGE",
      "PROJECT_NOT_FOUND",
      "UNAUTHORIZED",
      "UNSUPPORTED_MEDIA_TYPE",
      "VOLUME_BUSY",
      "VOLUME_NOT_FOUND",
    ]);
  });

  it("leave out the parse errors of a streamed body, which no parser reads", () => {
    const codes = declaredErrors(defineRoute({ ...base, method: "PUT", path: "/up", auth: false, rawBody: { contentType: "application/octet-stream", description: "bytes" } }));
    assert.deepEqual(codes, ["INTERNAL"]);
  });
});
