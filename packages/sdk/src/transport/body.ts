/**
 * Request bodies: what a file can be written from, turned into what fetch or the bulk transport
 * sends, without holding a stream in memory.
 */

/** What a file can be written from. Streams are sent as they are read, never buffered whole. */
export type FileData = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export function toStream(data: FileData): BodyInit {
  if (typeof data === "string" || data instanceof Uint8Array || data instanceof ArrayBuffer || data instanceof Blob) {
    return data as BodyInit;
  }
  if (data instanceof ReadableStream) return data as BodyInit;
  const it = iterate(data as AsyncIterable<Uint8Array>);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await it.return?.(reason);
    },
  }) as unknown as BodyInit;
}

/** A body that arrives piece by piece (a Node stream, an async generator, a web stream), not one already in memory. */
export function isStream(data: FileData): boolean {
  return typeof data === "object" && data !== null && !(data instanceof Uint8Array) && !(data instanceof ArrayBuffer) && !(data instanceof Blob) && Symbol.asyncIterator in data;
}

/** What a Node.js `stream.Readable` offers beyond async iteration (duck-typed: the SDK imports no Node module). */
interface NodeReadableLike {
  read(size?: number): unknown;
  readableHighWaterMark: number;
  readableFlowing: boolean | null;
  readableObjectMode?: boolean;
  readableEnded?: boolean;
  readableEncoding?: string | null;
  destroy?(): unknown;
}

/** Pieces of at most this size are asked of a Node stream. */
const NODE_READ_BYTES = 4 * 1024 * 1024;

/**
 * Iterate a body. A Node stream is first asked for 4 MiB with `read(size)`, which raises its
 * highWaterMark to that (Node's Readable does so for any reader that asks for more), so an
 * `fs.createReadStream(path)` then reads 4 MiB per call instead of 64 KiB: 256 reads per GiB
 * rather than 16,384 thread-pool round trips, one at a time: about twice the throughput
 * (bench/RESULTS.md, "Why the I/O code looks as it does"). Nothing
 * is lost: whatever `read` returns is yielded first. A stream already flowing is left alone.
 */
export function iterate(data: AsyncIterable<Uint8Array>): AsyncIterator<Uint8Array> {
  const node = data as unknown as Partial<NodeReadableLike>;
  let first: Uint8Array | undefined;
  if (
    typeof node.read === "function" &&
    typeof node.readableHighWaterMark === "number" &&
    node.readableHighWaterMark < NODE_READ_BYTES &&
    node.readableFlowing !== true &&
    !node.readableObjectMode &&
    !node.readableEnded &&
    node.readableEncoding == null
  ) {
    const got = node.read(NODE_READ_BYTES);
    if (got !== null && got !== undefined) first = got as Uint8Array;
  }
  const it = data[Symbol.asyncIterator]();
  // Stopping early closes a Node stream, also one never read from (its iterator's `return` alone
  // would not: that iterator has not started).
  const destroy = typeof node.destroy === "function" ? () => node.destroy!() : undefined;
  if (!first && !destroy) return it;
  return {
    next: () => {
      if (!first) return it.next();
      const value = first;
      first = undefined;
      return Promise.resolve({ value, done: false });
    },
    return: (value?: unknown) => {
      destroy?.();
      return it.return?.(value) ?? Promise.resolve({ value: undefined, done: true });
    },
  };
}

/** An empty body. */
export const emptyStream = () => new ReadableStream<Uint8Array>({ start: (c) => c.close() });

/** A stream of one chunk. */
export function once(bytes: Uint8Array): BodyInit {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(bytes);
      controller.close();
    },
  }) as unknown as BodyInit;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function stringToBase64(s: string): string {
  return bytesToBase64(new TextEncoder().encode(s));
}
