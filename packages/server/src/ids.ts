import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase

/** `vol_3k9x0c2m7q4v8b1n5t6z`: prefix + 20 random base32 characters (100 bits). */
export function newId(prefix: string, length = 20): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
  return `${prefix}_${out}`;
}

export { ID_PATTERN } from "@cairn/protocol";
