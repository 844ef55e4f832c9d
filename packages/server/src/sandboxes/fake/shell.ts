/**
 * The fake driver's "sandbox shell": a child process that runs a few commands against a
 * directory standing for the sandbox's root, with its volumes' directories at their mount paths.
 * It understands only what tests of the services need (echo, cat, exit, sleep, pwd, printenv,
 * true, false, joined by `;` or `&&`, and the service's own file read/write scripts); anything
 * else exits 127. It never resolves a path outside the sandbox's directories.
 *   node shell.js <state.json> <cwd> <command>
 */
import { readFileSync, writeFileSync, readdirSync, statSync, mkdirSync, renameSync, realpathSync } from "node:fs";
import { posix, dirname, join } from "node:path";
import { READ_FILE_SCRIPT, WRITE_FILE_SCRIPT } from "../file-scripts.js";
import { setTimeout as sleep } from "node:timers/promises";

interface ShellState {
  rootfs: string;
  mounts: { destination: string; source: string; readonly: boolean }[];
}

const [stateFile, cwd, command] = process.argv.slice(2) as [string, string, string];
const state = JSON.parse(readFileSync(stateFile, "utf8")) as ShellState;

function hostPath(path: string, forWrite = false): string {
  const abs = posix.resolve(cwd, path);
  const mount = state.mounts
    .filter((m) => abs === m.destination || abs.startsWith(m.destination + "/"))
    .sort((a, b) => b.destination.length - a.destination.length)[0];
  const base = mount ? mount.source : state.rootfs;
  if (mount?.readonly && forWrite) fail(`${path}: Read-only file system`, 1);
  const host = join(base, mount ? abs.slice(mount.destination.length) : abs);
  let real = host;
  try {
    real = realpathSync(host);
  } catch {
    real = join(realpathSync(dirname(host)), posix.basename(host));
  }
  if (real !== realpathSync(base) && !real.startsWith(realpathSync(base) + "/")) fail(`${path}: outside the sandbox`, 1);
  return real;
}

function fail(message: string, code: number): never {
  process.stderr.write(message + "\n");
  process.exit(code);
}

const expand = (word: string) => word.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n: string) => process.env[n] ?? "");

async function runSimple(words: string[]): Promise<number> {
  const [name, ...args] = words.map(expand);
  switch (name) {
    case "echo":
      process.stdout.write(args.join(" ") + "\n");
      return 0;
    case "true":
      return 0;
    case "false":
      return 1;
    case "exit":
      process.exit(Number(args[0] ?? 0));
    case "sleep":
      await sleep(Number(args[0] ?? 0) * 1000);
      return 0;
    case "pwd":
      process.stdout.write(cwd + "\n");
      return 0;
    case "printenv":
      if (process.env[args[0] ?? ""] === undefined) return 1;
      process.stdout.write(process.env[args[0]!] + "\n");
      return 0;
    case "cat":
      for (const a of args) process.stdout.write(readFileSync(hostPath(a)));
      return 0;
    case "ls":
      process.stdout.write(readdirSync(hostPath(args[0] ?? ".")).sort().join("\n") + "\n");
      return 0;
    default:
      process.stderr.write(`fake sandbox: ${name}: not supported\n`);
      return 127;
  }
}

async function main(): Promise<void> {
  const path = process.env.CAIRN_PATH ?? "";
  if (command === WRITE_FILE_SCRIPT) {
    const target = hostPath(path, true);
    mkdirSync(dirname(target), { recursive: true });
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    writeFileSync(target + ".cairn-tmp", Buffer.concat(chunks));
    renameSync(target + ".cairn-tmp", target);
    return;
  }
  if (command === READ_FILE_SCRIPT) {
    const target = hostPath(path);
    let st;
    try {
      st = statSync(target);
    } catch {
      fail("no such file", 2);
    }
    if (st.isDirectory()) fail("is a directory", 21);
    process.stdout.write(readFileSync(target));
    return;
  }
  let last = 0;
  for (const part of command.split(/\s*;\s*/)) {
    for (const simple of part.split(/\s*&&\s*/)) {
      const words = simple.trim().match(/"[^"]*"|'[^']*'|\S+/g)?.map((w) => w.replace(/^["']|["']$/g, "")) ?? [];
      if (words.length === 0) continue;
      last = await runSimple(words);
      if (last !== 0) break;
    }
  }
  process.exitCode = last;
}

main().catch((err: Error) => fail(err.message, 1));
