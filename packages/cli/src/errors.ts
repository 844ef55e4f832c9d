/**
 * How `cairn` turns a failure into what people and scripts see: one exit code per error code,
 * one hint per common code, and one place that prints (text on a terminal, JSON otherwise).
 * Commands only throw; nothing below `main.ts` prints errors or calls `process.exit`.
 */
import { CairnError, ERROR_CODES, TEMPLATES, type ErrorCode } from "@cairn/protocol";
import { paint, type Style } from "./output.js";

/** Exit statuses, grouped so a script can branch on the kind of failure without parsing text. */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  AUTH: 5,
  FULL: 6,
  UNAVAILABLE: 7,
  /** Ctrl-C, as shells report a SIGINT death. */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * The one table: error code → exit status. It names every code the protocol knows today; a code
 * added later falls back to a rule on its HTTP status (`exitCodeFor`), and a unit test fails
 * until it is listed here, so the decision is made on purpose rather than by accident.
 */
export const EXIT_CODES = {
  // 2: the request itself is wrong (INVALID_*, and 4xx not listed below)
  INVALID_REQUEST: EXIT.USAGE,
  INVALID_VOLUME_NAME: EXIT.USAGE,
  INVALID_SIZE: EXIT.USAGE,
  INVALID_LABEL: EXIT.USAGE,
  INVALID_PATH: EXIT.USAGE,
  INVALID_RANGE: EXIT.USAGE,
  INVALID_CHECKPOINT_NAME: EXIT.USAGE,
  INVALID_PROJECT_NAME: EXIT.USAGE,
  INVALID_TEMPLATE: EXIT.USAGE,
  INVALID_MOUNT: EXIT.USAGE,
  INVALID_NETWORK_POLICY: EXIT.USAGE,
  INVALID_PATTERN: EXIT.USAGE,
  INVALID_ARCHIVE: EXIT.USAGE,
  INVALID_IMAGE: EXIT.USAGE,
  NOT_A_FILE: EXIT.USAGE,
  NOT_A_DIRECTORY: EXIT.USAGE,
  METHOD_NOT_ALLOWED: EXIT.USAGE,
  PAYLOAD_TOO_LARGE: EXIT.USAGE,
  UNSUPPORTED_MEDIA_TYPE: EXIT.USAGE,
  // 422: the uploaded app was refused (no entrypoint, crashed, never answered on $PORT). A fault
  // in what was sent, like a validation error, not in Cairn; the previous version keeps serving.
  DEPLOY_FAILED: EXIT.USAGE,
  CHECKSUM_MISMATCH: EXIT.USAGE,
  // 3: not found
  NOT_FOUND: EXIT.NOT_FOUND,
  PROJECT_NOT_FOUND: EXIT.NOT_FOUND,
  VOLUME_NOT_FOUND: EXIT.NOT_FOUND,
  PATH_NOT_FOUND: EXIT.NOT_FOUND,
  CHECKPOINT_NOT_FOUND: EXIT.NOT_FOUND,
  SANDBOX_NOT_FOUND: EXIT.NOT_FOUND,
  ATTACHMENT_NOT_FOUND: EXIT.NOT_FOUND,
  PROCESS_NOT_FOUND: EXIT.NOT_FOUND,
  API_KEY_NOT_FOUND: EXIT.NOT_FOUND,
  DEPLOYMENT_NOT_FOUND: EXIT.NOT_FOUND,
  UPLOAD_NOT_FOUND: EXIT.NOT_FOUND,
  IMAGE_NOT_FOUND: EXIT.NOT_FOUND,
  PORT_NOT_FOUND: EXIT.NOT_FOUND,
  // 4: conflicts with the current state (409, 412)
  PROJECT_ALREADY_EXISTS: EXIT.CONFLICT,
  VOLUME_ALREADY_EXISTS: EXIT.CONFLICT,
  CHECKPOINT_ALREADY_EXISTS: EXIT.CONFLICT,
  PATH_ALREADY_EXISTS: EXIT.CONFLICT,
  VOLUME_ALREADY_ATTACHED: EXIT.CONFLICT,
  APP_NAME_TAKEN: EXIT.CONFLICT,
  CHECKPOINT_LIMIT_REACHED: EXIT.CONFLICT,
  TOO_MANY_VOLUMES: EXIT.CONFLICT,
  VOLUME_BUSY: EXIT.CONFLICT,
  MOUNT_CHANGED: EXIT.CONFLICT,
  VOLUME_NOT_READY: EXIT.CONFLICT,
  VOLUME_SHRINK_NOT_ALLOWED: EXIT.CONFLICT,
  SANDBOX_NOT_RUNNING: EXIT.CONFLICT,
  REGION_MISMATCH: EXIT.CONFLICT,
  DIRECTORY_NOT_EMPTY: EXIT.CONFLICT,
  EDIT_NO_MATCH: EXIT.CONFLICT,
  EDIT_AMBIGUOUS: EXIT.CONFLICT,
  UPLOAD_OFFSET_MISMATCH: EXIT.CONFLICT,
  PRECONDITION_FAILED: EXIT.CONFLICT,
  IMAGE_IN_USE: EXIT.CONFLICT,
  // 5: who you are
  UNAUTHORIZED: EXIT.AUTH,
  FORBIDDEN: EXIT.AUTH,
  // 6: out of space
  QUOTA_EXCEEDED: EXIT.FULL,
  POOL_FULL: EXIT.FULL,
  // 1 and 7: the server's side
  INTERNAL: EXIT.INTERNAL,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  APP_UNAVAILABLE: EXIT.UNAVAILABLE,
  VOLUME_DAMAGED: EXIT.UNAVAILABLE,
  // 502: the registry refused or broke off; cairnd itself is fine, nothing was stored.
  REGISTRY_ERROR: EXIT.UNAVAILABLE,
  IMAGE_DIGEST_MISMATCH: EXIT.UNAVAILABLE,
  NETWORK_UNAVAILABLE: EXIT.UNAVAILABLE,
} as const satisfies Partial<Record<ErrorCode, ExitCode>>;

export function exitCodeFor(code: ErrorCode): ExitCode {
  const listed = (EXIT_CODES as Partial<Record<ErrorCode, ExitCode>>)[code];
  if (listed !== undefined) return listed;
  const status: number = ERROR_CODES[code]?.status ?? 500;
  if (status === 401 || status === 403) return EXIT.AUTH;
  if (status === 404) return EXIT.NOT_FOUND;
  if (status === 409 || status === 412) return EXIT.CONFLICT;
  if (status === 507) return EXIT.FULL;
  if (status === 503 || status === 502) return EXIT.UNAVAILABLE;
  if (status >= 400 && status < 500) return EXIT.USAGE;
  return EXIT.INTERNAL;
}

const EXIT_MEANINGS: Record<number, string> = {
  [EXIT.OK]: "success",
  [EXIT.INTERNAL]: "internal or unexpected error",
  [EXIT.USAGE]: "usage or validation error",
  [EXIT.NOT_FOUND]: "not found",
  [EXIT.CONFLICT]: "conflict with the current state",
  [EXIT.AUTH]: "not authorised",
  [EXIT.FULL]: "out of space",
  [EXIT.UNAVAILABLE]: "cairnd (or a registry behind it) unreachable or unavailable",
};

/** The table for `cairn --help`, generated from `EXIT_CODES` so the two cannot drift apart. */
export function exitCodeHelp(): string {
  const byExit = new Map<number, string[]>();
  for (const [code, exit] of Object.entries(EXIT_CODES)) byExit.set(exit, [...(byExit.get(exit) ?? []), code]);
  const lines = ["Exit codes:", `    0  ${EXIT_MEANINGS[0]}`];
  for (const exit of [...byExit.keys()].sort((a, b) => a - b)) {
    const codes = exit === EXIT.USAGE ? [...byExit.get(exit)!, "bad options or arguments"] : byExit.get(exit)!;
    lines.push(`  ${String(exit).padStart(3)}  ${EXIT_MEANINGS[exit]}`, ...wrap(codes.join(", "), 80, " ".repeat(7)));
  }
  lines.push(`  ${EXIT.INTERRUPTED}  interrupted (Ctrl-C)`);
  return lines.join("\n");
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/** A mistake on the command line itself, found before any request is sent. */
export class UsageError extends Error {
  readonly code = "USAGE";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** What the hints need to know about the invocation. */
export interface ErrorContext {
  url: string;
  /** The command that ran, e.g. `cairn checkpoint restore`: some codes mean different things per command. */
  command?: string;
}

export const HINTS: Partial<Record<ErrorCode, (ctx: ErrorContext, detail: string) => string | undefined>> = {
  UNAUTHORIZED: () => "set CAIRN_API_KEY (or --api-key) to a key of this cairnd; `cairn server` prints the admin key when it starts",
  FORBIDDEN: () => "this key belongs to another project: drop --project / CAIRN_PROJECT, or use that project's key",
  UNAVAILABLE: (ctx) => `is cairnd running at ${ctx.url}? start one with \`cairn server\`, or point CAIRN_URL / --url at it`,
  VOLUME_NOT_FOUND: () => "`cairn volume list` shows your volumes",
  PROJECT_NOT_FOUND: () => "check --project / CAIRN_PROJECT",
  PATH_NOT_FOUND: () => "paths are relative to the volume's root, e.g. /hello.txt",
  QUOTA_EXCEEDED: () => "the volume is full: grow it with `cairn volume resize <volume> --size <bigger>`",
  POOL_FULL: () => "cairnd's storage pool is full: delete unused volumes or give the pool more space",
  // A size out of bounds is not a spelling problem: the message names the bound.
  INVALID_SIZE: (_ctx, detail) =>
    /at least|at most|cannot be smaller|larger than/i.test(detail) ? "give a size within the bound above, e.g. --size 1GiB" : "sizes look like 10GiB, 512MiB or 1.5G (or use --size-gb <n>)",
  PATH_ALREADY_EXISTS: (ctx) => (ctx.command === "cairn volume mv" ? "add --overwrite (-f) to replace what is there" : undefined),
  INVALID_VOLUME_NAME: () => "for example: team-data or my_project",
  INVALID_LABEL: () => "labels are key=value, e.g. --label team=ml",
  INVALID_RANGE: () => "--range takes start-end in bytes, end inclusive (e.g. 0-1023), or start- for the rest",
  VOLUME_SHRINK_NOT_ALLOWED: () => "volumes only grow: create a smaller volume and copy the files you need into it",
  VOLUME_ALREADY_EXISTS: () => "add --if-missing to get the existing volume instead of an error",
  VOLUME_BUSY: (ctx) =>
    ctx.command === "cairn checkpoint restore"
      ? "a sandbox has this volume attached read-write: add --detach to detach it from those sandboxes first"
      : ctx.command === "cairn sandbox detach"
        ? "something in the sandbox still uses files under that mount: add --force to detach it anyway"
        : "another operation is running on this volume; try again in a moment",
  MOUNT_CHANGED: () => "the sandbox moved or replaced the mount; the volume stays attached until the sandbox is killed or hibernated",
  VOLUME_NOT_READY: () => "the volume is still being created or resized; try again in a moment",
  PRECONDITION_FAILED: () => "the file changed since you last read it",
  INVALID_CHECKPOINT_NAME: () => "for example: before-migration or nightly_2026-11-22",
  INVALID_PROJECT_NAME: () => "for example: team-ml or staging",
  CHECKPOINT_NOT_FOUND: () => "`cairn checkpoint list <volume>` shows a volume's checkpoints",
  CHECKPOINT_ALREADY_EXISTS: () => "checkpoint names are unique per volume: pick another --name, or delete the old one",
  CHECKPOINT_LIMIT_REACHED: () => "delete old checkpoints, or create with --keep <n> to drop the oldest automatically",
  SANDBOX_NOT_FOUND: () => "`cairn sandbox list` shows your sandboxes",
  SANDBOX_NOT_RUNNING: () => "`cairn sandbox resume <id>` brings a hibernated sandbox back; a killed one stays stopped",
  ATTACHMENT_NOT_FOUND: () => "`cairn sandbox attachments <id>` lists what is mounted where",
  VOLUME_ALREADY_ATTACHED: () => "a ReadWriteOnce volume serves one sandbox at a time: detach or kill the other sandbox first, or use a ReadWriteMany volume",
  INVALID_MOUNT: () => "write --volume ref=<volume>,mount=</abs/path>[,mode=ro][,subpath=<dir>][,checkpoint=<name>]",
  INVALID_TEMPLATE: () => `templates are: ${TEMPLATES.join(", ")}`,
  IMAGE_NOT_FOUND: () => "`cairn image list` shows the images here; `cairn image pull <ref>` fetches one",
  IMAGE_IN_USE: () => "kill the sandboxes that run it first (`cairn sandbox list`)",
  REGISTRY_ERROR: () => "nothing was stored; check the name, the registry's credentials (CAIRN_REGISTRY_AUTH) and that cairnd's host reaches it",
  DEPLOY_FAILED: () => "the previous version (if any) keeps serving; `cairn deployments logs <app>` shows the new version's output",
  DEPLOYMENT_NOT_FOUND: () => "`cairn deployments list` shows what is deployed",
  APP_NAME_TAKEN: () => "app names are global to this cairnd: pick another --project name",
  INTERNAL: () => "this is a bug in cairnd or cairn; cairnd's log has the cause (look for the request id)",
};

interface Rendered {
  code: string;
  detail: string;
  status?: number;
  requestId?: string;
  hint?: string;
  exit: ExitCode;
}

/** Anything thrown → the fields we print and the exit status. */
export function describeError(err: unknown, ctx: ErrorContext): Rendered {
  if (err instanceof CairnError) {
    const r: Rendered = { code: err.code, detail: err.message, status: err.status, exit: exitCodeFor(err.code) };
    if (err.requestId !== undefined) r.requestId = err.requestId;
    const hint = HINTS[err.code]?.(ctx, err.message);
    if (hint !== undefined) r.hint = hint;
    return r;
  }
  if (err instanceof UsageError) {
    const r: Rendered = { code: err.code, detail: err.message, exit: EXIT.USAGE };
    if (err.hint !== undefined) r.hint = err.hint;
    return r;
  }
  if (err instanceof Error && err.name === "AbortError") {
    return { code: "INTERRUPTED", detail: "interrupted", exit: EXIT.INTERRUPTED };
  }
  const detail = err instanceof Error ? err.message : String(err);
  return { code: "INTERNAL", detail, exit: EXIT.INTERNAL, hint: "set CAIRN_DEBUG=1 to see the stack trace" };
}

/**
 * Print an error on stderr and return the exit status. JSON when asked for or when stderr is not
 * a terminal (a script or log collector reads it); otherwise `error: …` and a hint, coloured only
 * on a terminal.
 */
export function reportError(err: unknown, options: ErrorContext & { json: boolean; stderr?: NodeJS.WriteStream }): ExitCode {
  const stderr = options.stderr ?? process.stderr;
  const r = describeError(err, options);
  if (process.env.CAIRN_DEBUG && err instanceof Error && err.stack) stderr.write(`${err.stack}\n`);
  if (options.json || !stderr.isTTY) {
    const body: Record<string, unknown> = { code: r.code, detail: r.detail };
    if (r.status !== undefined) body.status = r.status;
    if (r.requestId !== undefined) body.requestId = r.requestId;
    if (r.hint !== undefined) body.hint = r.hint;
    stderr.write(`${JSON.stringify({ error: body })}\n`);
    return r.exit;
  }
  const style: Style = paint(stderr);
  stderr.write(`${style.red(style.bold("error:"))} ${r.detail}\n`);
  if (r.hint !== undefined) stderr.write(`${style.dim(`hint: ${r.hint}`)}\n`);
  // People need the request id only to look a server-side failure up in cairnd's log.
  if (r.requestId !== undefined && (r.status ?? 500) >= 500) stderr.write(`${style.dim(`request id: ${r.requestId}`)}\n`);
  return r.exit;
}
