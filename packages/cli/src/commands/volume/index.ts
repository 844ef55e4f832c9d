import { Command } from "commander";
import { createCommand } from "./create.js";
import { deleteCommand } from "./delete.js";
import { getCommand } from "./get.js";
import { importCommand } from "./import.js";
import { labelCommand } from "./label.js";
import { listCommand } from "./list.js";
import { readCommand } from "./read.js";
import { resizeCommand } from "./resize.js";
import { writeCommand } from "./write.js";
import { fileCommands } from "./file-commands.js";

/** The verbs of `cairn volume`, in the order `--help` lists them. */
export function volumeCommands(): Command[] {
  return [createCommand(), listCommand(), getCommand(), writeCommand(), readCommand(), resizeCommand(), labelCommand(), importCommand(), deleteCommand(), ...fileCommands()];
}
