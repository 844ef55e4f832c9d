import { z } from "zod";
import {
  ACCESS_MODES,
  FILESYSTEMS,
  VolumeName,
  CairnError,
  CreateVolumeRequest,
  LABEL_KEY_PATTERN,
  ListVolumesQuery,
  ResizeResult,
  UpdateVolumeRequest,
  Volume,
  VolumeList,
  type ErrorCode,
} from "@cairn/protocol";
import type { VolumeService } from "../../volumes/service.js";
import { defineRoute, parseOrThrow, type RouteSpec } from "../route.js";

export const VolumeParams = z.object({
  volume: z.string().min(1).max(128).meta({ description: "Volume id (`vol_…`) or name" }),
});

/**
 * Leasing a volume for work on its files (VolumeService.lease): it is being created or deleted,
 * cairnd is shutting down, or its filesystem failed (a check could not repair it, or the kernel
 * made it read-only under the work).
 */
export const LEASE_ERRORS: ErrorCode[] = ["VOLUME_NOT_FOUND", "VOLUME_NOT_READY", "UNAVAILABLE", "VOLUME_DAMAGED"];

const asList = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);

export function volumeRoutes(volumes: VolumeService): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/volumes",
      operationId: "createVolume",
      summary: "Create a volume",
      description:
        "Creates a sparse filesystem image of the given size; the kernel enforces the size as the quota. With `ifExists: \"return\"` an existing volume of that name is returned with 200.",
      tags: ["volumes"],
      body: CreateVolumeRequest,
      responses: {
        201: { description: "Created", schema: Volume },
        200: { description: "Already existed (ifExists: return)", schema: Volume },
      },
      // fromCheckpoint names a volume and its checkpoint; an existing volume being deleted is not returned.
      errors: ["VOLUME_ALREADY_EXISTS", "REGION_MISMATCH", "POOL_FULL", "CHECKPOINT_NOT_FOUND", ...LEASE_ERRORS],
      handler: async ({ body, principal, reply }) => {
        const { volume, created } = await volumes.create(principal.projectId, body);
        reply.code(created ? 201 : 200);
        return volume;
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/import",
      operationId: "importVolume",
      summary: "Create a volume from an uploaded image or tar archive",
      description:
        "`format=image`: the body is a raw ext4 or XFS image (e.g. a checkpoint export); zero blocks are stored as holes, the filesystem must be clean, the volume takes the image's size. `format=tar`: the body is a tar archive extracted into a new volume of `sizeGb`/`sizeBytes` (default 1 GiB). All or nothing: a failed import leaves no volume.",
      tags: ["volumes"],
      query: z.object({
        name: VolumeName,
        format: z.enum(["image", "tar"]),
        sizeGb: z.coerce.number().optional(),
        sizeBytes: z.coerce.number().optional(),
        filesystem: z.enum(FILESYSTEMS).optional(),
        accessMode: z.enum(ACCESS_MODES).optional(),
      }),
      rawBody: { contentType: "application/octet-stream", description: "The image or the tar archive" },
      responses: { 201: { description: "Created", schema: Volume } },
      // A body that is no image or tar (INVALID_REQUEST), an image over the largest size, files that do not fit in the size given.
      errors: ["INVALID_SIZE", "VOLUME_ALREADY_EXISTS", "POOL_FULL", "UNAVAILABLE", "QUOTA_EXCEEDED"],
      handler: async ({ query, req, principal, reply }) => {
        // Same checks as a JSON create (name, size range), then the streamed import.
        const { format, ...fields } = query;
        const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
        const create = parseOrThrow(CreateVolumeRequest, defined, "query");
        try {
          const volume = await volumes.importVolume(principal.projectId, { ...create, format }, req.raw);
          reply.code(201);
          return volume;
        } catch (err) {
          reply.header("connection", "close");
          throw err;
        }
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes",
      operationId: "listVolumes",
      summary: "List volumes",
      tags: ["volumes"],
      query: ListVolumesQuery,
      responses: { 200: { description: "A page of volumes, ordered by name", schema: VolumeList } },
      errors: ["INVALID_LABEL"],
      handler: async ({ query, principal }) => {
        const labels: Record<string, string> = {};
        for (const l of asList(query.label)) {
          const i = l.indexOf("=");
          const key = i < 0 ? l : l.slice(0, i);
          if (i < 0 || !LABEL_KEY_PATTERN.test(key)) {
            throw new CairnError("INVALID_LABEL", `Label filter "${l}" must be key=value`);
          }
          labels[key] = l.slice(i + 1);
        }
        const fields = asList(query.fields);
        return volumes.list(principal.projectId, {
          labels,
          fields: fields.length ? fields : undefined,
          limit: query.limit ?? 100,
          cursor: query.cursor,
          deleted: query.deleted === "true",
        });
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}",
      operationId: "getVolume",
      summary: "Get a volume by id or name",
      tags: ["volumes"],
      params: VolumeParams,
      responses: { 200: { description: "The volume", schema: Volume } },
      handler: async ({ params, principal }) => volumes.get(principal.projectId, params.volume),
    }),
    defineRoute({
      method: "PATCH",
      path: "/v1/volumes/{volume}",
      operationId: "updateVolume",
      summary: "Update labels or grow a volume",
      description:
        "Growing is online where the filesystem and kernel allow it (XFS), otherwise the volume is grown while unmounted; `resize.mode` says which. Shrinking is refused with 409 VOLUME_SHRINK_NOT_ALLOWED.",
      tags: ["volumes"],
      params: VolumeParams,
      body: UpdateVolumeRequest,
      responses: { 200: { description: "The updated volume and what the resize did", schema: ResizeResult } },
      // A grow: never smaller, not while the volume is busy elsewhere, only with room in the pool; XFS grows mounted.
      errors: ["VOLUME_SHRINK_NOT_ALLOWED", "VOLUME_NOT_READY", "VOLUME_BUSY", "POOL_FULL", "VOLUME_DAMAGED"],
      handler: async ({ params, body, principal }) => volumes.update(principal.projectId, params.volume, body),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/volumes/{volume}",
      operationId: "deleteVolume",
      summary: "Delete a volume and its data",
      description:
        "Deletes the volume's checkpoints too, unless `keepCheckpoints=true`: then the data goes, the checkpoints stay, and the volume is listed with `deleted=true` (status `deleted`, found by id) until its last checkpoint is deleted; fork them with `fromCheckpoint: \"<volume id>:<checkpoint>\"`.",
      tags: ["volumes"],
      params: VolumeParams,
      query: z.object({ keepCheckpoints: z.enum(["true", "false"]).optional() }),
      responses: { 204: { description: "Deleted" } },
      errors: ["VOLUME_BUSY", "VOLUME_NOT_READY"],
      handler: async ({ params, query, principal, reply }) => {
        await volumes.delete(principal.projectId, params.volume, { keepCheckpoints: query.keepCheckpoints === "true" });
        reply.code(204);
        return undefined;
      },
    }),
  ];
}
