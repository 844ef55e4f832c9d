import { Command } from "commander";
import { deleteCommand } from "./delete.js";
import { listCommand } from "./list.js";
import { logsCommand } from "./logs.js";

/** The verbs of `cairn deployments`, in the order `--help` lists them. */
export function deploymentsCommands(): Command[] {
  return [listCommand(), logsCommand(), deleteCommand()];
}
