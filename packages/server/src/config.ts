/** Configuration resolves once: option → environment variable → default, then frozen. */
import { resolve } from "node:path";
import { GiB, parseSize } from "@cairn/protocol";
import type { DatabaseConfig } from "./storage/metadata-store.js";
import { parseCidr } from "./network/policy.js";
import { parseUpstreams } from "./network/linux/dns-forwarder.js";

export interface Config {
  /** `--data-dir` / `CAIRN_DATA_DIR`, default `/var/lib/cairn`. Holds the pool, mounts, database and keys. */
  readonly dataDir: string;
  /** `--listen` / `CAIRN_LISTEN`, default `127.0.0.1:7070`. */
  readonly host: string;
  readonly port: number;
  /** `--region` / `CAIRN_REGION`, default `local`. */
  readonly region: string;
  /** `CAIRN_ADMIN_KEY`; else generated once into `<data-dir>/admin.key`. */
  readonly adminKey: string | undefined;
  /** `CAIRN_DATABASE_URL` (`postgres://…`), default SQLite at `<data-dir>/cairn.db`. */
  readonly database: DatabaseConfig;
  /** `CAIRN_POOL_SIZE`: size of the XFS pool image when the data dir cannot reflink. Default: 90% of free space, at most 1 TiB. */
  readonly poolSizeBytes: number | undefined;
  /** `CAIRN_IDLE_UNMOUNT_MS`, default 30000: how long a volume stays mounted after its last lease. */
  readonly idleUnmountMs: number;
  /** `CAIRN_MAX_VOLUME_SIZE`, default 100GiB. */
  readonly maxVolumeBytes: number;
  /** `CAIRN_MAX_CHECKPOINTS`, default 100: checkpoints one volume may keep. */
  readonly maxCheckpointsPerVolume: number;
  /** `CAIRN_POOL_RESERVE`, default 0.1: share of the pool kept free; checkpoints are refused below it. */
  readonly poolReserveRatio: number;
  /**
   * `CAIRN_POOL_OVERCOMMIT`, default 1: how many times the pool's size volumes, checkpoints and
   * sandbox disks may be promised. 1 admits only what fits; more is logged as a warning and shown in /healthz.
   */
  readonly poolOvercommit: number;
  /** `CAIRN_SANDBOX_DISK_SIZE`, default 4GiB: a sandbox's own writable disk when its create names no `diskGb`. */
  readonly sandboxDiskBytes: number;
  /** `CAIRN_LOCK_WAIT_MS`, default 30000: how long a new cairnd waits for one that is shutting down on the same data dir. */
  readonly lockWaitMs: number;
  /** `CAIRN_STOPPED_SANDBOX_RETENTION_MS`, default 86400000 (a day): how long a killed or failed sandbox stays listed. */
  readonly stoppedSandboxRetentionMs: number;
  /** `CAIRN_DEPLOY_DOMAIN`, default `localhost`: deployed apps answer at `<app>[.<env>].<domain>`. */
  readonly deployDomain: string;
  /** `CAIRN_DEPLOY_VOLUME_SIZE`, default 1GiB: size of a new app's persistent filesystem. */
  readonly deployVolumeBytes: number;
  /** `CAIRN_MAX_VOLUMES_PER_SANDBOX`, default 8. */
  readonly maxVolumesPerSandbox: number;
  /** `CAIRN_WARM_SANDBOXES`, default 2: sandboxes kept started ahead of demand (0 turns the pool off). */
  readonly warmSandboxes: number;
  /** `CAIRN_REGISTRY_MIRRORS`: `docker.io=https://mirror.example[,…][;host=url…]`, tried before the registry itself. */
  readonly registryMirrors: string | undefined;
  /** `CAIRN_REGISTRY_AUTH`: a Docker-style config.json (`{"auths": {host: {auth}}}`) with credentials per registry. */
  readonly registryAuth: string | undefined;
  /** `CAIRN_IMAGE_MAX_LAYERS`, default 32: images with more layers are merged into one tree a sandbox stacks as one. */
  readonly imageMaxLayers: number;
  /** `CAIRN_LOG_LEVEL`, default `info`. */
  readonly logLevel: string;
  /** `CAIRN_SIGNING_KEY` (hex, at least 32 bytes); else generated once into `<data-dir>/signing.key`. Signs file URLs. */
  readonly signingKey: string | undefined;
  /**
   * `CAIRN_CHECK_ERROR_CODES`, default 0. 1: log at error level ("undeclared error code") every
   * problem a route answers with a code its OpenAPI operation does not declare. The test harnesses
   * turn it on and fail on such a line; no answer changes.
   */
  readonly checkErrorCodes: boolean;
  /** `CAIRN_SANDBOX_NETWORK`, default `none`: the network of a sandbox whose create names none (`none` or `egress`). */
  readonly sandboxNetwork: "none" | "egress";
  /** `CAIRN_SANDBOX_SUBNET`: the sandboxes' IPv4 subnet; default a free /20 of 100.64.0.0/10, picked once per data dir. */
  readonly sandboxSubnet: string | undefined;
  /** `CAIRN_SANDBOX_DNS`: resolvers the sandboxes' DNS forwarder asks (`ip[:port]`, comma-separated); default the host's /etc/resolv.conf. */
  readonly sandboxDns: string | undefined;
}

export interface ConfigOptions {
  dataDir?: string | undefined;
  listen?: string | undefined;
  region?: string | undefined;
  adminKey?: string | undefined;
  databaseUrl?: string | undefined;
  poolSize?: string | undefined;
  idleUnmountMs?: number | undefined;
  maxVolumeSize?: string | undefined;
  logLevel?: string | undefined;
}

export class ConfigError extends Error {}

function intOf(name: string, text: string | undefined, def: number, min: number, max: number): number {
  if (text === undefined || text === "") return def;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  return n;
}

function ratioOf(name: string, text: string | undefined, def: number): number {
  if (text === undefined || text === "") return def;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new ConfigError(`${name} must be a fraction from 0 to 0.99, got "${text}"`);
  return n;
}

function overcommitOf(text: string | undefined): number {
  if (text === undefined || text === "") return 1;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 1 || n > 100) throw new ConfigError(`CAIRN_POOL_OVERCOMMIT must be a ratio from 1 (no overcommit) to 100, got "${text}"`);
  return n;
}

function signingKeyOf(text: string | undefined): string | undefined {
  if (text === undefined || text === "") return undefined;
  if (!/^([0-9a-fA-F]{2}){32,}$/.test(text)) throw new ConfigError("CAIRN_SIGNING_KEY must be at least 32 bytes in hex (64 hex digits)");
  return text.toLowerCase();
}

function networkModeOf(text: string | undefined): "none" | "egress" {
  if (text === undefined || text === "") return "none";
  if (text !== "none" && text !== "egress") throw new ConfigError(`CAIRN_SANDBOX_NETWORK must be none or egress, got "${text}"`);
  return text;
}

function subnetOf(text: string | undefined): string | undefined {
  if (text === undefined || text === "") return undefined;
  const c = parseCidr(text);
  if (!c || !text.includes("/") || c.prefix > 28) throw new ConfigError(`CAIRN_SANDBOX_SUBNET must be an IPv4 CIDR of /28 or larger (100.88.0.0/16), got "${text}"`);
  return text;
}

function dnsOf(text: string | undefined): string | undefined {
  if (text === undefined || text === "") return undefined;
  try {
    if (parseUpstreams(text).length === 0) throw new Error("empty");
  } catch {
    throw new ConfigError(`CAIRN_SANDBOX_DNS must be resolver addresses, ip[:port], comma-separated, got "${text}"`);
  }
  return text;
}

export function resolveConfig(options: ConfigOptions = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = resolve(options.dataDir ?? env.CAIRN_DATA_DIR ?? "/var/lib/cairn");
  const listen = options.listen ?? env.CAIRN_LISTEN ?? "127.0.0.1:7070";
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new ConfigError(`--listen must be host:port, got "${listen}"`);
  const host = m[1]!.replace(/^\[(.*)\]$/, "$1") || "0.0.0.0";
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`--listen port must be 0-65535, got ${port}`);
  const region = options.region ?? env.CAIRN_REGION ?? "local";
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(region)) throw new ConfigError(`--region must be lowercase letters, digits or hyphens, got "${region}"`);
  const dbUrl = options.databaseUrl ?? env.CAIRN_DATABASE_URL;
  const database: DatabaseConfig =
    dbUrl && /^postgres(ql)?:\/\//.test(dbUrl)
      ? { kind: "postgres", url: dbUrl }
      : { kind: "sqlite", path: dbUrl?.replace(/^sqlite:/, "") || resolve(dataDir, "cairn.db") };
  const sizeOf = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined || text === "") return undefined;
    const n = parseSize(text);
    if (n === undefined || n <= 0) throw new ConfigError(`${name} must be a size such as 100GiB, got "${text}"`);
    return n;
  };
  const idle = options.idleUnmountMs ?? (env.CAIRN_IDLE_UNMOUNT_MS ? Number(env.CAIRN_IDLE_UNMOUNT_MS) : 30_000);
  if (!Number.isFinite(idle) || idle < 0) throw new ConfigError("CAIRN_IDLE_UNMOUNT_MS must be a number of milliseconds");
  return Object.freeze({
    dataDir,
    host,
    port,
    region,
    adminKey: options.adminKey ?? env.CAIRN_ADMIN_KEY ?? undefined,
    database,
    poolSizeBytes: sizeOf("CAIRN_POOL_SIZE", options.poolSize ?? env.CAIRN_POOL_SIZE),
    idleUnmountMs: idle,
    maxVolumeBytes: sizeOf("CAIRN_MAX_VOLUME_SIZE", options.maxVolumeSize ?? env.CAIRN_MAX_VOLUME_SIZE) ?? 100 * GiB,
    maxCheckpointsPerVolume: intOf("CAIRN_MAX_CHECKPOINTS", env.CAIRN_MAX_CHECKPOINTS, 100, 1, 100_000),
    poolReserveRatio: ratioOf("CAIRN_POOL_RESERVE", env.CAIRN_POOL_RESERVE, 0.1),
    poolOvercommit: overcommitOf(env.CAIRN_POOL_OVERCOMMIT),
    stoppedSandboxRetentionMs: intOf("CAIRN_STOPPED_SANDBOX_RETENTION_MS", env.CAIRN_STOPPED_SANDBOX_RETENTION_MS, 86_400_000, 0, 10 * 365 * 86_400_000),
    lockWaitMs: intOf("CAIRN_LOCK_WAIT_MS", env.CAIRN_LOCK_WAIT_MS, 30_000, 0, 3_600_000),
    sandboxDiskBytes: sizeOf("CAIRN_SANDBOX_DISK_SIZE", env.CAIRN_SANDBOX_DISK_SIZE) ?? 4 * GiB,
    deployDomain: (env.CAIRN_DEPLOY_DOMAIN ?? "localhost").toLowerCase(),
    deployVolumeBytes: sizeOf("CAIRN_DEPLOY_VOLUME_SIZE", env.CAIRN_DEPLOY_VOLUME_SIZE) ?? 1 * GiB,
    maxVolumesPerSandbox: intOf("CAIRN_MAX_VOLUMES_PER_SANDBOX", env.CAIRN_MAX_VOLUMES_PER_SANDBOX, 8, 1, 64),
    warmSandboxes: intOf("CAIRN_WARM_SANDBOXES", env.CAIRN_WARM_SANDBOXES, 2, 0, 64),
    registryMirrors: env.CAIRN_REGISTRY_MIRRORS || undefined,
    registryAuth: env.CAIRN_REGISTRY_AUTH || undefined,
    imageMaxLayers: intOf("CAIRN_IMAGE_MAX_LAYERS", env.CAIRN_IMAGE_MAX_LAYERS, 32, 1, 400),
    logLevel: options.logLevel ?? env.CAIRN_LOG_LEVEL ?? "info",
    signingKey: signingKeyOf(env.CAIRN_SIGNING_KEY),
    checkErrorCodes: intOf("CAIRN_CHECK_ERROR_CODES", env.CAIRN_CHECK_ERROR_CODES, 0, 0, 1) === 1,
    sandboxNetwork: networkModeOf(env.CAIRN_SANDBOX_NETWORK),
    sandboxSubnet: subnetOf(env.CAIRN_SANDBOX_SUBNET),
    sandboxDns: dnsOf(env.CAIRN_SANDBOX_DNS),
  });
}

/**
 * glibc malloc settings for cairnd (the process in the namespace, started here, so they apply from
 * its first allocation). Moving a body through Node allocates and frees a 64 KiB buffer per socket
 * read; by default glibc hands freed heap back to the kernel as soon as 128 KiB are free at its
 * top, and the next buffers fault fresh pages in again. Fresh pages are what costs most on our
 * machines (a guest whose free memory goes back to the hypervisor): with these a PUT costs less
 * system time and runs faster (bench/RESULTS.md, "Why the I/O code looks as it does"). The heap keeps what it had at its peak instead (cairnd's
 * RSS stays at its high-water mark while moving GiB bodies). Settings the operator
 * gave in GLIBC_TUNABLES win.
 */
export function withMallocTunables(given: string | undefined): string {
  const ours = ["glibc.malloc.trim_threshold=134217728", "glibc.malloc.mmap_threshold=33554432"];
  const theirs = (given ?? "").split(":").filter(Boolean);
  const set = new Set(theirs.map((t) => t.split("=")[0]));
  return [...theirs, ...ours.filter((t) => !set.has(t.split("=")[0]))].join(":");
}

/**
 * V8 flags for cairnd, after the operator's own (`node` options and NODE_OPTIONS).
 *
 * `--no-concurrent-array-buffer-sweeping`, unless the operator already said how array buffers are
 * swept: Node's HTTP parser hands each request-body read to JavaScript as a new 64 KiB buffer; V8
 * frees those young buffers at each scavenge but, by default, finishes the accounting on a helper
 * thread. On a busy machine (2 cores shared with the client) that accounting lags, V8 sees
 * "external memory" pile up and starts a full mark-compact every few dozen MB of body; with the
 * accounting done in the scavenge itself a resumable upload takes far fewer of them and less CPU,
 * and a plain PUT is not slower (bench/RESULTS.md, "Why the I/O code looks as it does"). Marking stays concurrent, so pauses stay short.
 *
 * `--expose-gc`: cairnd collects the young generation after every 8 MiB of request body, so
 * those dead buffers do not pile up to V8's own 32 MiB trigger first (files/body-gc.ts).
 */
export function withV8Flags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)];
  const flags = [...execArgv];
  if (!given.some((a) => /^--(no-)?concurrent[-_]array[-_]buffer[-_]sweeping$|^--single[-_]threaded(-gc)?$/.test(a))) flags.push("--no-concurrent-array-buffer-sweeping");
  if (!given.some((a) => /^--(no-)?expose[-_]gc$/.test(a))) flags.push("--expose-gc");
  return flags;
}
