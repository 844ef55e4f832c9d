import type { Command } from "commander";
import { importCommand } from "./import.js";
import { listCommand } from "./list.js";
import { pullCommand } from "./pull.js";
import { rmCommand } from "./rm.js";

/** The verbs of `cairn image`, in the order `--help` lists them. */
export function imageCommands(): Command[] {
  return [pullCommand(), listCommand(), importCommand(), rmCommand()];
}
