/**
 * cairnd's services and HTTP app on fakes: a directory-backed volume engine, a fake sandbox
 * driver and SQLite in a temporary directory. Nothing needs root, nothing listens: requests go
 * through Fastify's `inject`. For fast tests of validation, auth, errors, OpenAPI and the
 * services' logic; the root suites in test/ stay the guarantee against the real kernel.
 *
 * It checks the error codes the OpenAPI document declares, as the real one does under the test
 * harness: `close()` fails when any route answered with a code its operation does not declare.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { resolveConfig, type Config } from "../config.js";
import { compose, type Composed } from "../compose.js";
import { AuthService, generateAdminKey } from "../auth/service.js";
import { MetadataStore } from "../storage/metadata-store.js";
import { DirVolumeEngine } from "../volumes/fake/dir-engine.js";
import { FakeSandboxDriver } from "../sandboxes/fake/driver.js";
import { FakeNetwork } from "../network/fake.js";
import { newId } from "../ids.js";
import { UNDECLARED_ERROR_CODE } from "../http/route-errors.js";
import { DirLayerStore, FakeRegistry } from "../images/fake/registry.js";
import { ImageRecords } from "../images/records.js";

export interface FakeCairnd extends Composed {
  adminKey: string;
  engine: DirVolumeEngine;
  driver: FakeSandboxDriver;
  registry: FakeRegistry;
  layers: DirLayerStore;
  network: FakeNetwork;
  store: MetadataStore;
  config: Config;
  /** A request as the admin (or `key`), JSON in and out. */
  request(options: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function fakeCairnd(overrides: Partial<Config> = {}): Promise<FakeCairnd> {
  const dataDir = await mkdtemp(join(tmpdir(), "cairn-fake-"));
  const config: Config = { ...resolveConfig({ dataDir, logLevel: "warn" }, {}), warmSandboxes: 0, checkErrorCodes: true, ...overrides };
  // Quiet, but for the one line that must fail the tests.
  const undeclared: object[] = [];
  const log = {
    info() {},
    warn() {},
    debug() {},
    error(obj: object, msg?: string) {
      if (msg === UNDECLARED_ERROR_CODE) undeclared.push(obj);
    },
  };
  const store = await MetadataStore.open({ kind: "sqlite", path: join(dataDir, "cairn.db") });
  const adminKey = generateAdminKey();
  const auth = new AuthService(store, adminKey, await store.projects.ensure(newId("prj"), "default"));
  const engine = await DirVolumeEngine.open({
    root: join(dataDir, "pool"),
    onUnmount: async (id, usage) => {
      await store.volumes.update(id, { usedBytes: usage.usedBytes }).catch(() => undefined);
    },
  });
  const driver = new FakeSandboxDriver(join(dataDir, "sandboxes"));
  const registry = new FakeRegistry();
  const layers = new DirLayerStore(join(dataDir, "layers"));
  const network = new FakeNetwork();
  const composed = await compose({
    config,
    store,
    auth,
    engine,
    checkpointStore: engine,
    driver,
    images: { registry, layers, records: await new ImageRecords(join(dataDir, "images")).open(), scratchDir: join(dataDir, "image-tmp") },
    network,
    poolRoot: dataDir,
    signingKey: randomBytes(32),
    log,
    logger: false,
    version: "0.0.0-test",
    port: () => 7070,
  });
  await composed.app.ready();
  return {
    ...composed,
    adminKey,
    engine,
    driver,
    registry,
    layers,
    network,
    store,
    config,
    request({ key, ...options }) {
      const headers = { ...(options.headers ?? {}) } as Record<string, string>;
      const k = key === undefined ? adminKey : key;
      if (k !== null) headers.authorization = `Bearer ${k}`;
      return composed.app.inject({ ...options, headers });
    },
    async close() {
      await composed.app.close();
      await composed.sandboxes.close();
      composed.ports.close();
      composed.deployments.close();
      await engine.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
      if (undeclared.length > 0) {
        throw new Error(
          `routes answered with problem codes their OpenAPI operations do not declare (add them to the route's errors): ${JSON.stringify(undeclared, null, 1)}`,
        );
      }
    },
  };
}
