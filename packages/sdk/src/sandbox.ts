import type {
  Attachment,
  CreateSandboxRequest,
  ExecEvent,
  ExposedPort,
  MountRequest,
  ProcessInfo,
  Sandbox as SandboxInfo,
  SandboxNetwork,
  SandboxNetworkRequest,
} from "@cairn/protocol";
import { defaultHttpClient, type HttpClient, type RequestOptions } from "./transport/http.js";
import type { FileData } from "./transport/body.js";
import { ndjson } from "./transport/ndjson.js";

export type { SandboxInfo, Attachment, MountRequest, ProcessInfo, ExposedPort, SandboxNetwork, SandboxNetworkRequest };

export interface CreateSandboxOptions extends RequestOptions {
  /** Default `base`. */
  template?: string;
  /**
   * An OCI image to run (`node:20`, `127.0.0.1:5000/team/tool:1.2`): pulled once if it is not on
   * the host yet, its tag pinned to a digest (`info.image`). Its env, working directory and user
   * apply. A template's name (`base`) works too.
   */
  image?: string;
  /** Where it must run: the host's region (409 REGION_MISMATCH otherwise). */
  region?: string;
  /** `[volume.mount("/data")]`, or `{ "/workspace": "my_project" }` (creates missing volumes). */
  volumes?: MountRequest[] | Record<string, string>;
  env?: Record<string, string>;
  cwd?: string;
  memoryMb?: number;
  pids?: number;
  /** CPU limit in cores (0.5: half a core; default 1). */
  cpus?: number;
  /** Size of the sandbox's own writable disk in GiB (default: the server's, 4); full is ENOSPC inside this sandbox only. */
  diskGb?: number;
  timeoutMs?: number;
  /**
   * What the sandbox may reach. `"none"`: loopback only. `"egress"`: the internet through the host
   * (NAT), with DNS. An object adds rules, IPv4 `CIDR`, `CIDR:port` or `CIDR:first-last`: `allow`
   * opens private ranges (10/8, 172.16/12, 192.168/16, 100.64/10), or with `egress: false` is all
   * it may reach; `deny` closes ranges and wins over `allow`. The host itself (cairnd's API
   * included), link-local metadata (169.254.0.0/16) and other sandboxes are never reachable.
   * Default: the server's `CAIRN_SANDBOX_NETWORK` (`none` unless the operator says otherwise).
   *
   * @example
   * await cairn.sandboxes.create({ network: { egress: true, allow: ["10.0.0.5/32:5432"], deny: ["203.0.113.0/24"] } });
   */
  network?: SandboxNetworkRequest;
}

export interface ExecOptions extends RequestOptions {
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
}

/**
 * A command started in the background (`exec(cmd, { background: true })`): it runs on while you
 * do other things; ask for its state and output, or wait for it, later.
 *
 * @example
 * const server = await sandbox.exec("node server.js", { background: true });
 * const { state, stdout } = await server.output();
 * const done = await server.wait();   // { state: "exited", exitCode, stdout, stderr }
 */
export class SandboxProcess {
  constructor(
    private readonly sandbox: Sandbox,
    readonly info: ProcessInfo,
  ) {}

  get id(): string {
    return this.info.id;
  }

  /** Its state and output so far. @example const { stdout } = await p.output(); */
  output(options: RequestOptions = {}): Promise<ProcessInfo> {
    return this.sandbox.process(this.info.id, { ...options, logs: true });
  }

  /** Wait until it exits: its exit code and output. @example const { exitCode } = await p.wait(); */
  wait(options: RequestOptions = {}): Promise<ProcessInfo> {
    return this.sandbox.process(this.info.id, { ...options, wait: true, logs: true });
  }

  /** What `JSON.stringify` shows: the process, not the client. */
  toJSON(): ProcessInfo {
    return this.info;
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const enc = (s: string) => encodeURIComponent(s);

function toBody(data: FileData): BodyInit {
  if (typeof data === "string" || data instanceof Uint8Array || data instanceof ArrayBuffer || data instanceof Blob || data instanceof ReadableStream) {
    return data as BodyInit;
  }
  const it = (data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const { value, done } = await it.next();
      if (done) c.close();
      else c.enqueue(value);
    },
  }) as unknown as BodyInit;
}

/**
 * A sandbox: a Linux container with volumes mounted. Dispose of it with `await using` or `kill()`.
 *
 * @example
 * await using sandbox = await Sandbox.create({ template: "base", volumes: [volume.mount("/workspace/shared")] });
 * const r = await sandbox.exec("cat /workspace/shared/hello.txt");
 */
export class Sandbox {
  info: SandboxInfo;
  private defaultCwd: string | undefined;
  /** Files anywhere in the sandbox's filesystem, volumes included. */
  readonly files: {
    write(path: string, data: FileData, options?: RequestOptions): Promise<void>;
    read(path: string, options?: RequestOptions): Promise<ReadableStream<Uint8Array>>;
    readText(path: string, options?: RequestOptions): Promise<string>;
  };

  constructor(
    private readonly http: HttpClient,
    info: SandboxInfo,
  ) {
    this.info = info;
    const base = () => `/v1/sandboxes/${enc(this.info.id)}/files/content`;
    this.files = {
      write: async (path, data, options = {}) => {
        await this.http.request({
          method: "PUT",
          path: base(),
          query: { path: this.resolve(path) },
          body: toBody(data),
          headers: { "content-type": "application/octet-stream" },
          signal: options.signal,
        });
      },
      read: async (path, options = {}) => {
        const res = await this.http.request({ method: "GET", path: base(), query: { path: this.resolve(path) }, signal: options.signal });
        return res.body ?? new ReadableStream({ start: (c) => c.close() });
      },
      readText: async (path, options = {}) => new Response(await this.files.read(path, options)).text(),
    };
  }

  get id(): string {
    return this.info.id;
  }
  get state(): SandboxInfo["state"] {
    return this.info.state;
  }

  /**
   * Create a sandbox with a client built from the environment (or the one given).
   *
   * @example
   * const sandbox = await Sandbox.create({ template: "base", volumes: { "/workspace": "my_project" } });
   */
  static async create(options: CreateSandboxOptions & { client?: { sandboxes: Sandboxes } } = {}): Promise<Sandbox> {
    const { client, ...rest } = options;
    const sandboxes = client?.sandboxes ?? new Sandboxes(defaultHttpClient());
    return sandboxes.create(rest);
  }

  private resolve(path: string): string {
    if (path.startsWith("/") || this.defaultCwd === undefined) return path;
    return `${this.defaultCwd.replace(/\/+$/, "")}/${path}`;
  }

  /**
   * Set the working directory for later `exec` calls and relative file paths.
   *
   * @example
   * sandbox.cwd("/workspace");
   */
  cwd(path: string): this {
    this.defaultCwd = path;
    return this;
  }

  /**
   * Start what the sandbox's image runs by itself (its entrypoint and cmd, as `docker run` would)
   * in the background, as the image's user, in its working directory.
   *
   * @example
   * const sandbox = await cairn.sandboxes.create({ image: "postgres:16", volumes: { "/var/lib/postgresql/data": "pg" } });
   * const server = await sandbox.startDefault();
   */
  async startDefault(options: Omit<ExecOptions, "onStdout" | "onStderr"> = {}): Promise<SandboxProcess> {
    return new SandboxProcess(this, await this.execBackground(undefined, options));
  }

  /**
   * Run a shell command; output streams to `onStdout`/`onStderr` as it comes and is returned whole.
   * With `{ background: true }` it returns at once with a {@link SandboxProcess} instead.
   *
   * @example
   * const { stdout, exitCode } = await sandbox.exec("npm init -y && node -e 'console.log(1+1)'");
   */
  exec(command: string, options: Omit<ExecOptions, "onStdout" | "onStderr"> & { background: true }): Promise<SandboxProcess>;
  exec(command: string, options?: ExecOptions & { background?: false }): Promise<ExecResult>;
  async exec(command: string, options: ExecOptions & { background?: boolean } = {}): Promise<ExecResult | SandboxProcess> {
    if (options.background) return new SandboxProcess(this, await this.execBackground(command, options));
    const cwd = options.cwd ?? this.defaultCwd;
    const res = await this.http.request({
      method: "POST",
      path: `/v1/sandboxes/${enc(this.info.id)}/exec`,
      json: { command, ...(cwd ? { cwd } : {}), ...(options.env ? { env: options.env } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) },
      signal: options.signal,
    });
    const result: ExecResult = { stdout: "", stderr: "", exitCode: -1 };
    for await (const e of ndjson<ExecEvent>(res.body!)) {
      if (e.type === "stdout") {
        result.stdout += e.data;
        options.onStdout?.(e.data);
      } else if (e.type === "stderr") {
        result.stderr += e.data;
        options.onStderr?.(e.data);
      } else result.exitCode = e.exitCode;
    }
    return result;
  }

  /**
   * Start a command in the background; poll or wait for it later.
   *
   * @example
   * const p = await sandbox.execBackground("node server.js");
   * const { stdout } = await sandbox.process(p.id, { logs: true });
   */
  async execBackground(command: string | undefined, options: Omit<ExecOptions, "onStdout" | "onStderr"> = {}): Promise<ProcessInfo> {
    const cwd = options.cwd ?? this.defaultCwd;
    return this.http.json<ProcessInfo>({
      method: "POST",
      path: `/v1/sandboxes/${enc(this.info.id)}/exec`,
      json: { ...(command !== undefined ? { command } : {}), background: true, ...(cwd ? { cwd } : {}), ...(options.env ? { env: options.env } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) },
      signal: options.signal,
    });
  }

  /** A background process; `wait` blocks until it exits, `logs` includes its output. @example await sandbox.process(id, { wait: true, logs: true }); */
  async process(id: string, options: RequestOptions & { wait?: boolean; logs?: boolean } = {}): Promise<ProcessInfo> {
    return this.http.json<ProcessInfo>({
      method: "GET",
      path: `/v1/sandboxes/${enc(this.info.id)}/processes/${enc(id)}`,
      query: { wait: options.wait ? "true" : undefined, logs: options.logs ? "true" : undefined },
      signal: options.signal,
    });
  }

  /** Hot-plug a volume. @example await sandbox.attach(cache.mount("/cache")); */
  async attach(mount: MountRequest, options: RequestOptions = {}): Promise<Attachment> {
    return this.http.json<Attachment>({ method: "POST", path: `/v1/sandboxes/${enc(this.info.id)}/attachments`, json: mount, signal: options.signal });
  }

  /**
   * Unmount by mount path. Busy (a process has files open there): VOLUME_BUSY, or with `force`
   * the processes using the volume are killed first. MOUNT_CHANGED when the sandbox moved or
   * replaced the mount: the volume then stays attached until the sandbox is killed or hibernated.
   * @example await sandbox.detach("/cache");
   */
  async detach(mountPath: string, options: RequestOptions & { force?: boolean } = {}): Promise<Attachment> {
    return this.http.json<Attachment>({
      method: "POST",
      path: `/v1/sandboxes/${enc(this.info.id)}/detach`,
      json: { mountPath, ...(options.force ? { force: true } : {}) },
      signal: options.signal,
    });
  }

  /** The attachment records with their states. @example for (const a of await sandbox.attachments()) console.log(a.mountPath, a.state); */
  async attachments(options: RequestOptions = {}): Promise<Attachment[]> {
    return (await this.http.json<{ items: Attachment[] }>({ method: "GET", path: `/v1/sandboxes/${enc(this.info.id)}/attachments`, signal: options.signal })).items;
  }

  /**
   * A URL that reaches `port` inside the sandbox (a server listening on any address there,
   * loopback included): `http://<port>-<sandbox>.<domain>:<port>/`, routed by cairnd, for HTTP,
   * streaming and websockets. Private unless `public`: the URL carries the port's token (a browser
   * then keeps it in a cookie for that host); a request without it, or without an API key of the
   * project, is refused with 401. Asking again gives the same URL.
   *
   * @example
   * await sandbox.exec("python3 -m http.server 8000", { background: true });
   * const url = await sandbox.getUrl(8000);
   * const page = await (await fetch(url)).text();
   */
  async getUrl(port: number, options: RequestOptions & { public?: boolean } = {}): Promise<string> {
    return (await this.expose(port, options)).url;
  }

  /**
   * Route a port (see {@link Sandbox.getUrl}); the answer has its URL and token.
   * @example const { url, token } = await sandbox.expose(3000);
   */
  async expose(port: number, options: RequestOptions & { public?: boolean } = {}): Promise<ExposedPort> {
    return this.http.json<ExposedPort>({
      method: "POST",
      path: `/v1/sandboxes/${enc(this.info.id)}/ports`,
      json: { port, ...(options.public !== undefined ? { public: options.public } : {}) },
      signal: options.signal,
    });
  }

  /** The routed ports with their URLs. @example for (const p of await sandbox.ports()) console.log(p.port, p.url); */
  async ports(options: RequestOptions = {}): Promise<ExposedPort[]> {
    return (await this.http.json<{ items: ExposedPort[] }>({ method: "GET", path: `/v1/sandboxes/${enc(this.info.id)}/ports`, signal: options.signal })).items;
  }

  /** Stop routing a port: its URL stops working at once (PORT_NOT_FOUND if it was not routed). @example await sandbox.unexpose(3000); */
  async unexpose(port: number, options: RequestOptions = {}): Promise<ExposedPort> {
    return this.http.json<ExposedPort>({ method: "DELETE", path: `/v1/sandboxes/${enc(this.info.id)}/ports/${port}`, signal: options.signal });
  }

  private async action(name: "hibernate" | "resume", options: RequestOptions): Promise<this> {
    this.info = await this.http.json<SandboxInfo>({ method: "POST", path: `/v1/sandboxes/${enc(this.info.id)}/${name}`, signal: options.signal });
    return this;
  }

  /** Stop processes, keep the filesystem, release volumes. @example await sandbox.hibernate(); */
  hibernate(options: RequestOptions = {}): Promise<this> {
    return this.action("hibernate", options);
  }

  /** Start again and remount the volumes. @example await sandbox.resume(); */
  resume(options: RequestOptions = {}): Promise<this> {
    return this.action("resume", options);
  }

  /**
   * A new sandbox with the same filesystem state. ReadWriteMany/ReadOnlyMany volumes are shared; a
   * ReadWriteOnce volume mounted read-write is forked into a new volume, deleted with the fork
   * unless `keepVolumes`; one mounted read-only is shared as a read-only checkpoint view.
   * @example const copy = await sandbox.fork();
   */
  async fork(options: RequestOptions & { keepVolumes?: boolean } = {}): Promise<Sandbox> {
    const info = await this.http.json<SandboxInfo>({
      method: "POST",
      path: `/v1/sandboxes/${enc(this.info.id)}/fork`,
      json: options.keepVolumes ? { keepVolumes: true } : {},
      signal: options.signal,
    });
    return new Sandbox(this.http, info);
  }

  /** @example await sandbox.refresh(); console.log(sandbox.state); */
  async refresh(options: RequestOptions = {}): Promise<this> {
    this.info = await this.http.json<SandboxInfo>({ method: "GET", path: `/v1/sandboxes/${enc(this.info.id)}`, signal: options.signal });
    return this;
  }

  /** Kill the sandbox; its volumes are released for the next one. @example await sandbox.kill(); */
  async kill(options: RequestOptions = {}): Promise<void> {
    this.info = await this.http.json<SandboxInfo>({ method: "DELETE", path: `/v1/sandboxes/${enc(this.info.id)}`, signal: options.signal });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.info.state !== "stopped") await this.kill();
  }
}

/** Sandbox management: `cairn.sandboxes`. */
export class Sandboxes {
  constructor(private readonly http: HttpClient) {}

  /**
   * Create and start a sandbox.
   *
   * @example
   * const sb = await cairn.sandboxes.create({ image: "base", volumes: { "/workspace": "my_project" } });
   */
  async create(options: CreateSandboxOptions = {}): Promise<Sandbox> {
    const { signal, ...body } = options;
    const info = await this.http.json<SandboxInfo>({ method: "POST", path: "/v1/sandboxes", json: body satisfies CreateSandboxRequest, signal });
    return new Sandbox(this.http, info);
  }

  /** @example const sb = await cairn.sandboxes.get("sbx_…"); */
  async get(id: string, options: RequestOptions = {}): Promise<Sandbox> {
    return new Sandbox(this.http, await this.http.json<SandboxInfo>({ method: "GET", path: `/v1/sandboxes/${enc(id)}`, signal: options.signal }));
  }

  /** Newest first. @example for (const sb of await cairn.sandboxes.list()) console.log(sb.id, sb.state); */
  /** Sandboxes, newest first; `state` filters. @example const running = await cairn.sandboxes.list({ state: "running" }); */
  async list(options: RequestOptions & { state?: SandboxInfo["state"] } = {}): Promise<SandboxInfo[]> {
    return (await this.http.json<{ items: SandboxInfo[] }>({ method: "GET", path: "/v1/sandboxes", query: { state: options.state }, signal: options.signal })).items;
  }
}
