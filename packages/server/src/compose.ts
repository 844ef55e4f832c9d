/**
 * The services and the HTTP app wired from their parts: a metadata store, a volume engine with its
 * checkpoint store, a sandbox driver. `server.ts` gives it the real parts; `testing/fake-cairnd.ts`
 * gives it fakes, for tests without root.
 */
import { join } from "node:path";
import type { FastifyInstance, FastifyServerOptions } from "fastify";
import type { Config } from "./config.js";
import { buildApp } from "./http/app.js";
import type { Logger } from "./logger.js";
import type { AuthService } from "./auth/service.js";
import { VolumeService } from "./volumes/service.js";
import { CheckpointService } from "./checkpoints/service.js";
import { FileService } from "./files/service.js";
import { SandboxService } from "./sandboxes/service.js";
import { DeploymentService } from "./deployments/service.js";
import type { MetadataStore } from "./storage/metadata-store.js";
import type { VolumeEngine, VolumeReconciler } from "./volumes/port.js";
import type { CheckpointStore } from "./checkpoints/port.js";
import type { SandboxDriver } from "./sandboxes/port.js";
import { PoolCapacity } from "./volumes/capacity.js";

export interface Parts {
  config: Config;
  store: MetadataStore;
  auth: AuthService;
  engine: VolumeEngine & VolumeReconciler;
  checkpointStore: CheckpointStore;
  driver: SandboxDriver;
  /** The filesystem the pool is on (admission reads its free space). */
  poolRoot: string;
  signingKey: Buffer;
  log: Logger;
  logger: FastifyServerOptions["logger"];
  version: string;
  /** The port cairnd listens on, once it does (deployment URLs name it). */
  port: () => number;
}

export interface Composed {
  app: FastifyInstance;
  volumes: VolumeService;
  checkpoints: CheckpointService;
  files: FileService;
  sandboxes: SandboxService;
  deployments: DeploymentService;
  capacity: PoolCapacity;
}

export async function compose(parts: Parts): Promise<Composed> {
  const { config, store, auth, engine, checkpointStore, driver, log } = parts;
  let sandboxDisks = async () => 0;
  const capacity = new PoolCapacity({
    poolRoot: parts.poolRoot,
    overcommit: config.poolOvercommit,
    // Each at the most it can take: a volume its size, a checkpoint the blocks it holds (or, while
    // it is being taken, its volume's), a sandbox its disk.
    committed: async () => {
      let bytes = await sandboxDisks();
      for (const v of await store.volumes.all()) if (v.status !== "deleted") bytes += v.sizeBytes;
      for (const cp of await store.checkpoints.all()) {
        bytes += (await checkpointStore.allocatedBytes({ volumeId: cp.volumeId, checkpointId: cp.id })) || (await engine.allocatedBytes({ volumeId: cp.volumeId }));
      }
      return bytes;
    },
  });
  if (config.poolOvercommit > 1) {
    log.warn({ overcommit: config.poolOvercommit }, "CAIRN_POOL_OVERCOMMIT > 1: volumes may be promised more space than the pool has; a full pool then fails writes inside volumes");
  }
  const volumes = new VolumeService({ store, engine, checkpointStore, config, log, capacity });
  const checkpoints = new CheckpointService({
    store,
    engine,
    checkpointStore,
    volumes,
    log,
    maxPerVolume: config.maxCheckpointsPerVolume,
    poolReserveRatio: config.poolReserveRatio,
    poolRoot: parts.poolRoot,
    capacity,
  });
  const sandboxes = new SandboxService({
    store,
    engine,
    checkpointStore,
    volumes,
    checkpoints,
    driver,
    log,
    region: config.region,
    maxVolumesPerSandbox: config.maxVolumesPerSandbox,
    warmSandboxes: config.warmSandboxes,
    defaultDiskBytes: config.sandboxDiskBytes,
    stoppedRetentionMs: config.stoppedSandboxRetentionMs,
    capacity,
  });
  sandboxDisks = () => sandboxes.committedDiskBytes();
  const files = new FileService({ volumes, store, signingKey: parts.signingKey, log });
  const deployments = new DeploymentService({
    store,
    sandboxes,
    volumes,
    log,
    domain: config.deployDomain,
    port: parts.port,
    runDir: join(config.dataDir, "run", "deployments"),
    volumeBytes: config.deployVolumeBytes,
    startTimeoutMs: 30_000,
  });
  const app = await buildApp({ store, auth, volumes, checkpoints, files, sandboxes, deployments, region: config.region, version: parts.version, logger: parts.logger, capacity });
  return { app, volumes, checkpoints, files, sandboxes, deployments, capacity };
}
