import { Command, Option } from "commander";
import { ACCESS_MODES, FILESYSTEMS, type AccessMode, type Filesystem } from "@cairn/protocol";
import type { CreateVolumeOptions } from "@cairn/sdk";
import { collect, parseCheckpointRef, parseLabels, sizeFrom } from "../../args.js";
import { contextOf } from "../../context.js";
import { printJson, volumeDetails } from "../../output.js";

interface CreateOptions {
  size?: string;
  sizeGb?: string;
  accessMode?: AccessMode;
  filesystem?: Filesystem;
  label?: string[];
  region?: string;
  ifMissing?: boolean;
  fromCheckpoint?: string;
}

export function createCommand(): Command {
  return new Command("create")
    .description("Create a volume (1 GiB ext4, ReadWriteOnce unless told otherwise)")
    .argument("<name>", "lowercase letters, digits, _ and -, 1-63 characters, starting with a letter or digit")
    .option("--size <size>", "capacity, e.g. 10GiB, 512MiB, 1.5G (binary units; GB is decimal)")
    .option("--size-gb <n>", "capacity in whole GiB (1-100)")
    .addOption(new Option("--access-mode <mode>", "who may mount it").choices(ACCESS_MODES))
    .addOption(new Option("--filesystem <fs>", "filesystem inside the volume").choices(FILESYSTEMS))
    .option("--label <key=value>", "label the volume (repeatable)", collect)
    .option("--region <region>", "region the volume lives in (default: the server's)")
    .option("--if-missing", "return the existing volume of that name instead of failing")
    .option("--from-checkpoint <volume:checkpoint>", "fork: start as a copy-on-write copy of this checkpoint (same size, or bigger with --size)")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume create team-data
  $ cairn volume create big_vol --size 10GiB --access-mode ReadWriteMany --label team=ml
  $ cairn volume create cache --size-gb 5 --filesystem xfs --if-missing
  $ cairn volume create team-data-copy --from-checkpoint team-data:before-migration`,
    )
    .action(async (name: string, options: CreateOptions, command: Command) => {
      const ctx = contextOf(command);
      const request: CreateVolumeOptions & { ifExists?: "fail" | "return" } = { name, ...sizeFrom(options), signal: ctx.signal };
      if (options.accessMode !== undefined) request.accessMode = options.accessMode;
      if (options.filesystem !== undefined) request.filesystem = options.filesystem;
      if (options.label !== undefined) request.labels = parseLabels(options.label);
      if (options.region !== undefined) request.region = options.region;
      if (options.ifMissing) request.ifExists = "return";
      if (options.fromCheckpoint !== undefined) request.fromCheckpoint = parseCheckpointRef(options.fromCheckpoint);
      const volume = await ctx.cairn.volumes.create(request);
      if (ctx.json) printJson(volume.info);
      else process.stdout.write(volumeDetails(volume.info, undefined, ctx.out));
    });
}
