/**
 * What every command gets from the global options: an SDK client built the way a user would build
 * one, the output mode, and the signal that Ctrl-C aborts.
 */
import type { Command } from "commander";
import { Cairn, resolveClientOptions } from "@cairn/sdk";
import { paint, type Style } from "./output.js";

export const DEFAULT_URL = "http://127.0.0.1:7070";

export interface GlobalOptions {
  url?: string;
  apiKey?: string;
  project?: string;
  json?: boolean;
}

/** Option → environment → default, as the SDK resolves them (empty strings count as unset). */
export function resolveGlobals(options: GlobalOptions) {
  const given = (v: string | undefined) => (v === "" ? undefined : v);
  const o: Parameters<typeof resolveClientOptions>[0] = {};
  if (given(options.url) !== undefined) o.url = options.url!;
  if (given(options.apiKey) !== undefined) o.apiKey = options.apiKey!;
  if (given(options.project) !== undefined) o.project = options.project!;
  const r = resolveClientOptions(o);
  return Object.freeze({ url: r.url, apiKey: r.apiKey, project: r.project, json: options.json === true });
}

/** Aborted on the first Ctrl-C so requests and uploads stop cleanly; see main.ts. */
export const interrupt = new AbortController();

export interface Context {
  cairn: Cairn;
  url: string;
  /** Print JSON on stdout: asked for with --json, or stdout is not a terminal. */
  json: boolean;
  /** --json was given explicitly (some commands are quiet when merely piped). */
  jsonRequested: boolean;
  /** stdout is a terminal. */
  tty: boolean;
  out: Style;
  err: Style;
  signal: AbortSignal;
}

/**
 * The exit status a command asks for without failing (`cairn sandbox exec` passes on the
 * command's own status); main.ts reads it once the command has returned.
 */
export const exitStatus: { code?: number } = {};

export interface ContextOptions {
  /**
   * `cairn deploy`, `run` and `deployments` read `--project` as the app's name (as the issues
   * spell it), so for them the API project comes from CAIRN_PROJECT alone.
   */
  projectIsApp?: boolean;
}

export function contextOf(command: Command, options: ContextOptions = {}): Context {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const g = resolveGlobals(options.projectIsApp ? { ...opts, project: undefined } : opts);
  const tty = process.stdout.isTTY === true;
  const client: ConstructorParameters<typeof Cairn>[0] = { url: g.url };
  if (g.apiKey !== undefined) client.apiKey = g.apiKey;
  if (g.project !== undefined) client.project = g.project;
  return {
    cairn: new Cairn(client),
    url: g.url,
    json: g.json || !tty,
    jsonRequested: g.json,
    tty,
    out: paint(process.stdout),
    err: paint(process.stderr),
    signal: interrupt.signal,
  };
}
