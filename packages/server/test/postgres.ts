/** A real PostgreSQL server for tests: initdb in a temp dir, listening on 127.0.0.1 only. */
import { execFile } from "node:child_process";
import { mkdtemp, rm, chown } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
const BIN = "/usr/lib/postgresql/15/bin";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export interface Postgres {
  url: string;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<Postgres> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-pg-"));
  const { stdout: ids } = await exec("id", ["-u", "postgres"]);
  const { stdout: gids } = await exec("id", ["-g", "postgres"]);
  await chown(dir, Number(ids), Number(gids));
  const data = join(dir, "data");
  const asPg = (cmd: string, args: string[]) => exec("runuser", ["-u", "postgres", "--", join(BIN, cmd), ...args]);
  await asPg("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  await asPg("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await asPg("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
