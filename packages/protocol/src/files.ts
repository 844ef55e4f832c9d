/**
 * Wire schemas of the file API (`/v1/volumes/{volume}/files/...`): stat, list, mkdir, move,
 * remove, edit, batch write, search, replace, archives, signed URLs and watch events.
 * Paths are volume-relative POSIX paths, normalised by `normalizeVolumePath`.
 */
import { z } from "zod";
import { WriteFileResult } from "./volumes.js";

/** Query-string booleans: `true`/`false`/`1`/`0` (z.coerce.boolean would read "false" as true). */
export const QueryBoolean = z
  .enum(["true", "false", "1", "0", ""])
  .transform((v) => v === "true" || v === "1");

const VolumePath = z.string().min(1).meta({ description: "Path inside the volume, e.g. `/data/report.csv`" });

export const FILE_TYPES = ["file", "directory", "symlink", "fifo", "socket", "block-device", "char-device"] as const;
export type FileType = (typeof FILE_TYPES)[number];

export const FileEntry = z
  .object({
    path: z.string().meta({ description: "Normalised volume path" }),
    name: z.string(),
    type: z.enum(FILE_TYPES),
    size: z.number().meta({ description: "Bytes (for a symlink: the length of its target)" }),
    mode: z.int().meta({ description: "Permission bits (`st_mode & 0o7777`), e.g. 420 = 0o644" }),
    mtime: z.string().meta({ description: "Last modification, ISO 8601" }),
    uid: z.int().meta({ description: "Owner, as sandboxes see it (0: a sandbox's root)" }),
    gid: z.int().meta({ description: "Group, as sandboxes see it" }),
    etag: z.string().optional().meta({ description: "Regular files: the ETag `If-Match` compares with" }),
    target: z.string().optional().meta({ description: "Symlinks: the link's target, as stored" }),
  })
  .meta({ id: "FileEntry" });
export type FileEntry = z.infer<typeof FileEntry>;

export const StatQuery = z.object({
  path: VolumePath,
  follow: QueryBoolean.optional().meta({ description: "Describe what a final symlink points to instead of the link (default false)" }),
});

export const MAX_LIST_LIMIT = 10_000;
export const ListFilesQuery = z.object({
  path: VolumePath.optional().meta({ description: "Directory to list, default `/`" }),
  recursive: QueryBoolean.optional().meta({ description: "Include everything below, depth first (default false)" }),
  prefix: z.string().optional().meta({ description: "Only entries whose path relative to `path` starts with this" }),
  limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).optional().meta({ description: "Page size, default 1000" }),
  cursor: z.string().optional().meta({ description: "`nextCursor` of the previous page" }),
});

export const FileList = z
  .object({
    items: z.array(FileEntry),
    nextCursor: z.string().nullable().meta({ description: "Pass as `cursor` for the next page; null on the last page" }),
  })
  .meta({ id: "FileList" });
export type FileList = z.infer<typeof FileList>;

const Mode = z.int().min(0).max(0o7777).meta({ description: "Permission bits, e.g. 493 (0o755)" });

export const MkdirRequest = z
  .object({ path: VolumePath, mode: Mode.optional() })
  .strict()
  .meta({ id: "MkdirRequest" });
export type MkdirRequest = z.infer<typeof MkdirRequest>;

export const MkdirResult = FileEntry.extend({ created: z.boolean() }).meta({ id: "MkdirResult" });
export type MkdirResult = z.infer<typeof MkdirResult>;

export const MoveRequest = z
  .object({
    from: VolumePath,
    to: VolumePath,
    overwrite: z.boolean().optional().meta({ description: "Replace an existing file (or empty directory) at `to`; default false (409)" }),
  })
  .strict()
  .meta({ id: "MoveRequest" });
export type MoveRequest = z.infer<typeof MoveRequest>;

export const RemoveQuery = z.object({
  path: VolumePath,
  recursive: QueryBoolean.optional().meta({ description: "Remove a non-empty directory and everything in it" }),
});

export const EditRequest = z
  .object({
    path: VolumePath,
    oldString: z.string().min(1, { error: "oldString must not be empty" }),
    newString: z.string(),
    replaceAll: z.boolean().optional().meta({ description: "Replace every occurrence; default false (exactly one must exist)" }),
    ifMatch: z.string().optional().meta({ description: "Edit only if the file's ETag is still this one" }),
  })
  .strict()
  .meta({ id: "EditRequest" });
export type EditRequest = z.infer<typeof EditRequest>;

export const EditResult = z
  .object({ path: z.string(), replacements: z.int(), size: z.int(), etag: z.string() })
  .meta({ id: "EditResult" });
export type EditResult = z.infer<typeof EditResult>;

export const MAX_BATCH_FILES = 10_000;
export const BatchFile = z
  .object({
    path: VolumePath,
    content: z.string().optional().meta({ description: "UTF-8 text" }),
    contentBase64: z.string().optional().meta({ description: "Bytes, base64 (instead of content)" }),
    mode: Mode.optional(),
    ifMatch: z.string().optional(),
    ifNoneMatch: z.literal("*").optional(),
  })
  .strict();
export type BatchFile = z.infer<typeof BatchFile>;

export const BatchWriteRequest = z
  .object({ files: z.array(BatchFile).min(1).max(MAX_BATCH_FILES) })
  .strict()
  .meta({ id: "BatchWriteRequest" });
export type BatchWriteRequest = z.infer<typeof BatchWriteRequest>;

export const BatchWriteResult = z.object({ files: z.array(WriteFileResult) }).meta({ id: "BatchWriteResult" });
export type BatchWriteResult = z.infer<typeof BatchWriteResult>;

export const SearchQuery = z.object({
  path: VolumePath.optional().meta({ description: "Directory to search, default `/`" }),
  glob: z.string().optional().meta({
    description: "Only paths matching this glob (`*`, `**`, `?`, `[a-z]`, `{a,b}`); without a `/` it matches the file name",
  }),
  query: z.string().optional().meta({ description: "Search file contents for this; without it, search names only" }),
  regex: QueryBoolean.optional().meta({ description: "`query` is a regular expression (Perl/JS syntax) instead of a literal" }),
  ignoreCase: QueryBoolean.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).optional().meta({ description: "Most results, default 100" }),
});

export const SearchMatch = z
  .object({
    path: z.string(),
    type: z.enum(FILE_TYPES).optional().meta({ description: "Name search: the entry's type" }),
    line: z.int().optional().meta({ description: "Content search: 1-based line number" }),
    text: z.string().optional().meta({ description: "Content search: the line (cut at 1000 characters)" }),
  })
  .meta({ id: "SearchMatch" });
export type SearchMatch = z.infer<typeof SearchMatch>;

export const SearchResult = z
  .object({
    matches: z.array(SearchMatch),
    truncated: z.boolean().meta({ description: "More matches exist than `limit`" }),
  })
  .meta({ id: "SearchResult" });
export type SearchResult = z.infer<typeof SearchResult>;

export const ReplaceRequest = z
  .object({
    path: VolumePath.optional(),
    glob: z.string().optional(),
    search: z.string().min(1, { error: "search must not be empty" }),
    replacement: z.string().meta({ description: "With `regex`, `$1`, `$<name>` and `$&` refer to the match" }),
    regex: z.boolean().optional(),
    ignoreCase: z.boolean().optional(),
    dryRun: z.boolean().optional().meta({ description: "Show what would change; change nothing" }),
    maxFiles: z.int().min(1).max(MAX_LIST_LIMIT).optional().meta({ description: "Refuse (409) if more files would change; default 1000" }),
  })
  .strict()
  .meta({ id: "ReplaceRequest" });
export type ReplaceRequest = z.infer<typeof ReplaceRequest>;

export const ReplaceChange = z.object({ line: z.int(), before: z.string(), after: z.string() });
export const ReplaceFileResult = z.object({
  path: z.string(),
  replacements: z.int(),
  etag: z.string().optional().meta({ description: "The new ETag (not in a dry run)" }),
  changes: z.array(ReplaceChange).optional().meta({ description: "Dry run: the changed lines (first 50 per file)" }),
});
export const ReplaceResult = z
  .object({
    dryRun: z.boolean(),
    filesChanged: z.int(),
    replacements: z.int(),
    files: z.array(ReplaceFileResult),
  })
  .meta({ id: "ReplaceResult" });
export type ReplaceResult = z.infer<typeof ReplaceResult>;

export const ARCHIVE_FORMATS = ["tar", "tar.gz", "zip"] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

export const ArchiveQuery = z.object({
  path: VolumePath.optional().meta({ description: "Directory (or file) to archive / to extract into, default `/`" }),
  format: z.enum(ARCHIVE_FORMATS).optional().meta({ description: "Default `tar`" }),
});

export const ExtractResult = z
  .object({
    path: z.string(),
    files: z.int().meta({ description: "Regular files written" }),
    directories: z.int(),
    symlinks: z.int(),
    bytes: z.number(),
    skipped: z.array(z.string()).meta({ description: "Entries left out: devices, fifos and sockets are never extracted" }),
  })
  .meta({ id: "ExtractResult" });
export type ExtractResult = z.infer<typeof ExtractResult>;

export const SIGNABLE_METHODS = ["GET", "PUT"] as const;
export const MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600;
export const SignRequest = z
  .object({
    path: VolumePath,
    method: z.enum(SIGNABLE_METHODS).optional().meta({ description: "GET (download, default) or PUT (upload)" }),
    expiresIn: z
      .int()
      .min(1)
      .max(MAX_SIGNED_URL_SECONDS)
      .optional()
      .meta({ description: "Seconds the URL stays valid, default 900 (15 minutes), at most 7 days" }),
  })
  .strict()
  .meta({ id: "SignRequest" });
export type SignRequest = z.infer<typeof SignRequest>;

export const SignedUrl = z
  .object({
    url: z.string().meta({ description: "Absolute URL, as seen by this request's Host" }),
    pathAndQuery: z.string().meta({ description: "The same, relative to cairnd's base URL" }),
    method: z.enum(SIGNABLE_METHODS),
    path: z.string(),
    expiresAt: z.string(),
  })
  .meta({ id: "SignedUrl" });
export type SignedUrl = z.infer<typeof SignedUrl>;

export const WATCH_EVENT_TYPES = ["create", "modify", "delete", "rename"] as const;
export const WatchEvent = z
  .object({
    type: z.enum(WATCH_EVENT_TYPES),
    path: z.string(),
    oldPath: z.string().optional().meta({ description: "rename: where it was" }),
    isDir: z.boolean(),
    at: z.string(),
  })
  .meta({ id: "WatchEvent" });
export type WatchEvent = z.infer<typeof WatchEvent>;

export const WatchQuery = z.object({
  path: VolumePath.optional().meta({ description: "Only events at or below this path, default `/`" }),
  cursor: z.string().optional().meta({ description: "Resume after this event id (same as the Last-Event-ID header)" }),
});

/** The hidden directory at a volume's root that holds in-flight uploads and staged writes. */
export const RESERVED_DIR = ".cairn";
