import type { Command } from "commander";
import { archiveCommand } from "./archive.js";
import { editCommand } from "./edit.js";
import { mkdirCommand } from "./mkdir.js";
import { mvCommand } from "./mv.js";
import { putCommand } from "./put.js";
import { replaceCommand } from "./replace.js";
import { rmCommand } from "./rm.js";
import { searchCommand } from "./search.js";
import { signCommand } from "./sign.js";
import { statCommand } from "./stat.js";
import { watchCommand } from "./watch.js";

/** The file verbs of `cairn volume`; `get` and `ls` double as download and file listing. */
export function fileCommands(): Command[] {
  return [
    putCommand(),
    statCommand(),
    mkdirCommand(),
    mvCommand(),
    rmCommand(),
    editCommand(),
    searchCommand(),
    replaceCommand(),
    archiveCommand(),
    signCommand(),
    watchCommand(),
  ];
}
