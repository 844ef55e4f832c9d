/**
 * Signed URLs: a link to one file of one volume, for one method, until it expires — usable with
 * plain curl and no key. The signature is HMAC-SHA256 (key: `<data-dir>/signing.key` or
 * CAIRN_SIGNING_KEY) over method, volume id, normalised path and expiry, compared in constant
 * time. Changing the key invalidates every URL handed out.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { CairnError, normalizeVolumePath } from "@cairn/protocol";

export type SignedMethod = "GET" | "PUT";

export interface SignedTarget {
  method: SignedMethod;
  volumeId: string;
  /** Normalised volume path. */
  path: string;
  /** Unix seconds. */
  expires: number;
}

export const signedContentPath = (volumeId: string) => `/v1/signed/volumes/${encodeURIComponent(volumeId)}/files/content`;

export class UrlSigner {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error("the signing key must be at least 32 bytes");
  }

  private mac(t: SignedTarget): Buffer {
    return createHmac("sha256", this.key).update(`cairn-signed-url-v1\n${t.method}\n${t.volumeId}\n${t.path}\n${t.expires}`).digest();
  }

  /** The path and query of a signed URL (relative to cairnd's base URL). */
  sign(t: SignedTarget): string {
    const q = new URLSearchParams({ path: t.path, method: t.method, expires: String(t.expires), signature: this.mac(t).toString("base64url") });
    return `${signedContentPath(t.volumeId)}?${q.toString()}`;
  }

  /**
   * Check a request against its signature. Every refusal is a 403 that says why, but the
   * signature is checked first, so an altered URL learns nothing about what else it got wrong.
   */
  verify(req: { method: string; volumeId: string; query: Record<string, unknown> }, now = Date.now()): { path: string; method: SignedMethod } {
    const q = req.query;
    const str = (k: string) => (typeof q[k] === "string" ? (q[k] as string) : undefined);
    const rawPath = str("path");
    const method = str("method");
    const expiresText = str("expires");
    const signature = str("signature");
    if (rawPath === undefined || method === undefined || expiresText === undefined || signature === undefined) {
      throw forbidden("This signed URL is incomplete (path, method, expires and signature are all needed); ask for a new one", "malformed");
    }
    if ((method !== "GET" && method !== "PUT") || !/^\d{1,12}$/.test(expiresText)) {
      throw forbidden("This signed URL was altered; ask for a new one", "invalid");
    }
    let path: string;
    try {
      path = normalizeVolumePath(rawPath);
    } catch {
      throw forbidden("This signed URL was altered; ask for a new one", "invalid");
    }
    const expires = Number(expiresText);
    const expected = this.mac({ method, volumeId: req.volumeId, path, expires });
    const given = Buffer.from(signature, "base64url");
    // timingSafeEqual needs equal lengths; compare against the expected MAC either way.
    const ok = given.length === expected.length ? timingSafeEqual(given, expected) : (timingSafeEqual(expected, expected), false);
    if (!ok) throw forbidden("The signature of this URL does not match (altered, or signed by another key); ask for a new one", "invalid");
    if (expires * 1000 <= now) {
      throw forbidden(`This signed URL expired at ${new Date(expires * 1000).toISOString()}; ask for a new one`, "expired");
    }
    const used = req.method === "HEAD" ? "GET" : req.method;
    if (used !== method) throw forbidden(`This URL is signed for ${method}, not ${req.method}`, "method");
    return { path, method };
  }
}

function forbidden(message: string, reason: string): CairnError {
  return new CairnError("FORBIDDEN", message, { meta: { reason } });
}
