/**
 * The one retry policy of the SDK: wait 200 ms before the first retry, doubling, at most 10 s.
 * Each caller decides how many attempts it makes, and only calls that are safe to repeat retry
 * (GETs, PUTs of a whole file, tus chunks the server acknowledges by offset).
 */

/** The wait before retry `attempt` (0-based). */
export function backoffMs(attempt: number): number {
  return Math.min(10_000, 200 * 2 ** attempt);
}

/** Wait `ms`, or reject with the signal's reason as soon as it aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
