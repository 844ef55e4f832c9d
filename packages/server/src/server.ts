/** Wire the parts together: metadata, pool, engine, services, HTTP. */
import { mkdir, readFile, writeFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { pino } from "pino";
import type { Config } from "./config.js";
import { compose } from "./compose.js";
import { newId } from "./ids.js";
import { AuthService, generateAdminKey } from "./auth/service.js";
import { randomBytes } from "node:crypto";
import type { SandboxService } from "./sandboxes/service.js";
import type { DeploymentService } from "./deployments/service.js";
import { CrunDriver, cgroupPrefix } from "./sandboxes/crun/driver.js";
import { MetadataStore } from "./storage/metadata-store.js";
import { LoopVolumeEngine } from "./volumes/loop/engine.js";
import { openPool } from "./volumes/loop/pool.js";
import { DataDirLock } from "./host/data-dir-lock.js";
import { RegistryClient, parseMirrors } from "./images/registry/client.js";
import { loadCredentials } from "./images/registry/auth.js";
import { PoolLayerStore } from "./images/store/layer-store.js";
import { ImageRecords } from "./images/records.js";
import { HostNetwork } from "./network/linux/host-network.js";
import type { SandboxPorts } from "./network/ports.js";
import { parseUpstreams } from "./network/linux/dns-forwarder.js";

export const VERSION = "0.1.0";
/** How long a graceful stop waits for in-flight requests before it closes their connections. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface Cairnd {
  app: FastifyInstance;
  url: string;
  adminKey: string;
  /** Where the admin key came from: the environment, or the generated file. */
  adminKeySource: "env" | "file";
  store: MetadataStore;
  engine: LoopVolumeEngine;
  close(): Promise<void>;
}

/** The key that signs file URLs: CAIRN_SIGNING_KEY, else generated once into <data-dir>/signing.key (0600). */
async function loadSigningKey(config: Config): Promise<Buffer> {
  if (config.signingKey) return Buffer.from(config.signingKey, "hex");
  const file = join(config.dataDir, "signing.key");
  await writeFile(file, randomBytes(32).toString("hex") + "\n", { mode: 0o600, flag: "wx" }).catch((err) => {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  });
  await chmod(file, 0o600);
  const key = Buffer.from((await readFile(file, "utf8")).trim(), "hex");
  if (key.length < 32) throw new Error(`${file} does not hold a key of at least 32 bytes (hex); delete it to make a new one`);
  return key;
}

async function loadAdminKey(config: Config): Promise<{ key: string; source: "env" | "file" }> {
  if (config.adminKey) return { key: config.adminKey, source: "env" };
  const file = join(config.dataDir, "admin.key");
  try {
    const key = (await readFile(file, "utf8")).trim();
    if (key) return { key, source: "file" };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const key = generateAdminKey();
  await writeFile(file, key + "\n", { mode: 0o600, flag: "wx" }).catch(async (err) => {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  });
  await chmod(file, 0o600);
  return { key: (await readFile(file, "utf8")).trim(), source: "file" };
}

export async function startCairnd(config: Config, options: { logger?: boolean | object | FastifyBaseLogger } = {}): Promise<Cairnd> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  // Before anything else touches the data dir: one cairnd per data dir.
  const lock = await DataDirLock.acquire(config.dataDir, { waitMs: config.lockWaitMs });
  let store: MetadataStore;
  let adminKey: string;
  let adminKeySource: "env" | "file";
  try {
    ({ key: adminKey, source: adminKeySource } = await loadAdminKey(config));
    store = await MetadataStore.open(config.database);
  } catch (err) {
    lock.release();
    throw err;
  }
  // Logs are written asynchronously (lines written meanwhile go out in one write): a production
  // server logs every request, and a synchronous write per line cost more than the request.
  // pino flushes what is pending when the process exits.
  const logger = options.logger ?? pino({ level: config.logLevel }, pino.destination({ dest: 1, sync: false }));
  let app: FastifyInstance | undefined;
  let sandboxesRef: SandboxService | undefined;
  let deploymentsRef: DeploymentService | undefined;
  let networkRef: HostNetwork | undefined;
  let portsRef: SandboxPorts | undefined;
  try {
    const pool = await openPool(config.dataDir, { sizeBytes: config.poolSizeBytes });
    const defaultProject = await store.projects.ensure(newId("prj"), "default");
    const auth = new AuthService(store, adminKey, defaultProject);
    // The engine logs through the app's logger once it exists.
    const log = {
      info: (o: object, m?: string) => app?.log.info(o, m),
      warn: (o: object, m?: string) => app?.log.warn(o, m),
      error: (o: object, m?: string) => app?.log.error(o, m),
      debug: (o: object, m?: string) => app?.log.debug(o, m),
    };
    const engine = new LoopVolumeEngine({
      pool,
      mountRoot: join(config.dataDir, "mounts"),
      idleUnmountMs: config.idleUnmountMs,
      log,
      onUnmount: async (id, usage) => {
        await store.volumes.update(id, { usedBytes: usage.usedBytes });
      },
    });
    await CrunDriver.prepareHost();
    const network = await HostNetwork.open({
      dataDir: config.dataDir,
      subnet: config.sandboxSubnet,
      upstreams: config.sandboxDns ? parseUpstreams(config.sandboxDns) : undefined,
      log,
    });
    networkRef = network;
    const driver = new CrunDriver(
      await CrunDriver.bundleRoot(join(pool.root, "sandboxes"), cgroupPrefix(config.dataDir)),
      join(config.dataDir, "run", "crun"),
      cgroupPrefix(config.dataDir),
      join(pool.root, "templates"),
      network.nameserver,
    );
    const imagesRoot = join(pool.root, "images");
    const images = {
      registry: new RegistryClient({ credentials: loadCredentials(config.registryAuth), mirrors: parseMirrors(config.registryMirrors) }),
      layers: await new PoolLayerStore(imagesRoot).open(),
      records: await new ImageRecords(join(imagesRoot, "manifests")).open(),
      scratchDir: join(imagesRoot, "tmp"),
    };
    let listeningPort = config.port;
    const composed = await compose({
      config,
      store,
      auth,
      engine,
      checkpointStore: engine,
      driver,
      images,
      network,
      poolRoot: pool.root,
      signingKey: await loadSigningKey(config),
      log,
      logger,
      version: VERSION,
      port: () => listeningPort,
    });
    const { sandboxes, volumes, deployments, ports } = composed;
    portsRef = ports;
    sandboxesRef = sandboxes;
    deploymentsRef = deployments;
    const server = composed.app;
    app = server;
    // Sandboxes first: leases of running sandboxes are taken back before the volume reconciler
    // unmounts what nothing holds.
    await sandboxes.reconcile();
    await volumes.reconcile();
    // Images no name points to and no sandbox runs, and layers no image needs, go.
    await composed.images.collect().catch((err) => log.warn({ err }, "collecting unused image layers failed"));
    const address = await server.listen({ host: config.host, port: config.port });
    listeningPort = Number(new URL(address).port);
    await deployments.reconcile();
    const url = address.replace("://[::1]", "://localhost");
    lock.describe(url);
    let closing: Promise<void> | undefined;
    return {
      app: server,
      url,
      adminKey,
      adminKeySource,
      store,
      engine,
      close() {
        closing ??= (async () => {
          lock.describe(url, true); // a successor started now waits for us
          // In-flight requests finish first, within a grace: a client that stopped reading an
          // answer (its socket full, never closed) must not hold a restart up for minutes.
          const grace = setTimeout(() => server.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
          await server.close();
          clearTimeout(grace);
          await deploymentsRef?.close(); // superseded versions stop before the sandboxes' service does
          await sandboxesRef?.close();
          portsRef?.close();
          await networkRef?.close();
          await engine.close(); // then every lease is gone: unmount
          await store.close();
          lock.release();
        })();
        return closing;
      },
    };
  } catch (err) {
    await app?.close().catch(() => undefined);
    await networkRef?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    lock.release();
    throw err;
  }
}
