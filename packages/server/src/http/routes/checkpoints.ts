import { z } from "zod";
import { Checkpoint, CheckpointList, CreateCheckpointRequest, Volume } from "@cairn/protocol";
import type { CheckpointService } from "../../checkpoints/service.js";
import type { VolumeService } from "../../volumes/service.js";
import { defineRoute, type RouteSpec } from "../route.js";
import { VolumeParams } from "./volumes.js";

const CheckpointParams = VolumeParams.extend({
  checkpoint: z.string().min(1).max(128).meta({ description: "Checkpoint id (`cp_…`) or name" }),
});

export function checkpointRoutes(
  checkpoints: CheckpointService,
  volumes: VolumeService,
  detachWriters: (volumeId: string) => Promise<number>,
): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/checkpoints",
      operationId: "createCheckpoint",
      summary: "Take a checkpoint (copy-on-write, milliseconds)",
      description:
        "Freezes the filesystem for the clone only (writers pause for milliseconds), reflinks the image, thaws. The checkpoint is crash-consistent and costs no space until the volume's blocks diverge. `keep` deletes the oldest checkpoints beyond that count.",
      tags: ["checkpoints"],
      params: VolumeParams,
      body: CreateCheckpointRequest,
      fieldCodes: { name: "INVALID_CHECKPOINT_NAME" },
      responses: { 201: { description: "Created", schema: Checkpoint } },
      errors: ["VOLUME_NOT_READY", "CHECKPOINT_LIMIT_REACHED", "CHECKPOINT_ALREADY_EXISTS", "POOL_FULL"],
      handler: async ({ params, body, principal, reply }) => {
        const cp = await checkpoints.create(principal.projectId, params.volume, body ?? {});
        reply.code(201);
        return cp;
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/checkpoints",
      operationId: "listCheckpoints",
      summary: "List a volume's checkpoints, oldest first",
      tags: ["checkpoints"],
      params: VolumeParams,
      responses: { 200: { description: "Checkpoints", schema: CheckpointList } },
      handler: async ({ params, principal }) => ({ items: await checkpoints.list(principal.projectId, params.volume) }),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/checkpoints/{checkpoint}",
      operationId: "getCheckpoint",
      summary: "Get a checkpoint by id or name",
      tags: ["checkpoints"],
      params: CheckpointParams,
      responses: { 200: { description: "The checkpoint", schema: Checkpoint } },
      handler: async ({ params, principal }) => checkpoints.get(principal.projectId, params.volume, params.checkpoint),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/volumes/{volume}/checkpoints/{checkpoint}",
      operationId: "deleteCheckpoint",
      summary: "Delete a checkpoint",
      tags: ["checkpoints"],
      params: CheckpointParams,
      responses: { 204: { description: "Deleted" } },
      handler: async ({ params, principal, reply }) => {
        await checkpoints.delete(principal.projectId, params.volume, params.checkpoint);
        reply.code(204);
        return undefined;
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/checkpoints/{checkpoint}/export",
      operationId: "exportCheckpoint",
      summary: "Download a checkpoint as a raw filesystem image or a tar of its files",
      description:
        "`format=image` (default) streams the raw ext4/XFS image (write it sparse; `cairn checkpoint export` does); `format=tar` streams a tar of the files, read from a read-only mount of the checkpoint. Either one can be uploaded to `POST /v1/volumes/import` on any cairnd.",
      tags: ["checkpoints"],
      params: CheckpointParams,
      query: z.object({ format: z.enum(["image", "tar"]).optional() }),
      responses: {
        200: { description: "The image or the archive", contentType: "application/octet-stream" },
      },
      handler: async ({ params, query, principal, reply }) => {
        if ((query.format ?? "image") === "image") {
          const img = await checkpoints.exportImage(principal.projectId, params.volume, params.checkpoint);
          const { open } = await import("node:fs/promises");
          const fh = await open(img.path, "r");
          reply
            .header("content-type", "application/octet-stream")
            .header("content-length", String(img.size))
            .header("content-disposition", `attachment; filename="${img.name}"`);
          return reply.send(fh.createReadStream({ highWaterMark: 1024 * 1024 }));
        }
        const tar = await checkpoints.exportTar(principal.projectId, params.volume, params.checkpoint);
        reply.raw.on("close", tar.done);
        reply.header("content-type", "application/x-tar").header("content-disposition", `attachment; filename="${tar.name}"`);
        return reply.send(tar.stream);
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/checkpoints/{checkpoint}/restore",
      operationId: "restoreCheckpoint",
      summary: "Restore a volume in place from one of its checkpoints",
      description:
        "Atomic: the volume is exactly the checkpoint afterwards, or untouched if the restore fails. Refused with 409 VOLUME_BUSY while a sandbox has it attached read-write, unless `detach=true`, which first detaches it from those sandboxes (their attachments end released). The volume takes the checkpoint's size.",
      tags: ["checkpoints"],
      params: CheckpointParams,
      query: z.object({ detach: z.enum(["true", "false"]).optional() }),
      responses: { 200: { description: "The restored volume", schema: Volume } },
      // With detach, the sandboxes' mounts are taken away first; one moved inside its sandbox stays.
      errors: ["VOLUME_BUSY", "VOLUME_NOT_READY", "MOUNT_CHANGED"],
      handler: async ({ params, query, principal }) => {
        await checkpoints.restore(principal.projectId, params.volume, params.checkpoint, query.detach === "true" ? { detachWriters } : {});
        return volumes.get(principal.projectId, params.volume);
      },
    }),
  ];
}
