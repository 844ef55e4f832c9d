/**
 * Every invalid input gets a 4xx with its stable code, through the whole HTTP stack (on fakes).
 * Each row is a request a careless or hostile client sends, and the code it must get back.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES } from "@cairn/protocol";
import { useFakeCairnd, codeOf } from "../testing/node-test.js";

interface Row {
  what: string;
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
  code: string;
}

const raw = { "content-type": "application/octet-stream" };
const ID_SHAPED = "vol_0123456789abcdefghjk";

const rows: Row[] = [
  // volumes
  { what: "an upper-case volume name", method: "POST", url: "/v1/volumes", payload: { name: "Data" }, code: "INVALID_VOLUME_NAME" },
  { what: "an empty volume name", method: "POST", url: "/v1/volumes", payload: { name: "" }, code: "INVALID_VOLUME_NAME" },
  { what: "a 64-character volume name", method: "POST", url: "/v1/volumes", payload: { name: "a".repeat(64) }, code: "INVALID_VOLUME_NAME" },
  { what: "a volume name with a slash", method: "POST", url: "/v1/volumes", payload: { name: "a/b" }, code: "INVALID_VOLUME_NAME" },
  { what: "a volume name of dots", method: "POST", url: "/v1/volumes", payload: { name: ".." }, code: "INVALID_VOLUME_NAME" },
  { what: "a volume name starting with a hyphen", method: "POST", url: "/v1/volumes", payload: { name: "-x" }, code: "INVALID_VOLUME_NAME" },
  { what: "a volume name shaped like an id", method: "POST", url: "/v1/volumes", payload: { name: ID_SHAPED }, code: "INVALID_VOLUME_NAME" },
  { what: "a size of zero GiB", method: "POST", url: "/v1/volumes", payload: { name: "z0", sizeGb: 0 }, code: "INVALID_SIZE" },
  { what: "a negative size", method: "POST", url: "/v1/volumes", payload: { name: "zneg", sizeGb: -1 }, code: "INVALID_SIZE" },
  { what: "a fractional size", method: "POST", url: "/v1/volumes", payload: { name: "zfrac", sizeGb: 1.5 }, code: "INVALID_SIZE" },
  { what: "a size as a string", method: "POST", url: "/v1/volumes", payload: { name: "zstr", sizeGb: "big" }, code: "INVALID_SIZE" },
  { what: "a size past the server's largest", method: "POST", url: "/v1/volumes", payload: { name: "zhuge", sizeGb: 100000 }, code: "INVALID_SIZE" },
  { what: "sizeBytes below what ext4 can be made in", method: "POST", url: "/v1/volumes", payload: { name: "ztiny", sizeBytes: 4096 }, code: "INVALID_SIZE" },
  { what: "an unknown filesystem", method: "POST", url: "/v1/volumes", payload: { name: "zfs", filesystem: "btrfs" }, code: "INVALID_REQUEST" },
  { what: "a label value that is not a string", method: "POST", url: "/v1/volumes", payload: { name: "zl", labels: { a: 1 } }, code: "INVALID_LABEL" },
  { what: "a body that is not JSON", method: "POST", url: "/v1/volumes", payload: "{name", headers: { "content-type": "application/json" }, code: "INVALID_REQUEST" },
  { what: "a body of the wrong media type", method: "POST", url: "/v1/volumes", payload: "name=x", headers: { "content-type": "application/x-www-form-urlencoded" }, code: "UNSUPPORTED_MEDIA_TYPE" },
  { what: "a volume that does not exist", method: "GET", url: "/v1/volumes/nope", code: "VOLUME_NOT_FOUND" },
  { what: "an id-shaped volume that does not exist", method: "GET", url: `/v1/volumes/${ID_SHAPED}`, code: "VOLUME_NOT_FOUND" },
  { what: "deleting a volume that does not exist", method: "DELETE", url: "/v1/volumes/nope", code: "VOLUME_NOT_FOUND" },
  { what: "a shrink", method: "PATCH", url: "/v1/volumes/existing", payload: { sizeBytes: 64 * 1024 * 1024 }, code: "VOLUME_SHRINK_NOT_ALLOWED" },
  { what: "a second volume of one name", method: "POST", url: "/v1/volumes", payload: { name: "existing" }, code: "VOLUME_ALREADY_EXISTS" },
  { what: "an unknown route", method: "GET", url: "/v1/nothing-here", code: "NOT_FOUND" },
  // files
  { what: "a relative file path (taken from the root: not the host's)", method: "GET", url: "/v1/volumes/existing/files/content?path=etc/passwd", code: "PATH_NOT_FOUND" },
  { what: "a path climbing out with ..", method: "GET", url: "/v1/volumes/existing/files/content?path=/../../etc/passwd", code: "INVALID_PATH" },
  { what: "a path with a NUL byte", method: "GET", url: "/v1/volumes/existing/files/content?path=/a%00b", code: "INVALID_PATH" },
  { what: "a missing path parameter", method: "GET", url: "/v1/volumes/existing/files/content", code: "INVALID_PATH" },
  { what: "a file that does not exist", method: "GET", url: "/v1/volumes/existing/files/content?path=/missing.txt", code: "PATH_NOT_FOUND" },
  { what: "stat of a file that does not exist", method: "GET", url: "/v1/volumes/existing/files/stat?path=/missing.txt", code: "PATH_NOT_FOUND" },
  { what: "reading a directory as a file", method: "GET", url: "/v1/volumes/existing/files/content?path=/dir", code: "NOT_A_FILE" },
  { what: "listing a file as a directory", method: "GET", url: "/v1/volumes/existing/files/list?path=/dir/file.txt", code: "NOT_A_DIRECTORY" },
  { what: "writing over a directory", method: "PUT", url: "/v1/volumes/existing/files/content?path=/dir", payload: "x", headers: raw, code: "NOT_A_FILE" },
  { what: "writing into the reserved directory", method: "PUT", url: "/v1/volumes/existing/files/content?path=/.cairn/x", payload: "x", headers: raw, code: "INVALID_PATH" },
  { what: "a write with a stale If-Match", method: "PUT", url: "/v1/volumes/existing/files/content?path=/dir/file.txt", payload: "x", headers: { ...raw, "if-match": '"stale"' }, code: "PRECONDITION_FAILED" },
  { what: "a create-only write over an existing file", method: "PUT", url: "/v1/volumes/existing/files/content?path=/dir/file.txt", payload: "x", headers: { ...raw, "if-none-match": "*" }, code: "PRECONDITION_FAILED" },
  { what: "a range past the end", method: "GET", url: "/v1/volumes/existing/files/content?path=/dir/file.txt", headers: { range: "bytes=1000-2000" }, code: "INVALID_RANGE" },
  { what: "removing a directory that is not empty", method: "DELETE", url: "/v1/volumes/existing/files?path=/dir", code: "DIRECTORY_NOT_EMPTY" },
  { what: "removing the volume's root", method: "DELETE", url: "/v1/volumes/existing/files?path=/&recursive=true", code: "INVALID_PATH" },
  { what: "moving onto an existing file", method: "POST", url: "/v1/volumes/existing/files/move", payload: { from: "/dir/file.txt", to: "/dir/other.txt" }, code: "PATH_ALREADY_EXISTS" },
  { what: "moving a directory into itself", method: "POST", url: "/v1/volumes/existing/files/move", payload: { from: "/dir", to: "/dir/inside" }, code: "INVALID_PATH" },
  { what: "mkdir over a file", method: "POST", url: "/v1/volumes/existing/files/mkdir", payload: { path: "/dir/file.txt" }, code: "PATH_ALREADY_EXISTS" },
  { what: "an edit whose text is not there", method: "POST", url: "/v1/volumes/existing/files/edit", payload: { path: "/dir/file.txt", oldString: "absent", newString: "x" }, code: "EDIT_NO_MATCH" },
  { what: "an edit whose text is there twice", method: "POST", url: "/v1/volumes/existing/files/edit", payload: { path: "/dir/twice.txt", oldString: "ab", newString: "x" }, code: "EDIT_AMBIGUOUS" },
  { what: "a search with a broken regular expression", method: "GET", url: "/v1/volumes/existing/files/search?path=/&query=(unclosed&regex=true", code: "INVALID_PATTERN" },
  { what: "a batch writing a file and a child of it", method: "POST", url: "/v1/volumes/existing/files/batch", payload: { files: [{ path: "/f", content: "a" }, { path: "/f/child", content: "b" }] }, code: "INVALID_REQUEST" },
  { what: "a signed URL with a bad signature", method: "GET", url: "/v1/signed/volumes/existing/files/content?path=/dir/file.txt&expires=9999999999&op=read&sig=00", code: "FORBIDDEN" },
  { what: "an upload that does not exist", method: "GET", url: "/v1/volumes/existing/uploads/upl_0123456789abcdefghjk", headers: { "tus-resumable": "1.0.0" }, code: "UPLOAD_NOT_FOUND" },
  // checkpoints
  { what: "an upper-case checkpoint name", method: "POST", url: "/v1/volumes/existing/checkpoints", payload: { name: "Before" }, code: "INVALID_CHECKPOINT_NAME" },
  { what: "a checkpoint name shaped like an id", method: "POST", url: "/v1/volumes/existing/checkpoints", payload: { name: "cp_0123456789abcdefghjk" }, code: "INVALID_CHECKPOINT_NAME" },
  { what: "a checkpoint that does not exist", method: "GET", url: "/v1/volumes/existing/checkpoints/none", code: "CHECKPOINT_NOT_FOUND" },
  { what: "restoring a checkpoint that does not exist", method: "POST", url: "/v1/volumes/existing/checkpoints/none/restore", code: "CHECKPOINT_NOT_FOUND" },
  { what: "a second checkpoint of one name", method: "POST", url: "/v1/volumes/existing/checkpoints", payload: { name: "first" }, code: "CHECKPOINT_ALREADY_EXISTS" },
  { what: "a fork from a checkpoint that does not exist", method: "POST", url: "/v1/volumes", payload: { name: "forked", fromCheckpoint: "existing:none" }, code: "CHECKPOINT_NOT_FOUND" },
  { what: "a fork source that is not volume:checkpoint", method: "POST", url: "/v1/volumes", payload: { name: "forked", fromCheckpoint: "existing" }, code: "INVALID_REQUEST" },
  // sandboxes
  { what: "a sandbox that does not exist", method: "GET", url: "/v1/sandboxes/sbx_0123456789abcdefghjk", code: "SANDBOX_NOT_FOUND" },
  { what: "an unknown template", method: "POST", url: "/v1/sandboxes", payload: { template: "nope" }, code: "INVALID_TEMPLATE" },
  { what: "a mount at a relative path", method: "POST", url: "/v1/sandboxes", payload: { volumes: { workspace: "existing" } }, code: "INVALID_MOUNT" },
  { what: "a mount over /proc", method: "POST", url: "/v1/sandboxes", payload: { volumes: { "/proc": "existing" } }, code: "INVALID_MOUNT" },
  { what: "a mount over /etc", method: "POST", url: "/v1/sandboxes", payload: { volumes: { "/etc/x": "existing" } }, code: "INVALID_MOUNT" },
  { what: "a mount of a volume that does not exist", method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: "missing-volume", mountPath: "/data" }] }, code: "VOLUME_NOT_FOUND" },
  { what: "zero memory", method: "POST", url: "/v1/sandboxes", payload: { memoryMb: 0 }, code: "INVALID_REQUEST" },
  { what: "exec of an empty command", method: "POST", url: "/v1/sandboxes/sbx_0123456789abcdefghjk/exec", payload: { command: "" }, code: "INVALID_REQUEST" },
  { what: "exec without a command in a sandbox without an image", method: "POST", url: "/v1/sandboxes/running/exec", payload: {}, code: "INVALID_REQUEST" },
  // images
  { what: "an image reference with capitals", method: "POST", url: "/v1/images/pull", payload: { ref: "Node:20" }, code: "INVALID_IMAGE" },
  { what: "an image that is not here", method: "GET", url: "/v1/images/nothing%3A1", code: "IMAGE_NOT_FOUND" },
  { what: "an image the registry does not have", method: "POST", url: "/v1/images/pull", payload: { ref: "nothing:1" }, code: "IMAGE_NOT_FOUND" },
  { what: "a sandbox of an image the registry does not have", method: "POST", url: "/v1/sandboxes", payload: { image: "nothing:1" }, code: "IMAGE_NOT_FOUND" },
  { what: "exec in a sandbox that does not exist", method: "POST", url: "/v1/sandboxes/sbx_0123456789abcdefghjk/exec", payload: { command: "true" }, code: "SANDBOX_NOT_FOUND" },
  { what: "a process that does not exist", method: "GET", url: "/v1/sandboxes/running/processes/prc_0123456789abcdefghjk", code: "PROCESS_NOT_FOUND" },
  { what: "detaching a mount the sandbox does not have", method: "POST", url: "/v1/sandboxes/running/detach", payload: { mountPath: "/nothing" }, code: "ATTACHMENT_NOT_FOUND" },
  { what: "attaching a volume twice read-write", method: "POST", url: "/v1/sandboxes/running/attachments", payload: { volume: "attached", mountPath: "/again" }, code: "VOLUME_ALREADY_ATTACHED" },
  // projects and keys (admin)
  { what: "a project name with spaces", method: "POST", url: "/v1/projects", payload: { name: "my project" }, code: "INVALID_PROJECT_NAME" },
  { what: "keys of a project that does not exist", method: "GET", url: "/v1/projects/nope/keys", code: "PROJECT_NOT_FOUND" },
  { what: "a key name over 100 characters", method: "POST", url: "/v1/projects/default/keys", payload: { name: "k".repeat(101) }, code: "INVALID_REQUEST" },
  { what: "revoking a key that does not exist", method: "DELETE", url: "/v1/projects/default/keys/key_0123456789abcdefghjk", code: "API_KEY_NOT_FOUND" },
  // deployments
  { what: "a deployment without an app name", method: "POST", url: "/v1/deployments", payload: {}, code: "INVALID_REQUEST" },
];

describe("invalid input: a 4xx with a stable code, through the HTTP stack", () => {
  const cairnd = useFakeCairnd();
  let sandboxId = "";
  before(async () => {
    const c = cairnd();
    const ok = async (o: Parameters<typeof c.request>[0]) => {
      const r = await c.request(o);
      assert.ok(r.statusCode < 300, `${o.method} ${o.url}: ${r.statusCode} ${r.body}`);
      return JSON.parse(r.body || "{}") as { id: string };
    };
    await ok({ method: "POST", url: "/v1/volumes", payload: { name: "existing", sizeGb: 1 } });
    await ok({ method: "POST", url: "/v1/volumes", payload: { name: "attached", sizeGb: 1 } });
    await ok({ method: "POST", url: "/v1/volumes/existing/files/mkdir", payload: { path: "/dir" } });
    await ok({ method: "PUT", url: "/v1/volumes/existing/files/content?path=/dir/file.txt", payload: "hello", headers: raw });
    await ok({ method: "PUT", url: "/v1/volumes/existing/files/content?path=/dir/other.txt", payload: "other", headers: raw });
    await ok({ method: "PUT", url: "/v1/volumes/existing/files/content?path=/dir/twice.txt", payload: "ab ab", headers: raw });
    await ok({ method: "POST", url: "/v1/volumes/existing/checkpoints", payload: { name: "first" } });
    sandboxId = (await ok({ method: "POST", url: "/v1/sandboxes", payload: { volumes: { "/attached": "attached" } } })).id;
  });

  for (const row of rows) {
    it(`${row.what} → ${row.code}`, async () => {
      const url = row.url.replace("/sandboxes/running/", `/sandboxes/${sandboxId}/`);
      const res = await cairnd().request({ method: row.method, url, payload: row.payload as string, headers: row.headers ?? {} });
      assert.equal(codeOf(res), row.code, `${row.method} ${url}: ${res.statusCode} ${res.body.slice(0, 300)}`);
      const expected = ERROR_CODES[row.code as keyof typeof ERROR_CODES].status;
      assert.equal(res.statusCode, expected);
      assert.match(String(res.headers["content-type"]), /^application\/problem\+json/);
      const body = JSON.parse(res.body) as { detail?: string; status?: number };
      assert.equal(body.status, expected);
      assert.ok(body.detail && body.detail.length > 10, "the message says what to do");
    });
  }
});
