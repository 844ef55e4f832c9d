import {
  type MountRequest,
  type Checkpoint,
  type CheckpointList,
  type AccessMode,
  type CreateVolumeRequest,
  type Filesystem,
  type ResizeResult,
  type Volume as VolumeInfo,
  type VolumeList,
  type WriteFileResult,
} from "@cairn/protocol";
import { defaultHttpClient, type HttpClient, type RequestOptions } from "./transport/http.js";
import { VolumeFiles } from "./files/volume-files.js";
import { toStream, type FileData } from "./transport/body.js";

export { VolumeFiles, type FileData };

export type { VolumeInfo, WriteFileResult, AccessMode, Filesystem, Checkpoint };

export interface CreateVolumeOptions extends RequestOptions {
  name: string;
  /** Size in GiB, 1-100. Default 1. */
  sizeGb?: number;
  /** Exact size in bytes (rounded up to a MiB); instead of sizeGb. */
  sizeBytes?: number;
  /** Default `ReadWriteOnce`. */
  accessMode?: AccessMode;
  /** Default `ext4`. */
  filesystem?: Filesystem;
  labels?: Record<string, string>;
  region?: string;
  /** Fork: start as a copy-on-write copy of a checkpoint, `"volume:checkpoint"` (ids or names). */
  fromCheckpoint?: string;
}

export interface ListVolumesOptions extends RequestOptions {
  /** Only volumes with all these labels. */
  labels?: Record<string, string>;
  /** Only these fields of each volume. */
  fields?: (keyof VolumeInfo)[];
  /** Page size (default 100, at most 1000). */
  limit?: number;
  cursor?: string;
  /** Deleted volumes whose checkpoints were kept, instead of live ones. */
  deleted?: boolean;
}

export interface ResizeOptions extends RequestOptions {
  sizeBytes?: number;
  sizeGb?: number;
}

const enc = (s: string) => encodeURIComponent(s);

/**
 * Checkpoints of one volume: instant copy-on-write restore points.
 *
 * @example
 * const cp = await volume.checkpoints.create({ name: "before-migration" });
 * await volume.checkpoints.restore("before-migration");
 */
export class Checkpoints {
  constructor(
    private readonly http: HttpClient,
    private readonly volumeRef: () => string,
  ) {}

  private base(): string {
    return `/v1/volumes/${enc(this.volumeRef())}/checkpoints`;
  }

  /**
   * Take a checkpoint. Writers pause for milliseconds; no space is used until blocks diverge.
   * `keep` deletes the oldest checkpoints beyond that count.
   *
   * @example
   * await volume.checkpoints.create({ name: "nightly-2026-11-22", keep: 7 });
   */
  async create(options: RequestOptions & { name?: string; labels?: Record<string, string>; keep?: number } = {}): Promise<Checkpoint> {
    const { signal, ...body } = options;
    return this.http.json<Checkpoint>({ method: "POST", path: this.base(), json: body, signal });
  }

  /** Oldest first. @example for (const cp of await volume.checkpoints.list()) console.log(cp.name); */
  async list(options: RequestOptions = {}): Promise<Checkpoint[]> {
    return (await this.http.json<CheckpointList>({ method: "GET", path: this.base(), signal: options.signal })).items;
  }

  /** By id or name. @example const cp = await volume.checkpoints.get("before-migration"); */
  async get(ref: string, options: RequestOptions = {}): Promise<Checkpoint> {
    return this.http.json<Checkpoint>({ method: "GET", path: `${this.base()}/${enc(ref)}`, signal: options.signal });
  }

  /**
   * Restore the volume in place, atomically. Throws `VOLUME_BUSY` while a sandbox has it
   * attached read-write, unless `detach: true` (which detaches it from those sandboxes first).
   *
   * @example
   * await volume.checkpoints.restore("before-migration");
   */
  async restore(ref: string, options: RequestOptions & { detach?: boolean } = {}): Promise<VolumeInfo> {
    return this.http.json<VolumeInfo>({
      method: "POST",
      path: `${this.base()}/${enc(ref)}/restore`,
      query: { detach: options.detach ? "true" : undefined },
      signal: options.signal,
    });
  }

  /**
   * Download a checkpoint: `image` (default) is the raw ext4/XFS image, `tar` an archive of its
   * files. Either can be imported on any cairnd with `cairn.volumes.import`.
   *
   * @example
   * const stream = await volume.checkpoints.export("before-migration", { format: "tar" });
   */
  async export(ref: string, options: RequestOptions & { format?: "image" | "tar" } = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.http.request({
      method: "GET",
      path: `${this.base()}/${enc(ref)}/export`,
      query: { format: options.format },
      signal: options.signal,
    });
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  /** @example await volume.checkpoints.delete("before-migration"); */
  async delete(ref: string, options: RequestOptions = {}): Promise<void> {
    await this.http.json({ method: "DELETE", path: `${this.base()}/${enc(ref)}`, signal: options.signal });
  }
}

/**
 * A volume: a durable, named filesystem that outlives sandboxes.
 *
 * @example
 * import { Volume } from "@cairn/sdk";
 * const volume = await Volume.fromName("team-data", { createIfMissing: true });
 * await volume.files.write("/hello.txt", "persistent\n");
 */
export class Volume {
  /** The volume's fields as of the last fetch; `refresh()` updates them. */
  info: VolumeInfo;
  readonly files: VolumeFiles;
  readonly checkpoints: Checkpoints;

  constructor(
    private readonly volumes: Volumes,
    info: VolumeInfo,
    http: HttpClient,
  ) {
    this.info = info;
    this.files = new VolumeFiles(http, () => this.info.id);
    this.checkpoints = new Checkpoints(http, () => this.info.id);
  }

  get id(): string {
    return this.info.id;
  }
  get name(): string {
    return this.info.name;
  }
  get sizeBytes(): number {
    return this.info.sizeBytes;
  }

  /**
   * Look a volume up by name, creating it if asked. Reads `CAIRN_URL` / `CAIRN_API_KEY` unless
   * a client is given.
   *
   * @example
   * const volume = await Volume.fromName("team-data", { createIfMissing: true, sizeGb: 2 });
   */
  static async fromName(
    name: string,
    options: Omit<CreateVolumeOptions, "name"> & { createIfMissing?: boolean; client?: { volumes: Volumes } } = {},
  ): Promise<Volume> {
    const { client, ...rest } = options;
    const volumes = client?.volumes ?? new Volumes(defaultHttpClient());
    return volumes.fromName(name, rest);
  }

  /**
   * A mount of this volume for `Sandbox.create({ volumes: [...] })` or `sandbox.attach(...)`.
   *
   * @example
   * await Sandbox.create({ volumes: [volume.mount("/data", { mode: "ro" }), volume.mount("/p1", { subpath: "projects/p1" })] });
   */
  mount(mountPath: string, options: { mode?: "rw" | "ro"; subpath?: string; checkpoint?: string } = {}): MountRequest {
    return { volume: this.info.id, mountPath, ...options };
  }

  /** @example await volume.refresh(); console.log(volume.info.usedBytes); */
  async refresh(options: RequestOptions = {}): Promise<this> {
    this.info = (await this.volumes.get(this.info.id, options)).info;
    return this;
  }

  /** Grow the volume. @example await volume.resize({ sizeGb: 2 }); */
  async resize(options: ResizeOptions): Promise<ResizeResult["resize"]> {
    const r = await this.volumes.resize(this.info.id, options);
    this.info = r.volume.info;
    return r.resize;
  }

  /** Delete the volume and all its data. @example await volume.delete(); */
  async delete(options: RequestOptions = {}): Promise<void> {
    await this.volumes.delete(this.info.id, options);
  }
}

/** Volume management: `cairn.volumes`. */
export class Volumes {
  constructor(private readonly http: HttpClient) {}

  private wrap(info: VolumeInfo): Volume {
    return new Volume(this, info, this.http);
  }

  /**
   * Create a volume (1 GiB ext4 by default).
   *
   * @example
   * const v = await cairn.volumes.create({ name: "big_vol", sizeGb: 10, accessMode: "ReadWriteMany", labels: { team: "ml" } });
   */
  async create(options: CreateVolumeOptions & { ifExists?: "fail" | "return" }): Promise<Volume> {
    const { signal, ...body } = options;
    return this.wrap(await this.http.json<VolumeInfo>({ method: "POST", path: "/v1/volumes", json: body satisfies CreateVolumeRequest, signal }));
  }

  /**
   * Get a volume by name, creating it when `createIfMissing` is set.
   *
   * @example
   * const v = await cairn.volumes.fromName("team-data", { createIfMissing: true });
   */
  async fromName(name: string, options: Omit<CreateVolumeOptions, "name"> & { createIfMissing?: boolean } = {}): Promise<Volume> {
    const { createIfMissing, ...create } = options;
    if (createIfMissing) return this.create({ ...create, name, ifExists: "return" });
    return this.get(name, options);
  }

  /** Get a volume by id or name. @example const v = await cairn.volumes.get("team-data"); */
  async get(ref: string, options: RequestOptions = {}): Promise<Volume> {
    return this.wrap(await this.http.json<VolumeInfo>({ method: "GET", path: `/v1/volumes/${enc(ref)}`, signal: options.signal }));
  }

  /**
   * One page of volumes, ordered by name.
   *
   * @example
   * const { items, nextCursor } = await cairn.volumes.list({ labels: { team: "ml" }, fields: ["name", "sizeBytes"] });
   */
  async list(options: ListVolumesOptions = {}): Promise<VolumeList> {
    return this.http.json<VolumeList>({
      method: "GET",
      path: "/v1/volumes",
      query: {
        label: Object.entries(options.labels ?? {}).map(([k, v]) => `${k}=${v}`),
        fields: options.fields?.join(","),
        limit: options.limit,
        cursor: options.cursor,
        deleted: options.deleted ? "true" : undefined,
      },
      signal: options.signal,
    });
  }

  /**
   * Every volume, page by page.
   *
   * @example
   * for await (const v of cairn.volumes.iterate()) console.log(v.name);
   */
  async *iterate(options: Omit<ListVolumesOptions, "cursor"> = {}): AsyncGenerator<Partial<VolumeInfo>> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...options, ...(cursor ? { cursor } : {}) });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /**
   * Grow a volume. `mode` says whether it grew online or while unmounted. Shrinking throws
   * `VOLUME_SHRINK_NOT_ALLOWED`.
   *
   * @example
   * const { resize } = await cairn.volumes.resize("team-data", { sizeGb: 2 });
   */
  async resize(ref: string, options: ResizeOptions): Promise<{ volume: Volume; resize: ResizeResult["resize"] }> {
    const { signal, ...body } = options;
    const r = await this.http.json<ResizeResult>({ method: "PATCH", path: `/v1/volumes/${enc(ref)}`, json: body, signal });
    return { volume: this.wrap(r.volume), resize: r.resize };
  }

  /** Replace a volume's labels. @example await cairn.volumes.update("team-data", { labels: { team: "ml" } }); */
  async update(ref: string, options: RequestOptions & { labels: Record<string, string> }): Promise<Volume> {
    const { signal, ...body } = options;
    const r = await this.http.json<ResizeResult>({ method: "PATCH", path: `/v1/volumes/${enc(ref)}`, json: body, signal });
    return this.wrap(r.volume);
  }

  /**
   * Create a volume from an upload: a raw image (`format: "image"`, e.g. a checkpoint export) or
   * a tar archive of files (`format: "tar"`, extracted into a new volume of `sizeGb`).
   *
   * @example
   * const copy = await cairn.volumes.import({ name: "moved", format: "image", data: fs.createReadStream("team-data.img") });
   */
  async import(
    options: RequestOptions & { name: string; format: "image" | "tar"; data: FileData } & Pick<CreateVolumeOptions, "sizeGb" | "sizeBytes" | "filesystem" | "accessMode">,
  ): Promise<Volume> {
    const { signal, data, ...query } = options;
    const res = await this.http.request({
      method: "POST",
      path: "/v1/volumes/import",
      query,
      body: toStream(data),
      headers: { "content-type": "application/octet-stream" },
      signal,
    });
    return this.wrap((await res.json()) as VolumeInfo);
  }

  /**
   * Delete a volume and its data. With `keepCheckpoints` its checkpoints stay, restorable as new
   * volumes (`fromCheckpoint: "<volume id>:<checkpoint>"`); `list({ deleted: true })` shows them.
   *
   * @example
   * await cairn.volumes.delete("team-data", { keepCheckpoints: true });
   */
  async delete(ref: string, options: RequestOptions & { keepCheckpoints?: boolean } = {}): Promise<void> {
    await this.http.json({
      method: "DELETE",
      path: `/v1/volumes/${enc(ref)}`,
      query: { keepCheckpoints: options.keepCheckpoints ? "true" : undefined },
      signal: options.signal,
    });
  }
}
