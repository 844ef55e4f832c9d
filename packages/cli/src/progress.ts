/**
 * A progress bar for transfers, on stderr and only when stderr is a terminal: scripts and pipes
 * see nothing (the result goes to stdout as JSON if they ask for it).
 */
import { formatSize } from "@cairn/protocol";

export interface Progress {
  /** Bytes done so far (absolute). */
  update(done: number): void;
  /** More bytes done (relative). */
  add(bytes: number): void;
  /** Learn the total later (e.g. after a stat). */
  setTotal(total: number | undefined): void;
  /** Erase the bar (call on success and on failure). */
  done(): void;
}

const noop: Progress = { update: () => undefined, add: () => undefined, setTotal: () => undefined, done: () => undefined };

const formatRate = (bytesPerSecond: number) => `${formatSize(Math.max(0, Math.round(bytesPerSecond)))}/s`;

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}

/** The line for a state, without terminal codes (exported for tests). */
export function progressLine(label: string, done: number, total: number | undefined, elapsedMs: number, width = 80): string {
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  if (total === undefined || total <= 0) {
    return `${label} ${formatSize(done)} ${formatRate(rate)}`.slice(0, width);
  }
  const ratio = Math.min(1, done / total);
  const pct = `${String(Math.floor(ratio * 100)).padStart(3)}%`;
  const eta = rate > 0 && done < total ? ` ETA ${formatEta((total - done) / rate)}` : "";
  const tail = ` ${pct} ${formatSize(done)}/${formatSize(total)} ${formatRate(rate)}${eta}`;
  const barWidth = Math.max(10, Math.min(40, width - label.length - tail.length - 4));
  const filled = Math.round(ratio * barWidth);
  return `${label} [${"#".repeat(filled)}${".".repeat(barWidth - filled)}]${tail}`.slice(0, width);
}

export function progress(label: string, total: number | undefined, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return noop;
  const started = Date.now();
  let last = 0;
  let current = 0;
  let size = total;
  let shown = false;
  let finished = false;
  const draw = (force = false) => {
    if (finished) return; // nothing is drawn after done(): the final line stays clean
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    shown = true;
    stream.write(`\r\u001b[2K${progressLine(label, current, size, now - started, stream.columns || 80)}`);
  };
  return {
    update(done) {
      current = done;
      draw();
    },
    add(bytes) {
      current += bytes;
      draw();
    },
    setTotal(t) {
      size = t;
      draw(true);
    },
    done() {
      // Idempotent: called before the final line is printed, and again on the way out.
      if (shown) stream.write("\r\u001b[2K");
      shown = false;
      finished = true;
    },
  };
}

/** Pass chunks through, counting them into a progress bar. */
export async function* counted(source: AsyncIterable<Uint8Array>, bar: Progress): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const chunk of source) {
    n += chunk.byteLength;
    bar.update(n);
    yield chunk;
  }
}
