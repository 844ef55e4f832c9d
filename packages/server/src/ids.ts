import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase

// Random bytes are drawn 4 KiB at a time: one id per request made a syscall-sized call each.
const pool = Buffer.alloc(4096);
let used = pool.length;

/** `vol_3k9x0c2m7q4v8b1n5t6z`: prefix + 20 random base32 characters (100 bits). */
export function newId(prefix: string, length = 20): string {
  if (used + length > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[pool[used + i]! & 31];
  used += length;
  return `${prefix}_${out}`;
}

export { ID_PATTERN } from "@cairn/protocol";
