import { z } from "zod";

/** A reference as users write it: `node:20`, `ghcr.io/org/tool:1.2`, `127.0.0.1:5000/team/tool@sha256:…`. */
export const ImageRef = z.string().min(1).max(512).meta({ description: "An image reference: `node:20` (docker.io), `host[:port]/repo[:tag][@digest]`", example: "node:20" });

export const Image = z
  .object({
    digest: z.string().meta({ description: "The manifest's digest for this host's platform: what sandboxes pin", example: "sha256:…" }),
    refs: z.array(z.string()).meta({ description: "Full references that name this image here (`docker.io/library/node:20`)" }),
    platform: z.string().meta({ example: "linux/amd64" }),
    layers: z.int().meta({ description: "How many layers it has (more than the store stacks are flattened into one)" }),
    sizeBytes: z.number().meta({ description: "Unpacked size of its layers" }),
    config: z
      .object({
        env: z.array(z.string()),
        workingDir: z.string(),
        user: z.string(),
        entrypoint: z.array(z.string()).nullable(),
        cmd: z.array(z.string()).nullable(),
        exposedPorts: z.array(z.string()).meta({ description: "Ports the image says it listens on (`3000/tcp`)" }),
      })
      .meta({ description: "What the image asks of the process that runs it; sandboxes honour env, workingDir, user, and entrypoint/cmd for background processes started without a command" }),
    pulledAt: z.string(),
  })
  .meta({ id: "Image" });
export type Image = z.infer<typeof Image>;

export const PullImageRequest = z
  .object({
    ref: ImageRef,
    progress: z.boolean().optional().meta({ description: "Stream NDJSON progress events, the last one `image` or `error`" }),
  })
  .strict()
  .meta({ id: "PullImageRequest" });
export type PullImageRequest = z.infer<typeof PullImageRequest>;

/** One line of a pull's NDJSON progress stream. */
export type PullEvent =
  | { type: "resolved"; ref: string; digest: string; layers: { digest: string; sizeBytes: number }[] }
  | { type: "layer"; digest: string; doneBytes: number; totalBytes: number; state: "downloading" | "cached" | "done" }
  | { type: "image"; image: Image }
  | { type: "error"; error: { code: string; status: number; detail: string } };
