/** Options and results of the file calls (`volume.files`). */
import type { WatchEvent } from "@cairn/protocol";
import type { RequestOptions } from "../transport/http.js";

/** One file of a batch write. */
export interface BatchFileInput {
  path: string;
  /** Text (UTF-8) or bytes. */
  content: string | Uint8Array;
  /** Permission bits of a new file, e.g. 0o755. */
  mode?: number;
  /** Write only if the file's ETag is still this. */
  ifMatch?: string;
  /** `"*"`: write only if the file does not exist. */
  ifNoneMatch?: "*";
}

export interface SearchOptions extends RequestOptions {
  /** Directory (or file) to search, default `/`. */
  path?: string;
  /** Only paths matching this glob; without `/` it matches the file name (`*.ts`), with `/` the relative path (`src/**\/*.ts`). */
  glob?: string;
  /** Search contents for this (a literal, or a PCRE regex with `regex: true`); without it, names are searched. */
  query?: string;
  regex?: boolean;
  ignoreCase?: boolean;
  /** Most results, default 100. */
  limit?: number;
}

export interface ReplaceOptions extends RequestOptions {
  path?: string;
  glob?: string;
  search: string;
  /** With `regex`, `$1`, `$<name>`, `$&` refer to the match. */
  replacement: string;
  regex?: boolean;
  ignoreCase?: boolean;
  /** Show the changes, change nothing. */
  dryRun?: boolean;
  /** Refuse if more files would change (default 1000). */
  maxFiles?: number;
}

/** What `files.watch` yields: change events, and `ready` / `reset` control messages. */
export type WatchMessage =
  | (WatchEvent & { cursor: string })
  | { type: "ready"; cursor: string }
  | { type: "reset"; cursor: string; reason: string };

export interface WatchOptions extends RequestOptions {
  /** Resume after this cursor (a previous message's `cursor`). */
  cursor?: string;
  /** Reconnect after a dropped connection (default true), resuming from the last cursor. */
  reconnect?: boolean;
}

export interface UploadOptions extends RequestOptions {
  /** Bytes per PATCH (default 32 MiB). Two chunks are in memory: the one uploading and the next, read and hashed ahead. */
  chunkSize?: number;
  /** Called after each acknowledged chunk with the bytes the server has durably stored. */
  onProgress?: (uploaded: number, total: number | undefined) => void;
  /** Resume this upload (the `uploadUrl` of an earlier, interrupted call) instead of starting one. */
  uploadUrl?: string;
  /** Called once the upload exists, with its URL: keep it to resume after a crash. */
  onUploadUrl?: (url: string) => void;
  /** Attempts per chunk after network errors (default 5). */
  retries?: number;
  /** Total length when `data` is a stream; unknown lengths are allowed (Upload-Defer-Length). */
  length?: number;
}

export interface UploadResult {
  path: string;
  size: number;
  uploadUrl: string;
}

/** Compare-and-swap conditions of a whole-file write: a failed one is `PRECONDITION_FAILED` (412). */
export interface WritePreconditions {
  /** Write only if the file's ETag is still this. */
  ifMatch?: string;
  /** `"*"`: write only if the file does not exist. */
  ifNoneMatch?: string;
}
