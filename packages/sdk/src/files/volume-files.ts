/**
 * `volume.files`: everything inside a volume, no sandbox needed — read, write, batch-write, stat,
 * exists, list, mkdir, move, remove, edit, search, replace, archives, signed URLs, watch and
 * resumable uploads. The plain calls are here; whole-file content, local-file transfers,
 * resumable uploads and watch each have a module of their own in this folder.
 */
import {
  CairnError,
  normalizeVolumePath,
  type ArchiveFormat,
  type BatchWriteResult,
  type EditResult,
  type ExtractResult,
  type FileEntry,
  type FileList,
  type MkdirResult,
  type ReplaceResult,
  type SearchResult,
  type SignedUrl,
  type WatchEvent,
  type WriteFileResult,
} from "@cairn/protocol";
import type { HttpClient, RequestOptions } from "../transport/http.js";
import { bytesToBase64, emptyStream, toStream, type FileData } from "../transport/body.js";
import { readFile, writeFile, type FileTarget } from "./content.js";
import { download, writeFromFile } from "./local.js";
import { upload, uploadFromFile } from "./upload.js";
import { watch } from "./watch.js";
import type { BatchFileInput, ReplaceOptions, SearchOptions, UploadOptions, UploadResult, WatchMessage, WatchOptions, WritePreconditions } from "./types.js";

export type { FileEntry, FileList, MkdirResult, EditResult, BatchWriteResult, SearchResult, ReplaceResult, ExtractResult, SignedUrl, WatchEvent, ArchiveFormat };
export type { FileData } from "../transport/body.js";
export type * from "./types.js";

const enc = (s: string) => encodeURIComponent(s);

/**
 * Files of one volume, read and written directly: no sandbox needed.
 *
 * @example
 * await volume.files.write("/hello.txt", "persistent\n");
 * const text = await volume.files.readText("/hello.txt");
 */
export class VolumeFiles {
  constructor(
    private readonly http: HttpClient,
    volumeRef: () => string,
  ) {
    this.#target = { http, volumeRef, base: (rest = "") => `/v1/volumes/${enc(volumeRef())}/files${rest}` };
  }

  readonly #target: FileTarget;

  private base(rest = ""): string {
    return this.#target.base(rest);
  }

  /** Read a whole file into memory. @example const bytes = await volume.files.readBytes("/logo.png"); */
  /**
   * Write a whole file atomically (readers see the old or the new content). Missing parent
   * directories are created. Throws `QUOTA_EXCEEDED` when it does not fit; the old content stays.
   * A stream that fails part way fails the write, and the volume keeps the old content. In Node
   * over plain http a stream goes to the socket as it comes, without `fetch` (bulk-http.ts); for a
   * local file, `writeFromFile` is faster still.
   *
   * @example
   * await volume.files.write("/data/report.csv", fs.createReadStream("report.csv"));
   */
  async write(
    path: string,
    data: FileData,
    options: RequestOptions & WritePreconditions = {},
  ): Promise<WriteFileResult> {
    return writeFile(this.#target, path, data, options);
  }

  /**
   * Read a file as a stream, or a byte range of it (`end` inclusive).
   *
   * @example
   * const stream = await volume.files.read("/big.bin", { range: { start: 0, end: 1023 } });
   */
  async read(path: string, options: RequestOptions & { range?: { start: number; end?: number } } = {}): Promise<ReadableStream<Uint8Array>> {
    return readFile(this.#target, path, options);
  }

  /**
   * Download a file to the local disk (Node): written to a temporary file beside `localPath`,
   * synced, then renamed, so `localPath` is never a partial file; an existing file there is
   * replaced. Large files are written in 4 MiB blocks with O_DIRECT where the local filesystem
   * allows it (no copy into the page cache: 2-3x faster than piping `read` into a file here).
   *
   * @example
   * const { bytes } = await volume.files.download("/big.bin", "./big.bin", { onProgress: (n) => bar.update(n) });
   */
  async download(path: string, localPath: string, options: RequestOptions & { onProgress?: (bytes: number) => void } = {}): Promise<{ path: string; bytes: number }> {
    return download(this.#target, path, localPath, options);
  }

  /**
   * Write a local file into the volume (Node): atomic like `write`, and the fastest way to send
   * one. Over plain http it is read into a few reused buffers and sent as they free up
   * (bulk-http.ts), with no stream or fetch in between; elsewhere it goes through `write`. A file
   * that changes size while it is sent fails the write, and the volume keeps the old content. For
   * a transfer that must survive a broken connection, use `upload` (resumable).
   *
   * @example
   * const r = await volume.files.writeFromFile("/models/weights.bin", "./weights.bin", { onProgress: (n, total) => bar.update(n, total) });
   */
  async writeFromFile(
    path: string,
    localPath: string,
    options: RequestOptions & WritePreconditions & { onProgress?: (bytes: number, total: number) => void } = {},
  ): Promise<WriteFileResult> {
    return writeFromFile(this.#target, path, localPath, options);
  }

  /**
   * Change events under `path` (create, modify, delete, rename), for changes through the API and
   * inside sandboxes. Reconnects by itself and resumes from the last cursor; a `reset` message
   * means events were missed (list again). Stop with the signal or by breaking out of the loop.
   *
   * @example
   * for await (const m of volume.files.watch("/inbox", { signal })) if (m.type === "create") console.log(m.path);
   */
  async *watch(path = "/", options: WatchOptions = {}): AsyncGenerator<WatchMessage> {
    yield* watch(this.#target, path, options);
  }

  /**
   * `upload` of a local file (Node): the same resumable tus upload, but each chunk goes from the
   * file to the socket through a few reused buffers (no chunk is held in memory), its checksum
   * computed from the file while the chunk before it is sent: CRC-32 when cairnd offers it (2.5×
   * SHA-256's speed, on both sides), else SHA-256. Over plain http a 1 GiB upload took 3.6-3.8 s
   * here with SHA-256, instead of 5.2-5.8 s with `upload` of a stream (bulk-http.ts); elsewhere
   * it is `upload` of the file's stream. A file that shrinks during the upload fails it.
   *
   * @example
   * const r = await volume.files.uploadFromFile("/data/big.bin", "./big.bin", { onUploadUrl: save, onProgress: (n, total) => bar.update(n) });
   */
  async uploadFromFile(path: string, localPath: string, options: UploadOptions = {}): Promise<UploadResult> {
    return uploadFromFile(this.#target, path, localPath, options);
  }

  /**
   * A resumable upload (tus 1.0): sent in checksummed chunks, each stored durably before the next;
   * network errors are retried from the last stored byte, and `uploadUrl` resumes an upload
   * interrupted in an earlier process.
   *
   * @example
   * const r = await volume.files.upload("/data/big.bin", await fs.openAsBlob("big.bin"), {
   *   onUploadUrl: (url) => saveForLater(url),
   *   onProgress: (done, total) => console.log(done, total),
   * });
   */
  async upload(path: string, data: Blob | Uint8Array | ArrayBuffer | string | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>, options: UploadOptions = {}): Promise<UploadResult> {
    return upload(this.#target, path, data, options);
  }

  async readBytes(path: string, options: RequestOptions = {}): Promise<Uint8Array> {
    const stream = await this.read(path, options);
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /** Read a whole file as UTF-8 text. @example console.log(await volume.files.readText("/hello.txt")); */
  async readText(path: string, options: RequestOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path, options));
  }

  /**
   * Type, size, mode, mtime, ETag (files) and target (symlinks). A final symlink is described
   * itself unless `follow`. Throws `PATH_NOT_FOUND` when nothing is there.
   *
   * @example
   * const { type, size, etag } = await volume.files.stat("/data/report.csv");
   */
  async stat(path: string, options: RequestOptions & { follow?: boolean } = {}): Promise<FileEntry> {
    return this.http.json<FileEntry>({
      method: "GET",
      path: this.base("/stat"),
      query: { path: normalizeVolumePath(path), follow: options.follow },
      signal: options.signal,
    });
  }

  /** Whether anything (file, directory, symlink…) is at `path`. @example if (await volume.files.exists("/cache")) … */
  async exists(path: string, options: RequestOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, options);
      return true;
    } catch (err) {
      if (err instanceof CairnError && err.code === "PATH_NOT_FOUND") return false;
      throw err;
    }
  }

  /**
   * One page of a directory listing, sorted by path (depth first when `recursive`).
   *
   * @example
   * const { items, nextCursor } = await volume.files.list("/data", { recursive: true, limit: 500 });
   */
  async list(
    path = "/",
    options: RequestOptions & { recursive?: boolean; prefix?: string; limit?: number; cursor?: string } = {},
  ): Promise<FileList> {
    return this.http.json<FileList>({
      method: "GET",
      path: this.base("/list"),
      query: {
        path: normalizeVolumePath(path),
        recursive: options.recursive,
        prefix: options.prefix,
        limit: options.limit,
        cursor: options.cursor,
      },
      signal: options.signal,
    });
  }

  /**
   * Every entry of a directory, fetched page by page.
   *
   * @example
   * for await (const entry of volume.files.iterate("/", { recursive: true })) console.log(entry.path);
   */
  async *iterate(path = "/", options: RequestOptions & { recursive?: boolean; prefix?: string; pageSize?: number } = {}): AsyncGenerator<FileEntry> {
    let cursor: string | undefined;
    do {
      const page = await this.list(path, {
        ...options,
        ...(options.pageSize !== undefined ? { limit: options.pageSize } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /** `mkdir -p`. @example await volume.files.mkdir("/data/2026/11", { mode: 0o750 }); */
  async mkdir(path: string, options: RequestOptions & { mode?: number } = {}): Promise<MkdirResult> {
    const body: { path: string; mode?: number } = { path: normalizeVolumePath(path) };
    if (options.mode !== undefined) body.mode = options.mode;
    return this.http.json<MkdirResult>({ method: "POST", path: this.base("/mkdir"), json: body, signal: options.signal });
  }

  /**
   * Move or rename (atomic). Throws `PATH_ALREADY_EXISTS` if `to` exists, unless `overwrite`.
   *
   * @example
   * await volume.files.move("/tmp/report.csv", "/reports/2026-11.csv");
   */
  async move(from: string, to: string, options: RequestOptions & { overwrite?: boolean } = {}): Promise<FileEntry> {
    return this.http.json<FileEntry>({
      method: "POST",
      path: this.base("/move"),
      json: { from: normalizeVolumePath(from), to: normalizeVolumePath(to), overwrite: options.overwrite ?? false },
      signal: options.signal,
    });
  }

  /**
   * Remove a file or symlink, or a directory (`recursive` when it is not empty).
   *
   * @example
   * await volume.files.remove("/cache", { recursive: true });
   */
  async remove(path: string, options: RequestOptions & { recursive?: boolean; ifMatch?: string } = {}): Promise<void> {
    await this.http.json({
      method: "DELETE",
      path: this.base(),
      query: { path: normalizeVolumePath(path), recursive: options.recursive },
      ...(options.ifMatch ? { headers: { "if-match": options.ifMatch } } : {}),
      signal: options.signal,
    });
  }

  /**
   * Replace one exact occurrence of `oldString` (or all, with `replaceAll`). Throws
   * `EDIT_NO_MATCH` when absent and `EDIT_AMBIGUOUS` when it occurs more than once.
   *
   * @example
   * await volume.files.edit("/app/config.toml", 'port = 8080', 'port = 9090');
   */
  async edit(
    path: string,
    oldString: string,
    newString: string,
    options: RequestOptions & { replaceAll?: boolean; ifMatch?: string } = {},
  ): Promise<EditResult> {
    const { signal, ...rest } = options;
    return this.http.json<EditResult>({
      method: "POST",
      path: this.base("/edit"),
      json: { path: normalizeVolumePath(path), oldString, newString, ...rest },
      signal,
    });
  }

  /**
   * Write many files in one request, all or nothing (up to 64 MiB of content; for more, use
   * `uploadArchive`).
   *
   * @example
   * await volume.files.writeMany([{ path: "/a.txt", content: "A" }, { path: "/bin/run.sh", content: "#!/bin/sh\n", mode: 0o755 }]);
   */
  async writeMany(files: BatchFileInput[], options: RequestOptions = {}): Promise<BatchWriteResult> {
    const body = files.map((f) => {
      const out: Record<string, unknown> = { path: normalizeVolumePath(f.path) };
      if (typeof f.content === "string") out.content = f.content;
      else out.contentBase64 = bytesToBase64(f.content);
      if (f.mode !== undefined) out.mode = f.mode;
      if (f.ifMatch !== undefined) out.ifMatch = f.ifMatch;
      if (f.ifNoneMatch !== undefined) out.ifNoneMatch = f.ifNoneMatch;
      return out;
    });
    return this.http.json<BatchWriteResult>({ method: "POST", path: this.base("/batch"), json: { files: body }, signal: options.signal });
  }

  /**
   * Search names by glob, or contents by literal or regex (with line numbers).
   *
   * @example
   * const { matches } = await volume.files.search({ path: "/src", glob: "*.ts", query: "TODO" });
   */
  async search(options: SearchOptions): Promise<SearchResult> {
    const { signal, path, ...rest } = options;
    return this.http.json<SearchResult>({
      method: "GET",
      path: this.base("/search"),
      query: { ...rest, path: path === undefined ? undefined : normalizeVolumePath(path) },
      signal,
    });
  }

  /**
   * Replace across files, all or nothing; `dryRun` shows the changed lines and changes nothing.
   *
   * @example
   * const preview = await volume.files.replace({ glob: "*.md", search: "Cairn v1", replacement: "Cairn v2", dryRun: true });
   */
  async replace(options: ReplaceOptions): Promise<ReplaceResult> {
    const { signal, path, ...rest } = options;
    return this.http.json<ReplaceResult>({
      method: "POST",
      path: this.base("/replace"),
      json: { ...rest, ...(path !== undefined ? { path: normalizeVolumePath(path) } : {}) },
      signal,
    });
  }

  /**
   * Download a directory as an archive stream (`tar` default, `tar.gz`, `zip`).
   *
   * @example
   * const tar = await volume.files.downloadArchive("/project", { format: "tar.gz" });
   */
  async downloadArchive(path = "/", options: RequestOptions & { format?: ArchiveFormat } = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.http.request({
      method: "GET",
      path: this.base("/archive"),
      query: { path: normalizeVolumePath(path), format: options.format },
      signal: options.signal,
    });
    return res.body ?? emptyStream();
  }

  /**
   * Extract an archive into a directory (created if missing, merged otherwise), all or nothing.
   *
   * @example
   * await volume.files.uploadArchive("/project", fs.createReadStream("project.tar"));
   */
  async uploadArchive(path: string, data: FileData, options: RequestOptions & { format?: ArchiveFormat } = {}): Promise<ExtractResult> {
    const format = options.format ?? "tar";
    const contentType = format === "zip" ? "application/zip" : format === "tar.gz" ? "application/gzip" : "application/x-tar";
    const res = await this.http.request({
      method: "PUT",
      path: this.base("/archive"),
      query: { path: normalizeVolumePath(path), format },
      body: toStream(data),
      headers: { "content-type": contentType },
      signal: options.signal,
    });
    return (await res.json()) as ExtractResult;
  }

  /**
   * A URL that works without a key, for this path and method only, until it expires.
   *
   * @example
   * const { url } = await volume.files.sign("/report.pdf", { expiresIn: 15 * 60 });
   * // curl -o report.pdf "$url"
   */
  async sign(path: string, options: RequestOptions & { method?: "GET" | "PUT"; expiresIn?: number } = {}): Promise<SignedUrl> {
    const { signal, ...rest } = options;
    const r = await this.http.json<SignedUrl>({
      method: "POST",
      path: this.base("/sign"),
      json: { path: normalizeVolumePath(path), ...rest },
      signal,
    });
    // The client's base URL is how this caller reaches cairnd (the server only knows its Host header).
    return { ...r, url: this.http.options.url + r.pathAndQuery };
  }
}
