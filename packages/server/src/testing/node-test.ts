/** One fake cairnd per test file (node:test): started before the first test, closed after the last. */
import { after, before } from "node:test";
import { fakeCairnd, type FakeCairnd } from "./fake-cairnd.js";
import type { Config } from "../config.js";

export function useFakeCairnd(overrides: Partial<Config> = {}): () => FakeCairnd {
  let c: FakeCairnd | undefined;
  before(async () => {
    c = await fakeCairnd(overrides);
  });
  after(async () => {
    await c?.close();
  });
  return () => {
    if (!c) throw new Error("the fake cairnd is not started yet (call inside a test)");
    return c;
  };
}

/** The problem+json code of a response ("ok" for a 2xx). */
export function codeOf(res: { statusCode: number; body: string }): string {
  if (res.statusCode < 300) return "ok";
  try {
    return (JSON.parse(res.body) as { code?: string }).code ?? `status ${res.statusCode}`;
  } catch {
    return `status ${res.statusCode}: ${res.body.slice(0, 100)}`;
  }
}
