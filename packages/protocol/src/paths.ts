/** Volume-relative POSIX paths: the one normaliser the server, SDK and CLI share. */
import { CairnError } from "./errors.js";

const utf8 = new TextEncoder();
const byteLength = (s: string): number => utf8.encode(s).length;

export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

/**
 * Normalise a volume path to `/a/b` form. Rejects NUL, empty names after normalisation of a
 * file path, names over 255 bytes, paths over 4096 bytes, and `..` that climbs above the root.
 * Returns the normalised absolute path ("/" for the root).
 */
export function normalizeVolumePath(input: string): string {
  if (typeof input !== "string" || input.length === 0) {
    throw new CairnError("INVALID_PATH", "Path is empty; give a path inside the volume such as /hello.txt");
  }
  if (input.includes("\0")) throw new CairnError("INVALID_PATH", "Path contains a NUL byte");
  if (byteLength(input) > MAX_PATH_BYTES) {
    throw new CairnError("INVALID_PATH", `Path is longer than ${MAX_PATH_BYTES} bytes`);
  }
  const out: string[] = [];
  for (const part of input.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) throw new CairnError("INVALID_PATH", `Path ${JSON.stringify(input)} escapes the volume root`);
      out.pop();
      continue;
    }
    if (byteLength(part) > MAX_NAME_BYTES) {
      throw new CairnError("INVALID_PATH", `A name in the path is longer than ${MAX_NAME_BYTES} bytes`);
    }
    out.push(part);
  }
  return "/" + out.join("/");
}
