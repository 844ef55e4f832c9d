/**
 * Ports in: `http://<port>-<sandbox>.<domain>:<cairnd's port>/` reaches a server listening on
 * that port inside the sandbox, through cairnd's router (the deployments' way into a sandbox's
 * network namespace, so a sandbox without a network is reachable too, and a server that listens
 * on its loopback only). A port is routed only once exposed; a private one (the default) wants
 * its token — in the URL (`?cairn_token=`, then a cookie for that host), or as a bearer token —
 * or an API key of the sandbox's project. Whatever authorised the request is taken out of it
 * before the sandbox sees it: code in the sandbox never reads a key.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { CairnError, PROBLEM_CONTENT_TYPE, type ExposedPort, type ExposePortRequest } from "@cairn/protocol";
import type { AuthService } from "../auth/service.js";
import type { DeploymentService } from "../deployments/service.js";
import type { Route } from "../deployments/router.js";
import type { Logger } from "../logger.js";
import type { SandboxService } from "../sandboxes/service.js";
import type { MetadataStore, SandboxRecord } from "../storage/metadata-store.js";

const TOKEN_PARAM = "cairn_token";
const COOKIE = "cairn_token";
const HOST_LABEL = /^(\d{1,5})-sbx-([0-9a-z]{20})$/;

export interface SandboxPortsDeps {
  store: MetadataStore;
  sandboxes: SandboxService;
  router: Pick<DeploymentService, "routeInto" | "closeRoute" | "proxy" | "upgrade">;
  auth: Pick<AuthService, "authenticate">;
  log: Logger;
  /** Routed host names end in this domain (CAIRN_DEPLOY_DOMAIN). */
  domain: string;
  /** The router's port, for the URLs it reports. */
  port: () => number;
}

export interface PortMatch {
  sandboxId: string;
  port: number;
  key: string;
}

type Exposure = NonNullable<SandboxRecord["spec"]["ports"]>[number];

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `req.rawHeaders` with the headers `names` as `req.headers` has them now (changed, or gone). */
function rawHeadersAsNow(req: IncomingMessage, names: string[]): string[] {
  const out: string[] = [];
  const done = new Set<string>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (!names.includes(lower)) {
      out.push(name, req.rawHeaders[i + 1]!);
      continue;
    }
    if (done.has(lower)) continue;
    done.add(lower);
    const value = req.headers[lower];
    if (value !== undefined) out.push(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return out;
}

function cookieValue(header: string | undefined): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === COOKIE) return v.join("=");
  }
  return undefined;
}

function withoutOurCookie(header: string): string | undefined {
  const kept = header
    .split(";")
    .map((p) => p.trim())
    .filter((p) => p && p.split("=")[0] !== COOKIE);
  return kept.length ? kept.join("; ") : undefined;
}

function problem(res: ServerResponse, err: CairnError): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(err.status, { "content-type": PROBLEM_CONTENT_TYPE });
  res.end(JSON.stringify(err.toProblem()));
}

export class SandboxPorts {
  /** `<sandbox>:<port>` → the route into it, made for the init pid it was made for. */
  private readonly routes = new Map<string, { pid: number; route: Promise<Route> }>();

  constructor(private readonly deps: SandboxPortsDeps) {
    deps.sandboxes.onStopped((id) => this.drop(id));
  }

  private host(sandboxId: string, port: number): string {
    return `${port}-${sandboxId.replace("_", "-")}.${this.deps.domain}`;
  }

  private toWire(sandboxId: string, e: Exposure): ExposedPort {
    const base = `http://${this.host(sandboxId, e.port)}:${this.deps.port()}/`;
    return { port: e.port, public: e.public, url: e.token ? `${base}?${TOKEN_PARAM}=${e.token}` : base, token: e.token };
  }

  /** Route a port of the sandbox (again: its token stays, `public` changes as asked). */
  async expose(projectId: string, id: string, req: ExposePortRequest): Promise<ExposedPort> {
    const sb = await this.deps.sandboxes.find(projectId, id);
    if (sb.state === "stopped" || sb.state === "failed") throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is ${sb.state}`);
    const ports = sb.spec.ports ?? [];
    const existing = ports.find((p) => p.port === req.port);
    const isPublic = req.public ?? false;
    const e: Exposure = { port: req.port, public: isPublic, token: isPublic ? null : (existing?.token ?? randomBytes(24).toString("base64url")) };
    sb.spec.ports = [...ports.filter((p) => p.port !== req.port), e].sort((a, b) => a.port - b.port);
    await this.deps.store.sandboxes.updateSpec(sb.id, sb.spec);
    return this.toWire(sb.id, e);
  }

  async list(projectId: string, id: string): Promise<ExposedPort[]> {
    const sb = await this.deps.sandboxes.find(projectId, id);
    return (sb.spec.ports ?? []).map((e) => this.toWire(sb.id, e));
  }

  /** Stop routing a port: its URL (and token) stop working at once. */
  async unexpose(projectId: string, id: string, port: number): Promise<ExposedPort> {
    const sb = await this.deps.sandboxes.find(projectId, id);
    const e = (sb.spec.ports ?? []).find((p) => p.port === port);
    if (!e) throw new CairnError("PORT_NOT_FOUND", `Port ${port} of sandbox ${id} is not exposed`);
    sb.spec.ports = sb.spec.ports!.filter((p) => p.port !== port);
    await this.deps.store.sandboxes.updateSpec(sb.id, sb.spec);
    this.dropOne(`${sb.id}:${port}`);
    return this.toWire(sb.id, e);
  }

  /** Whether a Host header names a sandbox port (`<port>-sbx-<id>.<domain>`). */
  match(hostHeader: string | undefined): PortMatch | undefined {
    const host = (hostHeader ?? "").replace(/:\d+$/, "").toLowerCase();
    const suffix = `.${this.deps.domain}`;
    if (!host.endsWith(suffix)) return undefined;
    const m = HOST_LABEL.exec(host.slice(0, -suffix.length));
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) return undefined;
    return { sandboxId: `sbx_${m[2]}`, port: Number(m[1]), key: host };
  }

  /** Check the request's right to the port and strip what proved it; the route to use. */
  private async admit(req: IncomingMessage, m: PortMatch): Promise<{ route: Route; setCookie?: string }> {
    const sb = await this.deps.store.sandboxes.byId(m.sandboxId);
    const e = sb?.spec.ports?.find((p) => p.port === m.port);
    // A killed sandbox's ports went with it.
    if (!sb || !e || sb.state === "stopped" || sb.state === "failed") throw new CairnError("PORT_NOT_FOUND", `Nothing is exposed at ${m.key}`);
    let setCookie: string | undefined;
    if (e.token) {
      const url = new URL(req.url ?? "/", "http://x");
      const fromUrl = url.searchParams.get(TOKEN_PARAM);
      const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
      let ok = false;
      if (fromUrl !== null) {
        ok = sameSecret(fromUrl, e.token);
        url.searchParams.delete(TOKEN_PARAM);
        req.url = url.pathname + url.search;
        // A browser keeps it for this host: the page's own links and scripts work without it.
        if (ok) setCookie = `${COOKIE}=${e.token}; Path=/; HttpOnly; SameSite=Lax`;
      }
      if (!ok && bearer !== undefined && sameSecret(bearer, e.token)) ok = true;
      if (!ok && bearer !== undefined) {
        const principal = await this.deps.auth.authenticate(req.headers.authorization, req.headers["x-cairn-project"] as string | undefined).catch(() => undefined);
        ok = principal !== undefined && (principal.projectId === sb.projectId || principal.kind === "admin");
      }
      if (!ok) {
        const cookie = cookieValue(req.headers.cookie);
        ok = cookie !== undefined && sameSecret(cookie, e.token);
      }
      if (!ok) {
        throw new CairnError("UNAUTHORIZED", `Port ${m.port} of sandbox ${sb.id} is private: use the URL \`cairn sandbox expose\` printed (with its token), or an API key of its project`);
      }
      // Neither the token nor a key reaches the sandbox.
      if (bearer !== undefined && (sameSecret(bearer, e.token) || /^cairn_/.test(bearer))) delete req.headers.authorization;
      delete req.headers["x-cairn-project"];
    }
    if (req.headers.cookie !== undefined) {
      const rest = withoutOurCookie(req.headers.cookie);
      if (rest === undefined) delete req.headers.cookie;
      else req.headers.cookie = rest;
    }
    // The router forwards the headers as they came (rawHeaders): make those say the same.
    req.rawHeaders = rawHeadersAsNow(req, ["authorization", "cookie", "x-cairn-project"]);
    return { route: await this.routeFor(sb, m.port), ...(setCookie ? { setCookie } : {}) };
  }

  private async routeFor(sb: SandboxRecord, port: number): Promise<Route> {
    const pid = await this.deps.sandboxes.initPid(sb.projectId, sb.id);
    const key = `${sb.id}:${port}`;
    const cached = this.routes.get(key);
    if (cached && cached.pid === pid) return cached.route;
    if (cached) this.dropOne(key); // the sandbox started again since (resume)
    const route = this.deps.router.routeInto(pid, port, `port-${sb.id}-${port}`);
    this.routes.set(key, { pid, route });
    route.catch(() => this.routes.delete(key));
    return route;
  }

  /** Proxy one request for a sandbox port (answers 401, 404 or 409 itself). */
  proxy(req: IncomingMessage, res: ServerResponse, m: PortMatch): void {
    this.admit(req, m).then(
      ({ route, setCookie }) => {
        if (setCookie) res.setHeader("set-cookie", setCookie);
        this.deps.router.proxy(req, res, route, m.key);
      },
      (err: unknown) => {
        req.resume();
        problem(res, err instanceof CairnError ? err : new CairnError("INTERNAL", "The router failed; see cairnd's log"));
        if (!(err instanceof CairnError)) this.deps.log.warn({ err }, "routing to a sandbox port failed");
      },
    );
  }

  /** Websockets and other upgrades to a sandbox port. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, m: PortMatch): void {
    this.admit(req, m).then(
      ({ route }) => this.deps.router.upgrade(req, socket, head, route, m.key),
      (err: unknown) => {
        const e = err instanceof CairnError ? err : new CairnError("INTERNAL", "The router failed");
        const body = JSON.stringify(e.toProblem());
        socket.end(`HTTP/1.1 ${e.status} ${e.code}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      },
    );
  }

  private dropOne(key: string): void {
    const r = this.routes.get(key);
    this.routes.delete(key);
    r?.route.then((route) => this.deps.router.closeRoute(route), () => undefined);
  }

  /** The sandbox stopped: its routes go (they hold its network namespace). */
  drop(sandboxId: string): void {
    for (const key of [...this.routes.keys()]) if (key.startsWith(`${sandboxId}:`)) this.dropOne(key);
  }

  close(): void {
    for (const key of [...this.routes.keys()]) this.dropOne(key);
  }
}
