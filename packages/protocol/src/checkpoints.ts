import { z } from "zod";
import { ID_PATTERN, Labels, NAME_IS_ID_MESSAGE, VOLUME_NAME_PATTERN } from "./volumes.js";

export const CheckpointName = z
  .string()
  .regex(VOLUME_NAME_PATTERN, {
    error: "Checkpoint name must be lowercase alphanumeric, underscores or hyphens, 1-63 characters, starting with a letter or digit",
  })
  .refine((name) => !ID_PATTERN.test(name), { error: `Checkpoint name ${NAME_IS_ID_MESSAGE}` })
  .meta({ example: "before-migration" });

export const Checkpoint = z
  .object({
    id: z.string().meta({ example: "cp_3k9x0c2m7q4v8b1n5t6z" }),
    name: z.string(),
    volumeId: z.string(),
    labels: z.record(z.string(), z.string()),
    sizeBytes: z.int().meta({ description: "Size of the volume when the checkpoint was taken." }),
    allocatedBytes: z.int().meta({ description: "Space the checkpoint image references (shared or not)." }),
    exclusiveBytes: z.int().meta({ description: "Space only this checkpoint holds: freed when it is deleted." }),
    frozenMs: z.number().meta({ description: "How long writers were paused while the checkpoint was taken." }),
    createdAt: z.string(),
  })
  .meta({ id: "Checkpoint" });
export type Checkpoint = z.infer<typeof Checkpoint>;

export const CreateCheckpointRequest = z
  .object({
    name: CheckpointName.optional().meta({ description: "Unique per volume; default cp-<time>." }),
    labels: Labels.optional(),
    keep: z.int().min(1).max(10000).optional().meta({ description: "Retention: after this checkpoint, delete the oldest so that at most `keep` remain." }),
  })
  .strict()
  .meta({ id: "CreateCheckpointRequest" });
export type CreateCheckpointRequest = z.infer<typeof CreateCheckpointRequest>;

export const CheckpointList = z.object({ items: z.array(Checkpoint) }).meta({ id: "CheckpointList" });
export type CheckpointList = z.infer<typeof CheckpointList>;
