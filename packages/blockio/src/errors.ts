/** Errors of transfers from local files. No Node module is imported here: any runtime may load it. */

/**
 * A local file changed while it was being sent (it ended early or grew past the length it had):
 * the one error every transfer from a local file fails with, wherever it noticed.
 */
export class LocalFileChangedError extends Error {
  constructor(
    readonly file: string,
    /** The byte at which the change showed. */
    readonly at: number,
    how: "shrank" | "grew" = "shrank",
  ) {
    super(`${file} ${how === "shrank" ? `ended at byte ${at}, before the length being sent` : `grew past the ${at} bytes being sent`}: it changed while it was sent`);
    this.name = "LocalFileChangedError";
  }
}
