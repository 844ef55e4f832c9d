/**
 * Deployments: an app runs in a sandbox with its code at /data/app (a fresh copy per deploy,
 * writable but discarded with the sandbox) and its project's persistent filesystem at
 * /data/local-fs (one ReadWriteMany volume per app and environment, kept across deploys).
 * cairnd routes `http://<app>[.<env>].<domain>:<port>/` to the running version.
 */
import { request } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CairnError, GiB, type Deployment, type ProcessInfo } from "@cairn/protocol";
import { newId } from "../ids.js";
import type { Logger } from "../logger.js";
import type { DeploymentRecord, MetadataStore } from "../storage/metadata-store.js";
import type { SandboxService } from "../sandboxes/service.js";
import type { VolumeService } from "../volumes/service.js";
import { Forwarder } from "./forwarder.js";
import { proxy, Route, upgrade } from "./router.js";

const APP_PORT = 8080;
/** How long a superseded version may finish what it was answering before it stops. */
const DRAIN_LIMIT_MS = 10_000;
/** Readiness polling: the first probes come quickly (an app starts in tens of ms), then back off. */
const PROBE_FIRST_MS = 2;
const PROBE_MAX_MS = 5;
/** Lines the launch script writes to a version's stderr, before the app's own output. */
const UNPACK_FAILED = "cairn: unpacking the app failed";
const NO_ENTRYPOINT = "cairn: no entrypoint";
const STARTING = "cairn: starting ";
/** The launch script's own exit statuses (with its line above as the last one on stderr). */
const EXIT_UNPACK = 70;
const EXIT_NO_ENTRYPOINT = 71;

/**
 * One exec into the sandbox unpacks the code (its stdin) and becomes the app: each exec costs a
 * crun start. It runs with the sandbox's privileges, so an archive's tricks stay in there.
 * Without an explicit command it picks main.py or a package.json start script, and says which.
 */
function launchScript(format: "tar" | "tar.gz", cmd: string | undefined): string {
  const unpack = `mkdir -p /data/app && tar -x ${format === "tar" ? "" : "-z"} -f - -C /data/app || { echo "${UNPACK_FAILED}" >&2; exit ${EXIT_UNPACK}; }`;
  // The app's stdin is empty, as for any background process (the archive was tar's).
  if (cmd) return `${unpack}\ncd /data/app && exec ${cmd} </dev/null`;
  return [
    unpack,
    "cd /data/app",
    "if [ -f main.py ]; then set -- python3 main.py",
    `elif [ -f package.json ] && node -e "process.exit(require('/data/app/package.json').scripts?.start ? 0 : 1)"; then set -- npm start`,
    `else echo "${NO_ENTRYPOINT}" >&2; exit ${EXIT_NO_ENTRYPOINT}; fi`,
    `echo "${STARTING}$*" >&2`,
    `exec "$@" </dev/null`,
  ].join("\n");
}

export interface DeploymentServiceDeps {
  store: MetadataStore;
  sandboxes: SandboxService;
  volumes: VolumeService;
  log: Logger;
  /** Routed host names end in this domain (default `localhost`). */
  domain: string;
  /** The router's port, for the URLs it reports. */
  port: () => number;
  /** Where the relays' Unix sockets live (a directory only cairnd may enter). */
  runDir: string;
  /** Size of a new project filesystem. */
  volumeBytes: number;
  /** How long a new version has to answer its first request. */
  startTimeoutMs: number;
}

export class DeploymentService {
  /** `app.env` → the serving version. */
  private readonly routes = new Map<string, Route>();
  private readonly processes = new Map<string, string>();
  /** Superseded versions finishing their requests before they stop. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly draining = new Set<Route>();
  /** Aborted at shutdown: draining versions stop waiting. */
  private readonly closing = new AbortController();

  constructor(private readonly deps: DeploymentServiceDeps) {}

  private url(app: string, env: string): string {
    const host = env === "production" ? `${app}.${this.deps.domain}` : `${app}.${env}.${this.deps.domain}`;
    return `http://${host}:${this.deps.port()}/`;
  }

  toWire(d: DeploymentRecord): Deployment {
    return {
      id: d.id,
      app: d.app,
      env: d.env,
      version: d.version,
      state: d.state,
      sandbox: d.sandboxId,
      volume: d.volumeId,
      command: d.command,
      url: this.url(d.app, d.env),
      error: d.error,
      createdAt: d.createdAt,
      updatedAt: d.updatedAt,
    };
  }

  async list(projectId: string, filter: { app?: string; env?: string }): Promise<Deployment[]> {
    return (await this.deps.store.deployments.list({ ...filter, projectId })).map((d) => this.toWire(d));
  }

  /** Deploy a new version. Resolves when it serves; a version that fails leaves the old one serving. */
  async deploy(
    projectId: string,
    options: { app: string; env: string; cmd?: string | undefined; format: "tar" | "tar.gz" },
    body: NodeJS.ReadableStream,
  ): Promise<Deployment> {
    const { store, sandboxes, volumes, log } = this.deps;
    const { app, env } = options;
    const owner = (await store.deployments.list({ app })).find((d) => d.projectId !== projectId);
    if (owner) throw new CairnError("APP_NAME_TAKEN", `The app name "${app}" is taken; pick another --project name`);
    const { volume } = await volumes.create(projectId, {
      name: `local-fs-${app}-${env}`.slice(0, 63),
      accessMode: "ReadWriteMany",
      sizeBytes: this.deps.volumeBytes,
      labels: { "cairn.dev/app": app, "cairn.dev/env": env },
      ifExists: "return",
    });
    const at = new Date().toISOString();
    const d = await store.deployments.insert({
      id: newId("dep"),
      projectId,
      app,
      env,
      state: "starting",
      sandboxId: null,
      volumeId: volume.id,
      command: options.cmd ?? "",
      error: null,
      createdAt: at,
      updatedAt: at,
    });
    let sandboxId: string | undefined;
    let forwarding: Promise<Forwarder> | undefined;
    let forwarder: Forwarder | undefined;
    try {
      const sb = await sandboxes.create(projectId, {
        template: "base",
        volumes: [{ volume: volume.id, mountPath: "/data/local-fs" }],
        env: { CAIRN_LOCAL_FS: "/data/local-fs", PORT: String(APP_PORT), CAIRN_APP: app, CAIRN_ENV: env },
        cwd: "/data/app",
      });
      sandboxId = sb.id;
      // The way into the sandbox's network gets ready while the code unpacks and the app starts.
      forwarding = this.forwarderFor(projectId, sb.id, d.id);
      forwarding.catch(() => undefined); // awaited below, or closed on failure
      await store.deployments.update(d.id, { sandboxId });
      const proc = await sandboxes.startBackground(projectId, sb.id, { command: launchScript(options.format, options.cmd), cwd: "/" }, body);
      this.processes.set(d.id, proc.id);
      forwarder = await forwarding;
      await this.waitUntilServing(projectId, sb.id, proc.id, forwarder);
      if (!options.cmd) {
        // What the launch script picked: its first line on stderr, before anything of the app's.
        const { stderr } = await sandboxes.process(projectId, sb.id, proc.id, { wait: false, logs: true });
        const first = (stderr ?? "").split("\n", 1)[0]!;
        if (first.startsWith(STARTING)) await store.deployments.update(d.id, { command: first.slice(STARTING.length) });
      }
    } catch (err) {
      log.warn({ err, deploymentId: d.id }, "deploy failed; the previous version keeps serving");
      await forwarding?.then((f) => f.close(), () => undefined);
      if (sandboxId) await sandboxes.kill(projectId, sandboxId).catch(() => undefined);
      const message = err instanceof CairnError ? err.message : `the new version did not start: ${(err as Error).message}`;
      await store.deployments.update(d.id, { state: "failed", error: message });
      throw err instanceof CairnError && err.code === "DEPLOY_FAILED" ? err : new CairnError("DEPLOY_FAILED", message, { cause: err });
    }
    // The new version serves: switch the route in one step. The old version finishes what it
    // was answering (within a bound) and stops in the background: the caller does not wait.
    const key = `${app}.${env}`;
    const previous = this.routes.get(key);
    this.routes.set(key, new Route(d.id, forwarder));
    await store.deployments.update(d.id, { state: "running" });
    const older = (await store.deployments.list({ app, env, states: ["running"] })).filter((old) => old.id !== d.id);
    for (const old of older) await store.deployments.update(old.id, { state: "superseded" });
    this.retire(previous, older);
    return this.toWire((await store.deployments.get(d.id))!);
  }

  /** Stop superseded versions once their route has drained (or at once, when cairnd stops). */
  private retire(route: Route | undefined, versions: DeploymentRecord[]): void {
    if (route) this.draining.add(route);
    const work = (async () => {
      await route?.drained(DRAIN_LIMIT_MS, this.closing.signal);
      if (route) this.draining.delete(route);
      await route?.forwarder.close();
      for (const old of versions) {
        if (old.sandboxId) await this.deps.sandboxes.kill(old.projectId, old.sandboxId).catch(() => undefined);
      }
    })().catch((err: unknown) => this.deps.log.warn({ err }, "stopping a superseded version failed"));
    this.retiring.add(work);
    void work.finally(() => this.retiring.delete(work));
  }

  /**
   * A route to `port` inside the network namespace of the sandbox whose init is `pid` (loopback
   * there reaches a server on any of its addresses). `id` names its socket. The router's one way
   * into a sandbox, for deployments and exposed sandbox ports alike.
   */
  async routeInto(pid: number, port: number, id: string): Promise<Route> {
    await mkdir(this.deps.runDir, { recursive: true, mode: 0o700 });
    return new Route(id, await Forwarder.start({ pid, port, socketPath: join(this.deps.runDir, `${id}.sock`), log: this.deps.log }));
  }

  /** Stop a route made by `routeInto`; what is in flight through it is cut. */
  closeRoute(route: Route): void {
    void route.forwarder.close();
  }

  private async forwarderFor(projectId: string, sandboxId: string, deploymentId: string): Promise<Forwarder> {
    const pid = await this.deps.sandboxes.initPid(projectId, sandboxId);
    await mkdir(this.deps.runDir, { recursive: true, mode: 0o700 });
    return Forwarder.start({ pid, port: APP_PORT, socketPath: join(this.deps.runDir, `${deploymentId}.sock`), log: this.deps.log });
  }

  /** Until the app answers HTTP on its port (any status below 500); its exit fails the deploy at once. */
  private async waitUntilServing(projectId: string, sandboxId: string, processId: string, forwarder: Forwarder): Promise<void> {
    const deadline = Date.now() + this.deps.startTimeoutMs;
    let exited: ProcessInfo | undefined;
    const exit = this.deps.sandboxes.process(projectId, sandboxId, processId, { wait: true, logs: true }).then(
      (p) => void (exited = p),
      () => undefined,
    );
    const failIfExited = () => {
      if (!exited) return;
      const stderr = (exited.stderr ?? "").trim().split("\n");
      const last = stderr.at(-1);
      if (exited.exitCode === EXIT_NO_ENTRYPOINT && last === NO_ENTRYPOINT) {
        throw new CairnError("DEPLOY_FAILED", "No entrypoint: add main.py or a package.json start script, or give --cmd");
      }
      if (exited.exitCode === EXIT_UNPACK && last === UNPACK_FAILED) {
        throw new CairnError("DEPLOY_FAILED", `Unpacking the app failed in the sandbox: ${stderr.slice(-4, -1).join(" ") || `exit ${exited.exitCode}`}`);
      }
      const tail = `${exited.stdout ?? ""}${exited.stderr ?? ""}`.trim().split("\n").slice(-5).join("\n");
      throw new CairnError("DEPLOY_FAILED", `The new version exited with ${exited.exitCode} before serving:\n${tail}`);
    };
    for (let delay = PROBE_FIRST_MS; Date.now() < deadline; delay = Math.min(delay * 1.5, PROBE_MAX_MS)) {
      failIfExited();
      const status = await probe(forwarder);
      if (status !== undefined && status < 500) return;
      failIfExited();
      await Promise.race([sleep(delay), exit]);
    }
    throw new CairnError("DEPLOY_FAILED", `The new version did not answer on $PORT within ${this.deps.startTimeoutMs / 1000} s`);
  }

  async logs(
    projectId: string,
    app: string,
    env: string,
    which: { serving?: boolean; version?: number } = {},
  ): Promise<{ deployment: Deployment; stdout: string; stderr: string }> {
    const all = await this.deps.store.deployments.list({ app, env, projectId });
    const d =
      which.version !== undefined ? all.find((x) => x.version === which.version) : which.serving ? all.find((x) => x.state === "running") : all[0];
    if (!d) {
      const what = which.version !== undefined ? `version ${which.version} of ${app}` : which.serving ? `a serving version of ${app}` : `a deployment of ${app}`;
      throw new CairnError("DEPLOYMENT_NOT_FOUND", `There is no ${what} (${env})`);
    }
    const procId = this.processes.get(d.id);
    let stdout = "";
    let stderr = d.error ?? "";
    if (procId && d.sandboxId) {
      const p = await this.deps.sandboxes.process(projectId, d.sandboxId, procId, { wait: false, logs: true }).catch(() => undefined);
      stdout = p?.stdout ?? "";
      stderr = p?.stderr ?? stderr;
    }
    return { deployment: this.toWire(d), stdout, stderr };
  }

  /** Stop an app's environment (or all of them); delete its filesystem only when asked. */
  async remove(projectId: string, app: string, options: { env?: string; deleteFilesystem: boolean }): Promise<number> {
    const { store, sandboxes, volumes } = this.deps;
    const all = await store.deployments.list({ app, projectId, ...(options.env ? { env: options.env } : {}) });
    if (all.length === 0) throw new CairnError("DEPLOYMENT_NOT_FOUND", `No deployments of ${app}`);
    for (const d of all) {
      if (d.state === "running" || d.state === "starting") {
        if (d.sandboxId) await sandboxes.kill(projectId, d.sandboxId).catch(() => undefined);
        await store.deployments.update(d.id, { state: "stopped" });
      }
      const r = this.routes.get(`${d.app}.${d.env}`);
      if (r) {
        this.routes.delete(`${d.app}.${d.env}`);
        await r.forwarder.close();
      }
    }
    if (options.deleteFilesystem) {
      for (const volumeId of new Set(all.map((d) => d.volumeId))) await volumes.delete(projectId, volumeId).catch(() => undefined);
    }
    return all.length;
  }

  /** Which route a Host header names: `undefined` for the API's own hosts. */
  match(hostHeader: string | undefined): { key: string; route: Route | undefined } | undefined {
    const host = (hostHeader ?? "").replace(/:\d+$/, "").toLowerCase();
    const suffix = `.${this.deps.domain}`;
    if (!host.endsWith(suffix)) return undefined;
    const labels = host.slice(0, -suffix.length).split(".");
    if (labels.length > 2 || labels.some((l) => !/^[a-z0-9-]+$/.test(l))) return { key: host, route: undefined };
    const key = `${labels[0]}.${labels[1] ?? "production"}`;
    return { key, route: this.routes.get(key) };
  }

  /** Reverse-proxy one request to the route's version (router.ts). */
  proxy(req: IncomingMessage, res: ServerResponse, route: Route | undefined, key: string): void {
    proxy(req, res, route, key);
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route | undefined, key: string): void {
    upgrade(req, socket, head, route, key);
  }

  /** After a restart: running versions get their relay and route back. */
  async reconcile(): Promise<void> {
    const { store, sandboxes, log } = this.deps;
    for (const d of await store.deployments.list({ states: ["running", "starting"] })) {
      try {
        if (d.state === "starting" || !d.sandboxId) throw new Error("interrupted");
        this.routes.set(`${d.app}.${d.env}`, new Route(d.id, await this.forwarderFor(d.projectId, d.sandboxId, d.id)));
      } catch (err) {
        log.warn({ err, deploymentId: d.id }, "deployment not running after restart");
        if (d.sandboxId) await sandboxes.kill(d.projectId, d.sandboxId).catch(() => undefined);
        await store.deployments.update(d.id, { state: d.state === "starting" ? "failed" : "stopped", error: "cairnd restarted" });
      }
    }
  }

  /**
   * First step of a shutdown, before the server waits for its connections: upgraded connections
   * end (the server would wait for them; the next cairnd cannot take them over).
   */
  hangUp(): void {
    for (const r of [...this.routes.values(), ...this.draining]) r.hangUp();
  }

  /** At shutdown: superseded versions stop now; serving ones keep running for the next cairnd. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all(this.retiring);
    const routes = [...this.routes.values()];
    this.routes.clear();
    await Promise.all(routes.map((r) => r.forwarder.close()));
  }
}

/** The status of `GET /` on a new connection to the app; `undefined` when it does not answer. */
function probe(forwarder: Forwarder): Promise<number | undefined> {
  return new Promise((resolve) => {
    const r = request(
      {
        createConnection: forwarder.createConnection,
        path: "/",
        method: "GET",
        headers: { connection: "close" },
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    r.on("error", () => resolve(undefined));
    r.on("timeout", () => {
      r.destroy();
      resolve(undefined);
    });
    r.end();
  });
}

export const DEFAULT_DEPLOY_VOLUME_BYTES = 1 * GiB;
