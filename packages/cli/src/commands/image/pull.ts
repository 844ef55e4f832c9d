import { Command } from "commander";
import type { Cairn, Image } from "@cairn/sdk";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";
import { progress } from "../../progress.js";
import { imageDetails } from "./list.js";

/**
 * Pull with a progress bar on stderr when it is a terminal (bytes of the layers not here yet);
 * nothing but the result otherwise. Shared by `image pull` and `sandbox create --image`.
 */
export async function pullWithProgress(cairn: Cairn, ref: string, signal: AbortSignal): Promise<Image> {
  if (!process.stderr.isTTY) return cairn.images.pull(ref, { signal });
  const bar = progress(`pulling ${ref}`, undefined);
  const done = new Map<string, number>();
  let total = 0;
  try {
    return await cairn.images.pull(ref, {
      signal,
      onProgress: (e) => {
        if (e.type === "resolved") {
          total = e.layers.reduce((n, l) => n + l.sizeBytes, 0);
          bar.setTotal(total);
        } else {
          done.set(e.digest, e.doneBytes);
          bar.update([...done.values()].reduce((a, b) => a + b, 0));
        }
      },
    });
  } finally {
    bar.done();
  }
}

export function pullCommand(): Command {
  return new Command("pull")
    .description("Pull an image from its registry (docker.io by default; loopback registries in plain HTTP)")
    .argument("<ref>", "an image reference: node:20, ghcr.io/org/tool:1.2, 127.0.0.1:5000/team/tool@sha256:…")
    .addHelpText(
      "after",
      `
The tag is resolved to this host's platform (linux/<arch> of a multi-platform index) and its
digest; layers not on the host yet are fetched, checked against their digests and unpacked once.
A progress bar shows on a terminal; --json prints the image alone.

Examples:
  $ cairn image pull node:20
  $ cairn image pull 127.0.0.1:5000/team/tool:1.2 --json | jq -r .digest`,
    )
    .action(async (ref: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const image = ctx.json ? await ctx.cairn.images.pull(ref, { signal: ctx.signal }) : await pullWithProgress(ctx.cairn, ref, ctx.signal);
      if (ctx.json) printJson(image);
      else process.stdout.write(imageDetails(image, ctx.out));
    });
}
