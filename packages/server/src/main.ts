#!/usr/bin/env node
/**
 * cairnd's entry point. It moves itself into its pinned private mount namespace first (a child
 * process under `nsenter`), so every mount it makes stays out of the host's namespace and
 * survives a cairnd restart.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { resolveConfig, withMallocTunables, withV8Flags, ConfigError, type ConfigOptions } from "./config.js";
import { startCairnd } from "./server.js";
import { dropForeignPins, ensurePinnedNamespace, inNamespace, namespaceId, releasePinnedNamespace } from "./host/namespace.js";
import { DataDirLocked } from "./host/data-dir-lock.js";

export const SERVER_HELP = `Usage: cairn server [options]

Start cairnd with embedded defaults (SQLite, local disk).

Options:
  --data-dir <dir>   data directory (env CAIRN_DATA_DIR, default /var/lib/cairn)
  --listen <addr>    host:port to listen on (env CAIRN_LISTEN, default 127.0.0.1:7070)
  --region <name>    region this host serves (env CAIRN_REGION, default local)
  --release          stop using the data dir's mount namespace: unmount everything it holds
                     (run only while cairnd is stopped)
  -h, --help         show this help

Environment:
  CAIRN_ADMIN_KEY                admin key (default: generated once into <data-dir>/admin.key, mode 0600)
  CAIRN_DATABASE_URL             postgres://… to keep metadata in PostgreSQL (default SQLite in the data dir)
  CAIRN_POOL_SIZE                size of the XFS pool image when the data dir cannot reflink (e.g. 200GiB)
  CAIRN_POOL_OVERCOMMIT          times the pool's size that may be promised (default 1: only what fits)
  CAIRN_POOL_RESERVE             share of the pool kept free; checkpoints are refused below it (default 0.1)
  CAIRN_IDLE_UNMOUNT_MS          how long an unused volume stays mounted (default 30000)
  CAIRN_MAX_VOLUME_SIZE          largest volume allowed (default 100GiB)
  CAIRN_MAX_CHECKPOINTS          checkpoints one volume may have (default 100)
  CAIRN_WARM_SANDBOXES           sandboxes kept started ahead of demand (default 2; 0: none)
  CAIRN_REGISTRY_AUTH            Docker-style config.json with credentials per registry (default none)
  CAIRN_REGISTRY_MIRRORS         docker.io=https://mirror[,…][;host=url…]: mirrors tried first (default none)
  CAIRN_IMAGE_MAX_LAYERS         more layers than this are merged into one tree (default 32)
  CAIRN_SANDBOX_DISK_SIZE        a sandbox's writable disk when its create names no diskGb (default 4GiB)
  CAIRN_MAX_VOLUMES_PER_SANDBOX  volumes one sandbox may mount (default 8)
  CAIRN_STOPPED_SANDBOX_RETENTION_MS  how long a killed or failed sandbox stays listed (default 86400000)
  CAIRN_DEPLOY_DOMAIN            deployments answer at <app>.<env>.<domain> (default localhost)
  CAIRN_DEPLOY_VOLUME_SIZE       size of a deployment's persistent volume (default 1GiB)
  CAIRN_SANDBOX_NETWORK          network of a sandbox whose create names none: none or egress (default none)
  CAIRN_SANDBOX_SUBNET           the sandboxes' IPv4 subnet (default: a free /20 of 100.64.0.0/10, kept per data dir)
  CAIRN_SANDBOX_DNS              resolvers for the sandboxes' DNS forwarder, ip[:port],… (default: /etc/resolv.conf's)
  CAIRN_LOCK_WAIT_MS             how long to wait for a cairnd shutting down on this data dir (default 30000)
  CAIRN_SIGNING_KEY              hex key that signs file URLs (default: generated into <data-dir>/signing.key)
  CAIRN_LOG_LEVEL                trace|debug|info|warn|error (default info)
  CAIRN_CHECK_ERROR_CODES        1: log an error for every problem code a route answers that /openapi.json
                                 does not declare for it (for tests; default 0)

Exit status 3: another cairnd serves this data dir, or the address is in use (one line says which).
`;

export async function runServer(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "data-dir": { type: "string" },
        listen: { type: "string" },
        region: { type: "string" },
        release: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`cairn server: ${(err as Error).message}\n\n${SERVER_HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(SERVER_HELP);
    return 0;
  }
  const options: ConfigOptions = { dataDir: values["data-dir"], listen: values.listen, region: values.region };
  let config;
  try {
    config = resolveConfig(options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cairn server: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (values.release) {
    try {
      const { sandboxes, namespace } = await releasePinnedNamespace(config.dataDir);
      process.stdout.write(
        namespace
          ? `released ${config.dataDir}: its mount namespace is gone, and with it every volume mount and loop device it held; ${sandboxes.length} sandbox${sandboxes.length === 1 ? "" : "es"} ended${sandboxes.length ? ` (${sandboxes.join(", ")})` : ""}\n`
          : `nothing to release: ${config.dataDir} has no pinned namespace (cairnd is not running and holds nothing)\n`,
      );
    } catch (err) {
      if (!(err instanceof DataDirLocked)) throw err;
      process.stderr.write(`cairn server: ${err.message}\n`);
      return 3;
    }
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write("cairn server: cairnd needs root (it creates loop devices and mounts)\n");
    return 1;
  }

  const nsId = process.env.CAIRN_NAMESPACE_ID;
  if (!nsId || !(await inNamespace(nsId))) {
    const { mkdir } = await import("node:fs/promises");
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    const pin = await ensurePinnedNamespace(config.dataDir);
    const script = fileURLToPath(new URL("./main.js", import.meta.url));
    // The server's stdin is a pipe from this launcher: when the launcher dies, however it dies
    // (kill -9 too), the server reads end-of-file at once and shuts down; no orphan keeps serving.
    const child = spawn("nsenter", [`--mount=${pin}`, "--", process.execPath, ...withV8Flags(process.execArgv, process.env.NODE_OPTIONS), script, ...argv], {
      stdio: ["pipe", "inherit", "inherit"],
      env: {
        ...process.env,
        CAIRN_NAMESPACE_ID: await namespaceId(pin),
        CAIRN_LAUNCHER_PIPE: "1",
        GLIBC_TUNABLES: withMallocTunables(process.env.GLIBC_TUNABLES),
      },
    });
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => child.kill(sig));
    return new Promise((resolve) => {
      child.on("exit", (code, signal) => resolve(code ?? (signal === "SIGKILL" ? 137 : 1)));
    });
  }

  await dropForeignPins(config.dataDir);
  let cairnd;
  try {
    cairnd = await startCairnd(config);
  } catch (err) {
    // What a person can act on is one line, not a stack trace.
    if (err instanceof DataDirLocked) {
      process.stderr.write(`cairn server: ${err.message}\n`);
      return 3;
    }
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
      process.stderr.write(`cairn server: ${config.host}:${config.port} is already in use; pick another with --listen host:port (or CAIRN_LISTEN)\n`);
      return 3;
    }
    throw err;
  }
  const log = cairnd.app.log;
  log.info({ url: cairnd.url, dataDir: config.dataDir, region: config.region, database: config.database.kind }, "cairnd listening");
  const keyNote = cairnd.adminKeySource === "env" ? "(from CAIRN_ADMIN_KEY)" : `(stored in ${config.dataDir}/admin.key)`;
  process.stderr.write(
    `\ncairnd is running.\n\n  export CAIRN_URL=${cairnd.url} CAIRN_API_KEY=${cairnd.adminKey}\n\n  admin key ${keyNote}\n  try: npx cairn volume create team-data\n\n`,
  );
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, "shutting down: finishing requests, releasing leases");
      cairnd.close().then(
        () => resolve(0),
        (err) => {
          log.error({ err }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGHUP", () => stop("SIGHUP"));
    // The launcher outside the namespace is gone (its end of our stdin closed): stop too.
    if (process.env.CAIRN_LAUNCHER_PIPE === "1") {
      process.stdin.on("end", () => stop("launcher exited"));
      process.stdin.on("close", () => stop("launcher exited"));
      process.stdin.on("error", () => stop("launcher exited"));
      process.stdin.resume();
    }
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === (await import("node:fs")).realpathSync(process.argv[1])) {
  runServer(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`cairnd: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
