import { Command } from "commander";
import { attachCommand } from "./attach.js";
import { attachmentsCommand } from "./attachments.js";
import { createCommand } from "./create.js";
import { detachCommand } from "./detach.js";
import { execCommand } from "./exec.js";
import { exposeCommand, unexposeCommand } from "./expose.js";
import { forkCommand } from "./fork.js";
import { getCommand } from "./get.js";
import { hibernateCommand } from "./hibernate.js";
import { killCommand } from "./kill.js";
import { listCommand } from "./list.js";
import { logsCommand } from "./logs.js";
import { resumeCommand } from "./resume.js";

/** The verbs of `cairn sandbox`, in the order `--help` lists them. */
export function sandboxCommands(): Command[] {
  return [
    createCommand(),
    execCommand(),
    logsCommand(),
    listCommand(),
    getCommand(),
    attachCommand(),
    detachCommand(),
    attachmentsCommand(),
    exposeCommand(),
    unexposeCommand(),
    hibernateCommand(),
    resumeCommand(),
    forkCommand(),
    killCommand(),
  ];
}
