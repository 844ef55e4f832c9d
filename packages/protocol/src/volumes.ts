import { z } from "zod";
import { GiB } from "./sizes.js";

export const VOLUME_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const VOLUME_NAME_MESSAGE =
  "Volume name must be lowercase alphanumeric, underscores or hyphens, 1-63 characters, starting with a letter or digit";

/**
 * The shape of every id cairnd hands out (`vol_`, `cp_`, `sbx_`… and 20 base32 characters).
 * Names never take it: a lookup by a string that could be an id or a name must find one thing.
 */
export const ID_PATTERN = /^[a-z]+_[0-9a-hjkmnp-tv-z]{20}$/;
export const NAME_IS_ID_MESSAGE = "has the shape of an id (a prefix, an underscore and 20 characters); pick a name that ids cannot take";

export const DEFAULT_SIZE_BYTES = 1 * GiB;
export const MIN_SIZE_GB = 1;
export const MAX_SIZE_GB = 100;

export const ACCESS_MODES = ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];
export const FILESYSTEMS = ["ext4", "xfs"] as const;
export type Filesystem = (typeof FILESYSTEMS)[number];
/** `deleted`: the volume's data is gone but its checkpoints were kept (delete with keepCheckpoints). */
export const VOLUME_STATUSES = ["creating", "ready", "resizing", "restoring", "deleting", "deleted"] as const;
export type VolumeStatus = (typeof VOLUME_STATUSES)[number];

/** Label keys and values follow Kubernetes' shape: short, printable, no `=` or `,`. */
export const LABEL_KEY_PATTERN = /^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,61}[a-zA-Z0-9])?$/;
export const LABEL_VALUE_PATTERN = /^([a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?)?$/;
export const MAX_LABELS = 64;

export const VolumeName = z
  .string()
  .regex(VOLUME_NAME_PATTERN, { error: VOLUME_NAME_MESSAGE })
  .refine((name) => !ID_PATTERN.test(name), { error: `Volume name ${NAME_IS_ID_MESSAGE}` })
  .meta({ description: "Unique per project. " + VOLUME_NAME_MESSAGE + ".", example: "team-data" });

export const Labels = z
  .record(
    z.string().regex(LABEL_KEY_PATTERN, {
      error: "Label keys are 1-63 letters, digits, '.', '_', '-' or '/', starting and ending with a letter or digit",
    }),
    z.string().regex(LABEL_VALUE_PATTERN, {
      error: "Label values are up to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
    }),
  )
  .refine((l) => Object.keys(l).length <= MAX_LABELS, { error: `At most ${MAX_LABELS} labels per volume` })
  .meta({ description: "Free-form key/value labels, filterable on list.", example: { team: "ml" } });

export const Volume = z
  .object({
    id: z.string().meta({ example: "vol_3k9x0c2m7q4v8b1n5t6z" }),
    name: z.string(),
    projectId: z.string(),
    region: z.string(),
    sizeBytes: z.int().meta({ description: "Capacity; the kernel enforces it as the filesystem size." }),
    usedBytes: z.int().meta({ description: "Space used, as the filesystem reports it (cached while unmounted)." }),
    filesystem: z.enum(FILESYSTEMS),
    accessMode: z.enum(ACCESS_MODES),
    status: z.enum(VOLUME_STATUSES),
    labels: z.record(z.string(), z.string()),
    createdAt: z.string().meta({ description: "RFC 3339 timestamp" }),
    updatedAt: z.string(),
  })
  .meta({ id: "Volume" });
export type Volume = z.infer<typeof Volume>;
export const VOLUME_FIELDS = Object.keys(Volume.shape) as (keyof Volume)[];

export const CreateVolumeRequest = z
  .object({
    name: VolumeName,
    sizeGb: z
      .number()
      .int({ error: `Size must be ${MIN_SIZE_GB}-${MAX_SIZE_GB} GB` })
      .min(MIN_SIZE_GB, { error: `Size must be ${MIN_SIZE_GB}-${MAX_SIZE_GB} GB` })
      .max(MAX_SIZE_GB, { error: `Size must be ${MIN_SIZE_GB}-${MAX_SIZE_GB} GB` })
      .optional()
      .meta({ description: "Size in GiB (1-100 by default). Give this or sizeBytes; the default is 1 GiB." }),
    sizeBytes: z
      .number()
      .int({ error: "sizeBytes must be a whole number of bytes" })
      .positive({ error: "sizeBytes must be positive" })
      .optional()
      .meta({ description: "Exact size in bytes, rounded up to a whole MiB. Between the filesystem minimum and the server maximum." }),
    accessMode: z.enum(ACCESS_MODES).optional().meta({ description: "Default ReadWriteOnce." }),
    filesystem: z.enum(FILESYSTEMS).optional().meta({ description: "Default ext4." }),
    labels: Labels.optional(),
    region: z.string().optional().meta({ description: "Must be the region this cairnd serves (default: that region)." }),
    fromCheckpoint: z
      .string()
      .regex(/^[^:]+:[^:]+$/, { error: "fromCheckpoint is volume:checkpoint, e.g. team-data:before-migration" })
      .optional()
      .meta({ description: "Fork: the new volume starts as a copy-on-write copy of this checkpoint (`volume:checkpoint`, ids or names)." }),
    ifExists: z
      .enum(["fail", "return"])
      .optional()
      .meta({ description: "`return` gives back an existing volume of that name with 200 instead of a 409." }),
  })
  .strict()
  .meta({ id: "CreateVolumeRequest" });
export type CreateVolumeRequest = z.infer<typeof CreateVolumeRequest>;

export const UpdateVolumeRequest = z
  .object({
    labels: Labels.optional().meta({ description: "Replaces all labels." }),
    sizeBytes: z.number().int().positive().optional().meta({ description: "Grow to this size. Shrinking is refused." }),
    sizeGb: z.number().int().positive().optional().meta({ description: "Grow to this size in GiB." }),
  })
  .strict()
  .meta({ id: "UpdateVolumeRequest" });
export type UpdateVolumeRequest = z.infer<typeof UpdateVolumeRequest>;

export const ResizeResult = z
  .object({
    volume: Volume,
    resize: z
      .object({
        mode: z.enum(["online", "offline", "none"]).meta({
          description:
            "`online`: grown while mounted; `offline`: grown while unmounted (the filesystem could not grow online); `none`: already that size.",
        }),
        previousSizeBytes: z.int(),
      })
      .nullable(),
  })
  .meta({ id: "UpdateVolumeResult" });
export type ResizeResult = z.infer<typeof ResizeResult>;

export const ListVolumesQuery = z.object({
  label: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .meta({ description: "Filter `key=value`; repeat for AND." }),
  fields: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .meta({ description: "Return only these fields (comma-separated or repeated)." }),
  limit: z.coerce.number().int().min(1).max(1000).optional().meta({ description: "Page size, default 100." }),
  cursor: z.string().optional().meta({ description: "`nextCursor` of the previous page." }),
  deleted: z
    .enum(["true", "false"])
    .optional()
    .meta({ description: "`true`: list deleted volumes whose checkpoints were kept (fork them with fromCheckpoint)." }),
});

export const VolumeList = z
  .object({
    items: z.array(Volume.partial()),
    nextCursor: z.string().nullable(),
  })
  .meta({ id: "VolumeList" });
export type VolumeList = { items: Partial<Volume>[]; nextCursor: string | null };

export const WriteFileResult = z
  .object({
    path: z.string(),
    size: z.int(),
    etag: z.string(),
    created: z.boolean(),
  })
  .meta({ id: "WriteFileResult" });
export type WriteFileResult = z.infer<typeof WriteFileResult>;
