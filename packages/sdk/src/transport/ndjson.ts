/** The objects of an NDJSON body, one per non-blank line, as they arrive. */
export async function* ndjson<T>(body: NonNullable<Response["body"]>): AsyncGenerator<T> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += value;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) yield JSON.parse(line) as T;
      }
      if (done) {
        if (buf.trim()) yield JSON.parse(buf) as T;
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
