/**
 * The one table of error codes shared by cairnd, the SDK and the CLI.
 * Services throw `CairnError(code, message)`; the HTTP layer takes the status from here.
 */
export const ERROR_CODES = {
  INVALID_REQUEST: { status: 400, title: "Invalid request" },
  INVALID_VOLUME_NAME: { status: 400, title: "Invalid volume name" },
  INVALID_SIZE: { status: 400, title: "Invalid size" },
  INVALID_LABEL: { status: 400, title: "Invalid label" },
  INVALID_PATH: { status: 400, title: "Invalid path" },
  INVALID_RANGE: { status: 416, title: "Range not satisfiable" },
  INVALID_CHECKPOINT_NAME: { status: 400, title: "Invalid checkpoint name" },
  INVALID_PROJECT_NAME: { status: 400, title: "Invalid project name" },
  NOT_A_FILE: { status: 400, title: "Not a regular file" },
  VOLUME_SHRINK_NOT_ALLOWED: { status: 409, title: "Volumes cannot shrink" },
  INVALID_TEMPLATE: { status: 400, title: "Unknown template" },
  INVALID_MOUNT: { status: 400, title: "Invalid mount" },
  INVALID_NETWORK_POLICY: { status: 400, title: "Invalid network policy" },
  UNAUTHORIZED: { status: 401, title: "Unauthorized" },
  FORBIDDEN: { status: 403, title: "Forbidden" },
  NOT_FOUND: { status: 404, title: "Not found" },
  PROJECT_NOT_FOUND: { status: 404, title: "Project not found" },
  API_KEY_NOT_FOUND: { status: 404, title: "API key not found" },
  VOLUME_NOT_FOUND: { status: 404, title: "Volume not found" },
  PATH_NOT_FOUND: { status: 404, title: "Path not found" },
  CHECKPOINT_NOT_FOUND: { status: 404, title: "Checkpoint not found" },
  SANDBOX_NOT_FOUND: { status: 404, title: "Sandbox not found" },
  ATTACHMENT_NOT_FOUND: { status: 404, title: "Attachment not found" },
  PROCESS_NOT_FOUND: { status: 404, title: "Process not found" },
  PORT_NOT_FOUND: { status: 404, title: "Port not exposed" },
  METHOD_NOT_ALLOWED: { status: 405, title: "Method not allowed" },
  PROJECT_ALREADY_EXISTS: { status: 409, title: "Project already exists" },
  VOLUME_ALREADY_EXISTS: { status: 409, title: "Volume already exists" },
  CHECKPOINT_ALREADY_EXISTS: { status: 409, title: "Checkpoint already exists" },
  CHECKPOINT_LIMIT_REACHED: { status: 409, title: "Too many checkpoints" },
  VOLUME_ALREADY_ATTACHED: { status: 409, title: "Volume already attached" },
  APP_NAME_TAKEN: { status: 409, title: "App name taken" },
  DEPLOY_FAILED: { status: 422, title: "Deploy failed" },
  DEPLOYMENT_NOT_FOUND: { status: 404, title: "Deployment not found" },
  // The router's answer when a deployed app does not (a refused connection, a reset before its answer).
  APP_UNAVAILABLE: { status: 502, title: "App not answering" },
  SANDBOX_NOT_RUNNING: { status: 409, title: "Sandbox not running" },
  TOO_MANY_VOLUMES: { status: 409, title: "Too many volumes" },
  VOLUME_BUSY: { status: 409, title: "Volume busy" },
  MOUNT_CHANGED: { status: 409, title: "Mount changed inside the sandbox" },
  VOLUME_NOT_READY: { status: 409, title: "Volume not ready" },
  REGION_MISMATCH: { status: 409, title: "Wrong region" },
  PRECONDITION_FAILED: { status: 412, title: "Precondition failed" },
  PAYLOAD_TOO_LARGE: { status: 413, title: "Payload too large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "Unsupported media type" },
  QUOTA_EXCEEDED: { status: 507, title: "Volume full" },
  POOL_FULL: { status: 507, title: "Storage pool full" },
  VOLUME_DAMAGED: { status: 503, title: "Volume read-only after a filesystem error" },
  // The file API.
  NOT_A_DIRECTORY: { status: 400, title: "Not a directory" },
  INVALID_PATTERN: { status: 400, title: "Invalid pattern" },
  INVALID_ARCHIVE: { status: 400, title: "Invalid archive" },
  PATH_ALREADY_EXISTS: { status: 409, title: "Path already exists" },
  DIRECTORY_NOT_EMPTY: { status: 409, title: "Directory not empty" },
  EDIT_NO_MATCH: { status: 409, title: "String not found" },
  EDIT_AMBIGUOUS: { status: 409, title: "String not unique" },
  UPLOAD_NOT_FOUND: { status: 404, title: "Upload not found" },
  UPLOAD_OFFSET_MISMATCH: { status: 409, title: "Upload offset mismatch" },
  CHECKSUM_MISMATCH: { status: 460, title: "Checksum mismatch" },
  // Images.
  INVALID_IMAGE: { status: 400, title: "Invalid image" },
  IMAGE_NOT_FOUND: { status: 404, title: "Image not found" },
  IMAGE_IN_USE: { status: 409, title: "Image in use" },
  IMAGE_DIGEST_MISMATCH: { status: 502, title: "Image content does not match its digest" },
  REGISTRY_ERROR: { status: 502, title: "Registry error" },
  INTERNAL: { status: 500, title: "Internal error" },
  UNAVAILABLE: { status: 503, title: "Service unavailable" },
  NETWORK_UNAVAILABLE: { status: 503, title: "Sandbox networking unavailable on this host" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

/** The body of every non-2xx response (`application/problem+json`). */
export interface Problem {
  type: string;
  code: ErrorCode;
  title: string;
  status: number;
  detail: string;
  requestId?: string;
  /** Extra machine-readable facts, e.g. `{ field: "name" }`. */
  meta?: Record<string, unknown>;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/**
 * An error with a stable code. Thrown by the server's services, and rebuilt by the SDK from a
 * problem+json response so callers can `switch (err.code)` on either side of the wire.
 */
export class CairnError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly requestId: string | undefined;
  readonly meta: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; requestId?: string; meta?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CairnError";
    this.code = code;
    this.status = statusOf(code);
    this.requestId = options.requestId;
    this.meta = options.meta;
  }

  toProblem(requestId?: string): Problem {
    const problem: Problem = {
      type: `https://cairn.dev/errors/${this.code.toLowerCase().replaceAll("_", "-")}`,
      code: this.code,
      title: ERROR_CODES[this.code].title,
      status: this.status,
      detail: this.message,
    };
    const rid = requestId ?? this.requestId;
    if (rid !== undefined) problem.requestId = rid;
    if (this.meta !== undefined) problem.meta = this.meta;
    return problem;
  }

  /** Rebuild an error from a problem body; unknown shapes become `INTERNAL` with the raw text. */
  static fromProblem(body: unknown, status: number): CairnError {
    if (body !== null && typeof body === "object") {
      const b = body as Partial<Problem>;
      if (isErrorCode(b.code)) {
        const opts: { requestId?: string; meta?: Record<string, unknown> } = {};
        if (typeof b.requestId === "string") opts.requestId = b.requestId;
        if (b.meta && typeof b.meta === "object") opts.meta = b.meta;
        return new CairnError(b.code, typeof b.detail === "string" ? b.detail : ERROR_CODES[b.code].title, opts);
      }
    }
    const code: ErrorCode =
      status === 401 ? "UNAUTHORIZED" : status === 404 ? "NOT_FOUND" : status === 503 ? "UNAVAILABLE" : "INTERNAL";
    const text = typeof body === "string" && body.length > 0 ? body.slice(0, 500) : `HTTP ${status}`;
    return new CairnError(code, text);
  }
}
