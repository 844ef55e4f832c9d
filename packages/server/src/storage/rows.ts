/** What every table's rows share: timestamps and the unique-violation test of both databases. */

export const now = () => new Date().toISOString();

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string };
  return e?.code === "SQLITE_CONSTRAINT_UNIQUE" || e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY" || e?.code === "23505";
}
