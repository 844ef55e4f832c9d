import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson, renderTable, formatAge } from "../../output.js";

/** `cairn project create|list`: projects, with the admin key. */
export function projectCommand(): Command {
  const project = new Command("project")
    .alias("projects")
    .description("Create and list projects (admin key): each has its own volumes, sandboxes and keys");
  project.addCommand(
    new Command("create")
      .description("Create a project and its first API key; the key is shown once")
      .argument("<name>", "lowercase letters, digits or hyphens, e.g. shop")
      .addHelpText(
        "after",
        `
The new key is printed once: store it now (it is kept as a hash). On a terminal cairn shows the
project and the line to export; piped, it prints the key alone, so a script can keep it.

Examples:
  $ cairn project create shop
  $ key=$(cairn project create shop)`,
      )
      .action(async (name: string, _options: unknown, command: Command) => {
        const ctx = contextOf(command);
        const { project: p, apiKey } = await ctx.cairn.projects.create(name, { signal: ctx.signal });
        if (ctx.jsonRequested) printJson({ project: p, apiKey });
        else if (!ctx.tty) process.stdout.write(`${apiKey.key}\n`);
        else process.stdout.write(`Created project ${ctx.out.bold(p.name)} (${p.id}). Its key, shown once:\n\n  export CAIRN_API_KEY=${apiKey.key}\n\n`);
      }),
  );
  project.addCommand(
    new Command("list")
      .alias("ls")
      .description("List projects")
      .action(async (_options: unknown, command: Command) => {
        const ctx = contextOf(command);
        const items = await ctx.cairn.projects.list({ signal: ctx.signal });
        if (ctx.json) printJson(items);
        else process.stdout.write(renderTable(["NAME", "ID", "CREATED"], items.map((p) => [p.name, p.id, formatAge(p.createdAt)]), { style: ctx.out }));
      }),
  );
  return project;
}

/** `cairn key create|list|revoke`: a project's API keys, with the admin key. */
export function keyCommand(): Command {
  const key = new Command("key").alias("keys").description("Create, list and revoke a project's API keys (admin key)");
  key.addCommand(
    new Command("create")
      .description("Create another API key for a project; the key is shown once")
      .argument("<project>", "project name")
      .option("--name <name>", "what the key is for, e.g. ci")
      .addHelpText(
        "after",
        `
Examples:
  $ cairn key create shop --name ci
  $ CAIRN_API_KEY=$(cairn key create shop --name ci) cairn volume list`,
      )
      .action(async (projectName: string, options: { name?: string }, command: Command) => {
        const ctx = contextOf(command);
        const k = await ctx.cairn.projects.createKey(projectName, { ...(options.name !== undefined ? { name: options.name } : {}), signal: ctx.signal });
        if (ctx.jsonRequested) printJson(k);
        else if (!ctx.tty) process.stdout.write(`${k.key}\n`);
        else process.stdout.write(`Created key ${k.id} for ${ctx.out.bold(projectName)}, shown once:\n\n  export CAIRN_API_KEY=${k.key}\n\n`);
      }),
  );
  key.addCommand(
    new Command("list")
      .alias("ls")
      .description("List a project's keys (ids and names, never secrets)")
      .argument("<project>", "project name")
      .action(async (projectName: string, _options: unknown, command: Command) => {
        const ctx = contextOf(command);
        const items = await ctx.cairn.projects.listKeys(projectName, { signal: ctx.signal });
        if (ctx.json) printJson(items);
        else process.stdout.write(renderTable(["ID", "NAME", "CREATED"], items.map((k) => [k.id, k.name, formatAge(k.createdAt)]), { style: ctx.out }));
      }),
  );
  key.addCommand(
    new Command("revoke")
      .description("Revoke a key: requests with it are refused (401) from now on")
      .argument("<project>", "project name")
      .argument("<key-id>", "the key's id, as `cairn key list` shows it (key_…)")
      .addHelpText(
        "after",
        `
Examples:
  $ cairn key revoke shop key_0123456789ab`,
      )
      .action(async (projectName: string, keyId: string, _options: unknown, command: Command) => {
        const ctx = contextOf(command);
        await ctx.cairn.projects.revokeKey(projectName, keyId, { signal: ctx.signal });
        if (ctx.jsonRequested) printJson({ revoked: keyId });
        else process.stdout.write(`Revoked ${keyId} of ${projectName}\n`);
      }),
  );
  return key;
}
