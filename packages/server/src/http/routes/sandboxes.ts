import { PassThrough } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { z } from "zod";
import {
  Attachment,
  CairnError,
  CreateSandboxRequest,
  DetachRequest,
  ForkSandboxRequest,
  ExecRequest,
  MountRequest,
  ProcessInfo,
  Sandbox,
  SANDBOX_STATES,
  type ErrorCode,
  type ExecEvent,
} from "@cairn/protocol";
import type { SandboxService } from "../../sandboxes/service.js";
import { defineRoute, type RouteSpec } from "../route.js";
import { LEASE_ERRORS } from "./volumes.js";

const SandboxParams = z.object({ sandbox: z.string().min(1).max(64).meta({ description: "Sandbox id" }) });
const PathQuery = z.object({ path: z.string().meta({ description: "Absolute path inside the sandbox" }) });

/**
 * Mounting volumes into a sandbox (Mounts.claim, then source): the volume's region, state, access
 * mode and other attachments, a checkpoint or subpath to mount, and leasing it.
 */
const MOUNT_ERRORS: ErrorCode[] = [
  ...LEASE_ERRORS,
  "REGION_MISMATCH",
  "VOLUME_ALREADY_ATTACHED",
  "INVALID_MOUNT",
  "CHECKPOINT_NOT_FOUND",
  "INVALID_PATH",
  "PATH_NOT_FOUND",
];

/** Starting a sandbox (a create or a fork): its disk must fit in the pool. */
const START_ERRORS: ErrorCode[] = [...MOUNT_ERRORS, "POOL_FULL", "NETWORK_UNAVAILABLE"];

export function sandboxRoutes(sandboxes: SandboxService): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/sandboxes",
      operationId: "createSandbox",
      summary: "Create and start a sandbox, with volumes mounted",
      description:
        'A Linux container run by crun. `volumes` is a list of mounts or `{ "/workspace": "my_project" }`, which creates missing volumes. A ReadWriteOnce volume already attached elsewhere gives 409 `Volume "x" is already attached`; a volume of another region gives 409 `Volume "v" is in region R`.',
      tags: ["sandboxes"],
      body: CreateSandboxRequest,
      responses: { 201: { description: "Running", schema: Sandbox } },
      // `{ "/path": "name" }` creates missing volumes (of the default size, which the server's largest may be under).
      errors: [...START_ERRORS, "INVALID_TEMPLATE", "TOO_MANY_VOLUMES", "INVALID_VOLUME_NAME", "INVALID_SIZE", "INVALID_IMAGE", "IMAGE_NOT_FOUND", "REGISTRY_ERROR", "IMAGE_DIGEST_MISMATCH", "INVALID_NETWORK_POLICY"],
      handler: async ({ body, principal, reply }) => {
        const sb = await sandboxes.create(principal.projectId, body);
        reply.code(201);
        return sb;
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/sandboxes",
      operationId: "listSandboxes",
      summary: "List sandboxes, newest first",
      description: "Killed and failed sandboxes stay listed for CAIRN_STOPPED_SANDBOX_RETENTION_MS (a day), then are forgotten.",
      tags: ["sandboxes"],
      query: z.object({ state: z.enum(SANDBOX_STATES).optional().meta({ description: "Only sandboxes in this state" }) }),
      responses: { 200: { description: "Sandboxes", schema: z.object({ items: z.array(Sandbox) }) } },
      handler: async ({ principal, query }) => ({ items: await sandboxes.list(principal.projectId, query.state ? { states: [query.state] } : {}) }),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/sandboxes/{sandbox}",
      operationId: "getSandbox",
      summary: "Get a sandbox",
      tags: ["sandboxes"],
      params: SandboxParams,
      responses: { 200: { description: "The sandbox", schema: Sandbox } },
      handler: async ({ params, principal }) => sandboxes.get(principal.projectId, params.sandbox),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/sandboxes/{sandbox}",
      operationId: "killSandbox",
      summary: "Kill a sandbox: its processes and filesystem go, its volumes are released",
      tags: ["sandboxes"],
      params: SandboxParams,
      responses: { 200: { description: "Stopped", schema: Sandbox } },
      handler: async ({ params, principal }) => sandboxes.kill(principal.projectId, params.sandbox),
    }),
    defineRoute({
      method: "POST",
      path: "/v1/sandboxes/{sandbox}/exec",
      operationId: "exec",
      summary: "Run a command; stdout and stderr stream back as NDJSON",
      description:
        'Each line is `{"type":"stdout"|"stderr","data":"…"}`, the last `{"type":"exit","exitCode":N}`. With `background: true` the answer is a process (JSON) to poll for logs and exit code.',
      tags: ["sandboxes"],
      params: SandboxParams,
      body: ExecRequest,
      responses: { 200: { description: "NDJSON event stream, or a Process when background", contentType: "application/x-ndjson" } },
      errors: ["SANDBOX_NOT_RUNNING", "INVALID_PATH"],
      handler: async ({ params, body, principal, reply }) => {
        if (body.background) return sandboxes.startBackground(principal.projectId, params.sandbox, body);
        const child = await sandboxes.exec(principal.projectId, params.sandbox, body);
        child.stdin?.end();
        const out = new PassThrough();
        const send = (e: ExecEvent) => out.write(JSON.stringify(e) + "\n");
        for (const [name, stream] of [["stdout", child.stdout], ["stderr", child.stderr]] as const) {
          const dec = new StringDecoder("utf8");
          stream?.on("data", (d: Buffer) => send({ type: name, data: dec.write(d) }));
          stream?.on("end", () => {
            const rest = dec.end();
            if (rest) send({ type: name, data: rest });
          });
        }
        const backstop = body.timeoutMs !== undefined ? setTimeout(() => child.kill("SIGKILL"), body.timeoutMs + 5_000) : undefined;
        child.on("close", (code, signal) => {
          clearTimeout(backstop);
          send({ type: "exit", exitCode: code ?? (signal === "SIGKILL" ? 137 : 1) });
          out.end();
        });
        reply.raw.on("close", () => {
          if (child.exitCode === null) child.kill("SIGKILL");
        });
        reply.header("content-type", "application/x-ndjson");
        return reply.send(out);
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/sandboxes/{sandbox}/processes/{process}",
      operationId: "getProcess",
      summary: "A background process: state, exit code, and with logs=true its output",
      tags: ["sandboxes"],
      params: SandboxParams.extend({ process: z.string() }),
      query: z.object({
        wait: z.enum(["true", "false"]).optional().meta({ description: "Wait until it exits" }),
        logs: z.enum(["true", "false"]).optional(),
      }),
      responses: { 200: { description: "The process", schema: ProcessInfo } },
      handler: async ({ params, query, principal }) =>
        sandboxes.process(principal.projectId, params.sandbox, params.process, { wait: query.wait === "true", logs: query.logs === "true" }),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/sandboxes/{sandbox}/attachments",
      operationId: "listAttachments",
      summary: "The sandbox's attachment records, with their states",
      tags: ["sandboxes"],
      params: SandboxParams,
      responses: { 200: { description: "Attachments", schema: z.object({ items: z.array(Attachment) }) } },
      handler: async ({ params, principal }) => ({ items: await sandboxes.attachments(principal.projectId, params.sandbox) }),
    }),
    defineRoute({
      method: "POST",
      path: "/v1/sandboxes/{sandbox}/attachments",
      operationId: "attachVolume",
      summary: "Hot-plug a volume into the running sandbox",
      tags: ["sandboxes"],
      params: SandboxParams,
      body: MountRequest,
      responses: { 201: { description: "Mounted", schema: Attachment } },
      errors: [...MOUNT_ERRORS, "SANDBOX_NOT_RUNNING", "TOO_MANY_VOLUMES"],
      handler: async ({ params, body, principal, reply }) => {
        const a = await sandboxes.attach(principal.projectId, params.sandbox, body);
        reply.code(201);
        return a;
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/sandboxes/{sandbox}/detach",
      operationId: "detachVolume",
      summary: "Unmount a volume from the sandbox, by mount path",
      description: "A mount with open files gives 409 VOLUME_BUSY unless `force` (the processes using the volume are killed, then it is unmounted). A mount the sandbox moved or replaced gives 409 MOUNT_CHANGED; the volume stays attached until the sandbox stops.",
      tags: ["sandboxes"],
      params: SandboxParams,
      body: DetachRequest,
      responses: { 200: { description: "Released", schema: Attachment } },
      errors: ["ATTACHMENT_NOT_FOUND", "VOLUME_BUSY", "MOUNT_CHANGED", "SANDBOX_NOT_RUNNING", "INVALID_PATH"],
      handler: async ({ params, body, principal }) => sandboxes.detach(principal.projectId, params.sandbox, body.mountPath, body.force ?? false),
    }),
    ...(["hibernate", "resume"] as const).map((action) =>
      defineRoute({
        method: "POST",
        path: `/v1/sandboxes/{sandbox}/${action}`,
        operationId: `${action}Sandbox`,
        summary:
          action === "hibernate"
            ? "Hibernate: stop processes, keep the filesystem and attachment intent, release volumes"
            : "Resume a hibernated sandbox and remount its volumes",
        tags: ["sandboxes"],
        params: SandboxParams,
        responses: { 200: { description: "The sandbox", schema: Sandbox } },
        // Resuming mounts the volumes again.
        errors: action === "hibernate" ? ["SANDBOX_NOT_RUNNING"] : ["SANDBOX_NOT_RUNNING", ...START_ERRORS],
        handler: async ({ params, principal }) => sandboxes[action](principal.projectId, params.sandbox),
      }),
    ),
    defineRoute({
      method: "POST",
      path: "/v1/sandboxes/{sandbox}/fork",
      operationId: "forkSandbox",
      summary: "Fork: a new sandbox with the same filesystem state",
      description:
        "ReadWriteMany and ReadOnlyMany volumes are shared. A ReadWriteOnce volume mounted read-write is forked copy-on-write into a new volume labelled `cairn.dev/fork-of` and `cairn.dev/forked-for`, deleted when the fork is killed unless `keepVolumes`; one mounted read-only is shared as a read-only view of a checkpoint taken now.",
      tags: ["sandboxes"],
      params: SandboxParams,
      body: ForkSandboxRequest.optional(),
      responses: { 201: { description: "The fork, running", schema: Sandbox } },
      // A ReadWriteOnce volume is forked through a checkpoint into a new volume (named after its source and the fork).
      errors: [...START_ERRORS, "SANDBOX_NOT_RUNNING", "CHECKPOINT_LIMIT_REACHED", "CHECKPOINT_ALREADY_EXISTS", "VOLUME_ALREADY_EXISTS"],
      handler: async ({ params, body, principal, reply }) => {
        reply.code(201);
        return sandboxes.fork(principal.projectId, params.sandbox, { keepVolumes: body?.keepVolumes ?? false });
      },
    }),
    defineRoute({
      method: "PUT",
      path: "/v1/sandboxes/{sandbox}/files/content",
      operationId: "writeSandboxFile",
      summary: "Write a file anywhere in the sandbox (volumes included), as the sandbox would",
      tags: ["sandboxes"],
      params: SandboxParams,
      query: PathQuery,
      rawBody: { contentType: "application/octet-stream", description: "The file's bytes" },
      responses: { 204: { description: "Written" } },
      errors: ["SANDBOX_NOT_RUNNING", "INVALID_PATH", "QUOTA_EXCEEDED"],
      handler: async ({ params, query, req, principal, reply }) => {
        await sandboxes.writeFile(principal.projectId, params.sandbox, query.path, req.raw);
        reply.code(204);
        return undefined;
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/sandboxes/{sandbox}/files/content",
      operationId: "readSandboxFile",
      summary: "Read a file of the sandbox",
      tags: ["sandboxes"],
      params: SandboxParams,
      query: PathQuery,
      responses: { 200: { description: "The file", contentType: "application/octet-stream" } },
      errors: ["SANDBOX_NOT_RUNNING", "INVALID_PATH", "PATH_NOT_FOUND", "NOT_A_FILE"],
      handler: async ({ params, query, principal, reply }) => {
        const child = await sandboxes.readFile(principal.projectId, params.sandbox, query.path);
        // Wait for the first byte or the exit, so a missing file is a 404, not a broken stream.
        let stderr = "";
        child.stderr?.on("data", (d) => (stderr += d));
        const first = await new Promise<Buffer | null>((resolve) => {
          child.stdout?.once("data", (d: Buffer) => {
            child.stdout?.pause();
            resolve(d);
          });
          child.once("close", () => resolve(null));
        });
        if (first === null && child.exitCode !== 0) {
          if (child.exitCode === 21) throw new CairnError("NOT_A_FILE", `${query.path} is a directory`);
          throw new CairnError("PATH_NOT_FOUND", `${query.path} does not exist in the sandbox`);
        }
        const out = new PassThrough();
        if (first) out.write(first);
        child.stdout?.pipe(out);
        child.stdout?.resume();
        if (first === null) out.end();
        reply.raw.on("close", () => child.exitCode === null && child.kill("SIGKILL"));
        reply.header("content-type", "application/octet-stream");
        return reply.send(out);
      },
    }),
  ];
}
