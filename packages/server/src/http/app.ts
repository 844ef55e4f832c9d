import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from "fastify";
import { CairnError, PROBLEM_CONTENT_TYPE } from "@cairn/protocol";
import type { AuthService } from "../auth/service.js";
import type { VolumeService } from "../volumes/service.js";
import type { CheckpointService } from "../checkpoints/service.js";
import { checkpointRoutes } from "./routes/checkpoints.js";
import { sandboxRoutes } from "./routes/sandboxes.js";
import { deploymentRoutes } from "./routes/deployments.js";
import type { DeploymentService } from "../deployments/service.js";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { SandboxService } from "../sandboxes/service.js";
import type { MetadataStore } from "../storage/metadata-store.js";
import { newId } from "../ids.js";
import { adminRoutes } from "./routes/admin.js";
import { fileRoutes } from "./routes/files.js";
import { uploadRoutes } from "./routes/uploads.js";
import { signedRoutes } from "./routes/signed.js";
import { watchRoutes } from "./routes/watch.js";
import type { FileService } from "../files/service.js";
import { buildOpenApi } from "./openapi.js";
import { defineRoute, registerRoute, type RouteSpec } from "./route.js";
import { declaredErrors, type UndeclaredError } from "./route-errors.js";
import { volumeRoutes } from "./routes/volumes.js";
import { imageRoutes } from "./routes/images.js";
import type { ImageService } from "../images/service.js";
import { portRoutes } from "./routes/ports.js";
import type { SandboxPorts } from "../network/ports.js";
import { Health } from "@cairn/protocol";
import type { PoolCapacity } from "../volumes/capacity.js";

export interface AppDeps {
  store: MetadataStore;
  auth: AuthService;
  volumes: VolumeService;
  checkpoints: CheckpointService;
  files: FileService;
  sandboxes: SandboxService;
  deployments: DeploymentService;
  images: ImageService;
  /** Sandbox ports routed by host name (`<port>-<sandbox>.<domain>`). */
  ports: SandboxPorts;
  region: string;
  version: string;
  /** Fastify's logger options, or a logger made by the caller (pino). */
  logger: FastifyServerOptions["logger"] | FastifyBaseLogger;
  capacity: Pick<PoolCapacity, "status">;
  /** Told of every problem a route answers with a code it does not declare (CAIRN_CHECK_ERROR_CODES). */
  onUndeclaredError?: (e: UndeclaredError) => void;
}

export function allRoutes(
  deps: Pick<AppDeps, "store" | "auth" | "volumes" | "checkpoints" | "files" | "sandboxes" | "deployments" | "images" | "ports" | "region" | "version" | "capacity">,
  openapi: () => unknown,
): RouteSpec[] {
  return [
    defineRoute({
      method: "GET",
      path: "/healthz",
      operationId: "health",
      summary: "Liveness",
      tags: ["meta"],
      auth: false,
      responses: { 200: { description: "cairnd is up", schema: Health } },
      handler: async () => {
        const pool = await deps.capacity.status();
        return {
          status: "ok",
          version: deps.version,
          region: deps.region,
          pid: process.pid,
          warmSandboxes: deps.sandboxes.warmPool(),
          pool: {
            ...pool,
            ...(pool.overcommit > 1
              ? { warning: `overcommitted ${pool.overcommit}x (CAIRN_POOL_OVERCOMMIT): a full pool fails writes inside volumes instead of refusing new ones` }
              : {}),
          },
        };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/openapi.json",
      operationId: "openapi",
      summary: "This document",
      tags: ["meta"],
      auth: false,
      responses: { 200: { description: "OpenAPI 3.1" } },
      handler: async () => openapi(),
    }),
    ...adminRoutes(deps.store, deps.auth),
    ...volumeRoutes(deps.volumes),
    ...fileRoutes(deps.files),
    ...uploadRoutes(deps.files),
    ...watchRoutes(deps.files),
    ...signedRoutes(deps.files),
    ...checkpointRoutes(deps.checkpoints, deps.volumes, (id) => deps.sandboxes.detachWriters(id)),
    ...sandboxRoutes(deps.sandboxes),
    ...imageRoutes(deps.images),
    ...portRoutes(deps.ports),
    ...deploymentRoutes(deps.deployments),
  ];
}

/** Requests whose client waits for "100 Continue" before it sends the body, and has not had it. */
const awaitingContinue = new WeakSet<IncomingMessage>();

/**
 * Send "100 Continue" when the body is first read, whoever reads it (a JSON parser, a file
 * write, an archive extraction): Readable calls `_read` exactly when a consumer wants bytes. Never
 * after the answer has started (Node reads and drops an unread body once the response ends).
 */
function deferContinue(req: IncomingMessage, res: ServerResponse): void {
  awaitingContinue.add(req);
  const r = req as IncomingMessage & { _read(size: number): void };
  const read = r._read;
  r._read = function (this: IncomingMessage, size: number) {
    r._read = read;
    if (awaitingContinue.delete(req) && !res.headersSent) res.writeContinue();
    return read.call(this, size);
  };
}

/** Read and discard what is left of a request body: true when it ended within the bounds. */
function drainBody(req: import("node:http").IncomingMessage, maxBytes = 256 * 1024 * 1024, timeoutMs = 5_000): Promise<boolean> {
  if (req.complete || req.readableEnded) return Promise.resolve(true); // read to its end (readableEnded: also under inject)
  if (req.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onEnd);
      req.off("close", onClose);
      if (!ok) req.pause();
      resolve(ok);
    };
    const onData = (d: Buffer) => {
      seen += d.length;
      if (seen > maxBytes) finish(false);
    };
    const onEnd = () => finish(req.complete);
    const onClose = () => finish(req.complete);
    const timer = setTimeout(() => finish(false), timeoutMs);
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onEnd);
    req.on("close", onClose);
    req.resume();
  });
}

/**
 * Every error becomes one problem+json answer with a stable code; an unknown one is INTERNAL
 * with its cause logged. Only a client whose connection is gone gets no answer. A code the route
 * does not declare (route-errors.ts) is answered all the same, and told to `onUndeclared`.
 */
export function setProblemHandler(app: FastifyInstance, onUndeclared?: (e: UndeclaredError) => void): void {
  app.setErrorHandler(async (err, req, reply) => {
    let ce: CairnError;
    const e = err as Error & { code?: string; statusCode?: number };
    // The socket, not the request stream: a request whose body was read to the end is destroyed
    // too (autoDestroy), and its client is still there waiting for the answer.
    const conn = req.raw.socket as import("node:net").Socket | null;
    const clientGone = !(err instanceof CairnError) && (e.code === "ECONNRESET" || e.message === "aborted" || !conn || conn.destroyed);
    if (clientGone) {
      // Not our failure: the client went away mid-request.
      req.log.info({ err: e.message }, "client went away");
      reply.raw.destroy();
      return;
    }
    if (err instanceof CairnError) ce = err;
    else if (e.code === "EROFS" || e.code === "EIO") {
      req.log.error({ err }, "a volume's filesystem failed");
      ce = new CairnError(
        "VOLUME_DAMAGED",
        "The volume's filesystem reported an error and the kernel made it read-only. cairnd checks and repairs it before it mounts it again, once nothing has used it for CAIRN_IDLE_UNMOUNT_MS (sandboxes that have it attached hold it): retry then.",
      );
    } else if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") ce = new CairnError("UNSUPPORTED_MEDIA_TYPE", "Send JSON bodies with Content-Type: application/json");
    else if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") ce = new CairnError("PAYLOAD_TOO_LARGE", `This JSON body is larger than this route takes (${req.routeOptions.bodyLimit ?? 1048576} bytes)`);
    else if (e.statusCode === 400 || e.code === "FST_ERR_CTP_EMPTY_JSON_BODY") ce = new CairnError("INVALID_REQUEST", `The request body is not valid JSON: ${e.message}`);
    else {
      req.log.error({ err }, "unhandled error");
      ce = new CairnError("INTERNAL", `Something went wrong on the server; quote request id ${req.id} when you report it`);
    }
    if (ce.status >= 500 && ce.code !== "INTERNAL") req.log.warn({ err: ce }, ce.message);
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    const operation = req.routeOptions.config.operation;
    if (onUndeclared && operation && !operation.errors.has(ce.code)) {
      onUndeclared({ operationId: operation.operationId, code: ce.code, method: req.method, url: req.url, requestId: req.id });
    }
    // A client still sending a body (a write that did not fit) must read our answer, not a
    // reset: read and drop the rest of the body, within bounds, before answering. A client that
    // waits for "100 Continue" has sent none of it: answer at once and close (it must not send it).
    if (awaitingContinue.has(req.raw)) reply.header("connection", "close");
    else if (!(await drainBody(req.raw))) {
      // Still unread after the bounds: answer, then close the socket (the client may only look at
      // the answer once its upload fails).
      reply.header("connection", "close");
      // A half-duplex client (fetch) only reads the answer once its body is sent: one that keeps
      // sending forever must see the connection go, not wait on it.
      const socket = req.raw.socket;
      reply.raw.once("finish", () => setTimeout(() => socket?.destroy?.(), 100));
    }
    return reply.code(ce.status).type(PROBLEM_CONTENT_TYPE).send(ce.toProblem(req.id));
  });
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const madeLogger = typeof deps.logger === "object" && deps.logger !== null && typeof (deps.logger as FastifyBaseLogger).child === "function";
  const app = Fastify({
    ...(madeLogger ? { loggerInstance: deps.logger as FastifyBaseLogger } : { logger: deps.logger as FastifyServerOptions["logger"] }),
    // One line per request, written when it is answered (see the onResponse hook below).
    disableRequestLogging: true,
    genReqId: () => newId("req", 16),
    requestIdLogLabel: "requestId",
    return503OnClosing: true,
    forceCloseConnections: "idle",
    bodyLimit: 1024 * 1024,
    // Requests for deployed apps (`<app>[.<env>].localhost`) and sandbox ports
    // (`<port>-<sandbox>.localhost`) go to the router before Fastify sees them.
    serverFactory: (handler) => {
      const onRequest = (req: IncomingMessage, res: ServerResponse) => {
        const port = deps.ports.match(req.headers.host);
        if (port) return deps.ports.proxy(req, res, port);
        const m = deps.deployments.match(req.headers.host);
        if (m) deps.deployments.proxy(req, res, m.route, m.key);
        else handler(req, res);
      };
      const server = createServer(onRequest);
      // "Expect: 100-continue": answer "100 Continue" only once a handler reads the body, so a
      // write refused up front (no space, a failed precondition, no such volume) is refused before
      // the client sends a byte of it. Node would send it before any handler runs.
      server.on("checkContinue", (req, res) => {
        if (deps.deployments.match(req.headers.host) || deps.ports.match(req.headers.host)) res.writeContinue(); // the app decides, not us
        else deferContinue(req, res);
        onRequest(req, res);
      });
      // Fastify applies its timeouts only to servers it makes: set its defaults here. Node's own
      // 5 s keep-alive races clients that reuse a connection at 4-5 s (EPIPE on a large upload).
      server.keepAliveTimeout = 72_000;
      server.headersTimeout = 73_000;
      server.requestTimeout = 0;
      server.on("upgrade", (req, socket, head) => {
        const port = deps.ports.match(req.headers.host);
        if (port) return deps.ports.upgrade(req, socket, head, port);
        const m = deps.deployments.match(req.headers.host);
        if (m) deps.deployments.upgrade(req, socket, head, m.route, m.key);
        else socket.destroy();
      });
      return server;
    },
  });
  let doc: unknown;
  const routes: RouteSpec[] = allRoutes(deps, () => doc);
  doc = buildOpenApi(routes, deps.version);

  // Watches and upgraded connections to deployed apps never end by themselves, and resumable
  // uploads can resume later: end them before close() waits for in-flight requests.
  app.addHook("preClose", async () => {
    deps.deployments.hangUp();
    await deps.files.close();
  });

  app.addHook("onSend", async (req, reply, payload) => {
    reply.header("x-request-id", req.id);
    return payload;
  });
  app.addHook("onResponse", (req, reply, done) => {
    req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, "request");
    done();
  });

  setProblemHandler(app, deps.onUndeclaredError);

  app.setNotFoundHandler((req, reply) => {
    const e = new CairnError("NOT_FOUND", `No route ${req.method} ${req.url.split("?")[0]}; see /openapi.json`);
    void reply.code(404).type(PROBLEM_CONTENT_TYPE).send(e.toProblem(req.id));
  });

  // An empty body with a JSON content type is no body (curl -H 'content-type: application/json' -X DELETE …).
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === "") return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      (err as { statusCode?: number }).statusCode = 400;
      done(err as Error, undefined);
    }
  });

  const authenticate = (req: import("fastify").FastifyRequest) =>
    deps.auth.authenticate(req.headers.authorization, req.headers["x-cairn-project"] as string | undefined);

  // File content is streamed, never parsed: those routes live in a scope without body parsers
  // (a JSON file must not be parsed as a request).
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser("*", (_req, _payload, done) => done(null));
    for (const r of routes.filter((r) => r.rawBody)) registerRoute(raw, r, authenticate, declaredErrors(r));
  });
  for (const r of routes.filter((r) => !r.rawBody)) registerRoute(app, r, authenticate, declaredErrors(r));
  return app;
}
