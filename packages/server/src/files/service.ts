/**
 * The file API's shared parts: leases around each operation, the watch hub, resumable uploads
 * and the URL signer. Routes call `withVolume` so a lease is released on every path.
 */
import { CairnError } from "@cairn/protocol";
import type { Logger } from "../logger.js";
import type { MetadataStore, VolumeRecord } from "../storage/metadata-store.js";
import type { Lease } from "../volumes/port.js";
import type { VolumeService } from "../volumes/service.js";
import { UrlSigner } from "./signing.js";
import { TusUploads } from "./tus.js";
import { WatchHub } from "./watch.js";
import { declareSymlinksRefused } from "./resolve.js";
import { isNoSpace, quotaError } from "./core.js";

export interface FileServiceDeps {
  volumes: VolumeService;
  store: MetadataStore;
  signingKey: Buffer;
  log: Logger;
  /** Events kept per watched volume for reconnecting clients. */
  watchRetain?: number;
  watchLingerMs?: number;
}

export interface VolumeContext {
  volume: VolumeRecord;
  /** Host path of the mounted volume's root. */
  root: string;
  /** Feeds watch events about a write the API is about to make visible. */
  onWrite: (path: string, created: boolean) => void;
}

export class FileService {
  readonly watch: WatchHub;
  readonly uploads: TusUploads;
  readonly signer: UrlSigner;

  constructor(readonly deps: FileServiceDeps) {
    this.watch = new WatchHub({
      log: deps.log,
      ...(deps.watchRetain !== undefined ? { retain: deps.watchRetain } : {}),
      ...(deps.watchLingerMs !== undefined ? { lingerMs: deps.watchLingerMs } : {}),
    });
    this.uploads = new TusUploads({ onCommit: (volumeId, path, created) => this.watch.hintWrite(volumeId, path, created) });
    this.signer = new UrlSigner(deps.signingKey);
  }

  get volumes(): VolumeService {
    return this.deps.volumes;
  }

  /** Lease the volume, run `fn`, release — also when `fn` throws. */
  async withVolume<T>(projectId: string, ref: string, fn: (ctx: VolumeContext) => Promise<T>): Promise<T> {
    const { volume, lease } = await this.deps.volumes.lease(projectId, ref);
    try {
      return await fn(this.context(volume, lease));
    } catch (err) {
      // Whatever ran out of room (a directory, a move's new parents): the volume is full, not the server broken.
      if (!(err instanceof CairnError) && isNoSpace(err)) throw quotaError(volume.name, err);
      throw this.deps.volumes.damageOf(volume, err);
    } finally {
      lease.release();
    }
  }

  /** For streamed responses: the caller releases the lease when the response is done. */
  async acquire(projectId: string, ref: string): Promise<{ ctx: VolumeContext; lease: Lease }> {
    const { volume, lease } = await this.deps.volumes.lease(projectId, ref);
    return { ctx: this.context(volume, lease), lease };
  }

  private context(volume: VolumeRecord, lease: Lease): VolumeContext {
    if (lease.symlinksRefused) declareSymlinksRefused(lease.path);
    return { volume, root: lease.path, onWrite: (path, created) => this.watch.hintWrite(volume.id, path, created) };
  }

  /** The project of a volume named in a signed URL (the signature already named the volume id). */
  async projectOf(volumeId: string): Promise<string> {
    const v = await this.deps.store.volumes.byId(volumeId);
    if (!v) throw new CairnError("VOLUME_NOT_FOUND", "The volume of this signed URL no longer exists");
    return v.projectId;
  }

  /** Shutdown: end watches (releasing their leases) and stop resumable uploads (they resume later). */
  close(): void {
    this.watch.close();
    this.uploads.abortAll();
  }
}
