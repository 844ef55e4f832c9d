/** The content of one file, whole: written atomically, read as a stream (fetch, or the bulk transport in Node). */
import { CairnError, normalizeVolumePath, type WriteFileResult } from "@cairn/protocol";
import type { HttpClient, RequestOptions } from "../transport/http.js";
import type { FileBody, StreamBody } from "../transport/bulk-http.js";
import { emptyStream, isStream, iterate, toStream, type FileData } from "../transport/body.js";
import type { WritePreconditions } from "./types.js";

/** What the file calls need of a volume: its HTTP client and where its files are. */
export interface FileTarget {
  readonly http: HttpClient;
  /** The volume's id or name, as the URL carries it. */
  volumeRef(): string;
  /** `/v1/volumes/<volume>/files<rest>` */
  base(rest?: string): string;
}

function writeHeaders(options: WritePreconditions): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/octet-stream" };
  if (options.ifMatch) headers["if-match"] = options.ifMatch;
  if (options.ifNoneMatch) headers["if-none-match"] = options.ifNoneMatch;
  return headers;
}


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
export async function writeFile(
  t: FileTarget,
  path: string,
  data: FileData,
  options: RequestOptions & WritePreconditions = {},
): Promise<WriteFileResult> {
  if (isStream(data) && t.http.bulkPossible()) {
    const written = await bulkWrite(t, path, { pieces: iterate(data as AsyncIterable<Uint8Array>) }, options);
    // bulkPossible said yes: falling back now would lose what the iterator has already read.
    if (!written) throw new CairnError("INTERNAL", "The bulk transport refused a request it had accepted");
    return written;
  }
  const res = await t.http.request({
    method: "PUT",
    path: t.base("/content"),
    query: { path: normalizeVolumePath(path) },
    body: toStream(data),
    headers: writeHeaders(options),
    signal: options.signal,
  });
  return (await res.json()) as WriteFileResult;
}


/** A PUT of the whole file over the bulk transport, or undefined where that is not possible (bulk-http.ts). */
export async function bulkWrite(t: FileTarget, path: string, body: FileBody | StreamBody, options: RequestOptions & WritePreconditions): Promise<WriteFileResult | undefined> {
  const query = { path: normalizeVolumePath(path) };
  const res = await t.http.bulk({ method: "PUT", path: t.base("/content"), query, headers: writeHeaders(options), body, signal: options.signal });
  return res && (JSON.parse(new TextDecoder().decode(res.body)) as WriteFileResult);
}


/**
 * Read a file as a stream, or a byte range of it (`end` inclusive).
 *
 * @example
 * const stream = await volume.files.read("/big.bin", { range: { start: 0, end: 1023 } });
 */
export async function readFile(t: FileTarget, path: string, options: RequestOptions & { range?: { start: number; end?: number } } = {}): Promise<ReadableStream<Uint8Array>> {
  const headers: Record<string, string> = {};
  if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end ?? ""}`;
  const res = await t.http.request({
    method: "GET",
    path: t.base("/content"),
    query: { path: normalizeVolumePath(path) },
    headers,
    signal: options.signal,
  });
  return res.body ?? emptyStream();
}
