/**
 * Background processes of sandboxes (`exec` with `background: true`): started at once, their
 * output kept in memory up to a bound (the oldest dropped first), read and waited for later.
 */
import type { ChildProcess } from "node:child_process";
import { CairnError, MiB, type ProcessInfo } from "@cairn/protocol";
import { newId } from "../ids.js";

const LOG_LIMIT = 4 * MiB;

interface BackgroundProcess {
  id: string;
  command: string;
  child: ChildProcess;
  stdout: Buffer[];
  stderr: Buffer[];
  bytes: number;
  exitCode: number | null;
  done: Promise<void>;
}

export class ProcessTable {
  private readonly bySandbox = new Map<string, Map<string, BackgroundProcess>>();

  /** Keep a started child as a background process of the sandbox, `input` piped to its stdin. */
  add(sandboxId: string, command: string, child: ChildProcess, input?: NodeJS.ReadableStream): ProcessInfo {
    child.stdin?.on("error", () => undefined); // a command that exits before reading all of it
    if (input && child.stdin) input.pipe(child.stdin);
    else child.stdin?.end();
    const p: BackgroundProcess = { id: newId("proc", 12), command, child, stdout: [], stderr: [], bytes: 0, exitCode: null, done: Promise.resolve() };
    const keep = (list: Buffer[]) => (d: Buffer) => {
      list.push(d);
      p.bytes += d.length;
      while (p.bytes > LOG_LIMIT && list.length > 1) p.bytes -= list.shift()!.length;
    };
    child.stdout?.on("data", keep(p.stdout));
    child.stderr?.on("data", keep(p.stderr));
    p.done = new Promise((resolve) => child.on("close", (code) => ((p.exitCode = code ?? 137), resolve())));
    let map = this.bySandbox.get(sandboxId);
    if (!map) this.bySandbox.set(sandboxId, (map = new Map()));
    map.set(p.id, p);
    return info(p, false);
  }

  async get(sandboxId: string, processId: string, options: { wait: boolean; logs: boolean }): Promise<ProcessInfo> {
    const p = this.bySandbox.get(sandboxId)?.get(processId);
    if (!p) throw new CairnError("PROCESS_NOT_FOUND", `Process ${processId} not found in sandbox ${sandboxId}`);
    if (options.wait) await p.done;
    return info(p, options.logs);
  }

  /** The sandbox stopped: its processes are killed (if still there) and forgotten. */
  drop(sandboxId: string, options: { kill: boolean }): void {
    if (options.kill) for (const p of this.bySandbox.get(sandboxId)?.values() ?? []) p.child.kill("SIGKILL");
    this.bySandbox.delete(sandboxId);
  }

  killAll(): void {
    for (const p of this.bySandbox.values()) for (const proc of p.values()) proc.child.kill("SIGKILL");
  }
}

function info(p: BackgroundProcess, withLogs: boolean): ProcessInfo {
  const i: ProcessInfo = { id: p.id, command: p.command, state: p.exitCode === null ? "running" : "exited", exitCode: p.exitCode };
  if (withLogs) {
    i.stdout = Buffer.concat(p.stdout).toString("utf8");
    i.stderr = Buffer.concat(p.stderr).toString("utf8");
  }
  return i;
}
