import { PassThrough } from "node:stream";
import { z } from "zod";
import { CairnError, Image, ImageRef, PullImageRequest, type ErrorCode, type PullEvent } from "@cairn/protocol";
import type { ImageService } from "../../images/service.js";
import { defineRoute, type RouteSpec } from "../route.js";

/** What fetching an image can answer: bad reference, unknown image, a registry that fails or lies, a full pool. */
const PULL_ERRORS: ErrorCode[] = ["INVALID_IMAGE", "IMAGE_NOT_FOUND", "REGISTRY_ERROR", "IMAGE_DIGEST_MISMATCH", "POOL_FULL"];

const ImageParams = z.object({ image: z.string().min(1).max(600).meta({ description: "A reference (`node:20`, URL-encoded) or a digest (`sha256:…`)" }) });

export function imageRoutes(images: ImageService): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/images/pull",
      operationId: "pullImage",
      summary: "Pull an image from its registry",
      description:
        "Resolves the reference to this host's platform (an index or manifest list picks linux/<arch>), fetches the layers not here yet, checks each against its digest and unpacks it once into the layer store. Registries on loopback are plain HTTP. Concurrent pulls of one reference are one pull. With `progress: true` the answer is NDJSON: `resolved`, `layer` events, then `image` or `error` (a problem's code, status and detail).",
      tags: ["images"],
      body: PullImageRequest,
      responses: {
        200: { description: "The image (JSON), or NDJSON progress events when `progress` is true", schema: Image },
      },
      errors: PULL_ERRORS,
      handler: async ({ body, reply, principal }) => {
        if (!body.progress) return images.pull(principal.projectId, body.ref);
        const out = new PassThrough();
        const send = (e: PullEvent) => out.write(JSON.stringify(e) + "\n");
        reply.header("content-type", "application/x-ndjson");
        void images
          .pull(principal.projectId, body.ref, { onEvent: (e) => e.type !== "image" && send(e) })
          .then((image) => send({ type: "image", image }))
          .catch((err: unknown) => {
            const ce = err instanceof CairnError ? err : new CairnError("INTERNAL", "Something went wrong on the server while pulling");
            send({ type: "error", error: { code: ce.code, status: ce.status, detail: ce.message } });
          })
          .finally(() => out.end());
        return reply.send(out);
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/images/import",
      operationId: "importImage",
      summary: "Import images from an archive (docker save, or an OCI image layout as tar or tar.gz)",
      description: "The archive's own names are kept; `name` names the image of an archive holding one. Layers are checked against their digests like a pull's.",
      tags: ["images"],
      query: z.object({ name: ImageRef.optional() }),
      rawBody: { contentType: "application/x-tar", description: "The archive" },
      responses: { 201: { description: "Imported", schema: z.object({ items: z.array(Image) }) } },
      errors: ["INVALID_ARCHIVE", "INVALID_IMAGE", "IMAGE_DIGEST_MISMATCH", "POOL_FULL"],
      handler: async ({ query, req, reply, principal }) => {
        const items = await images.importArchive(principal.projectId, req.raw, query.name !== undefined ? { name: query.name } : {});
        reply.code(201);
        return { items };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/images",
      operationId: "listImages",
      summary: "List the project's images (those it pulled or imported), newest first",
      tags: ["images"],
      responses: { 200: { description: "Images", schema: z.object({ items: z.array(Image) }) } },
      handler: async ({ principal }) => ({ items: images.list(principal.projectId) }),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/images/{image}",
      operationId: "getImage",
      summary: "Get an image by reference or digest",
      tags: ["images"],
      params: ImageParams,
      responses: { 200: { description: "The image", schema: Image } },
      errors: ["INVALID_IMAGE", "IMAGE_NOT_FOUND"],
      handler: async ({ params, principal }) => images.get(principal.projectId, params.image),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/images/{image}",
      operationId: "removeImage",
      summary: "Remove an image (or one of its names)",
      description:
        "A name of an image with several names just goes; the last name, or a digest, removes the image: 409 IMAGE_IN_USE while a sandbox runs it. Layers no other image uses are deleted.",
      tags: ["images"],
      params: ImageParams,
      responses: { 200: { description: "Removed", schema: z.object({ untagged: z.array(z.string()), deleted: z.string().nullable() }) } },
      errors: ["INVALID_IMAGE", "IMAGE_NOT_FOUND", "IMAGE_IN_USE"],
      handler: async ({ params, principal }) => images.remove(principal.projectId, params.image),
    }),
  ];
}
