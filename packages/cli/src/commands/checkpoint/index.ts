import { Command } from "commander";
import { createCommand } from "./create.js";
import { deleteCommand } from "./delete.js";
import { exportCommand } from "./export.js";
import { getCommand } from "./get.js";
import { listCommand } from "./list.js";
import { restoreCommand } from "./restore.js";

/** The verbs of `cairn checkpoint`, in the order `--help` lists them. */
export function checkpointCommands(): Command[] {
  return [createCommand(), listCommand(), getCommand(), restoreCommand(), exportCommand(), deleteCommand()];
}
