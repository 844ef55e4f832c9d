/**
 * The OCI runtime config of a sandbox. What it grants is the security boundary: read it as such.
 * - rootfs: a per-sandbox writable directory (symlinks for merged /usr); /usr and /etc are
 *   overlays on the host's, read-only below and writable above, so installs work and vanish
 *   with the sandbox; /tmp is a tmpfs.
 * - Docker's default capabilities minus NET_RAW and MKNOD; never CAP_SYS_ADMIN (with it a
 *   sandbox could remount a read-only volume read-write). noNewPrivileges.
 * - seccomp is an allowlist (seccomp.ts): mounting, namespaces, kexec, modules, bpf, keyrings,
 *   file handles, io_uring and the like are refused.
 * - its own pid, network (loopback only), ipc, uts and mount namespaces; memory and pids limits.
 */
import { seccompProfile } from "./seccomp.js";

export const SANDBOX_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
];

/** How many ids a sandbox's user namespace maps (its uids and gids 0..65535). */
export { UID_RANGE } from "../port.js";
import { UID_RANGE } from "../port.js";

/** The CFS period of a sandbox's CPU quota: `cpus` cores get cpus × this much CPU time in each. */
export const CPU_PERIOD_US = 100_000;

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface ConfigInput {
  hostname: string;
  rootfs: string;
  overlays: { destination: string; lower: string; upper: string; work: string }[];
  mounts: OciMount[];
  env: Record<string, string>;
  cwd: string;
  memoryBytes: number;
  pids: number;
  /** CPU quota in cores (CFS); no quota when absent. */
  cpus?: number;
  cgroupsPath: string;
  /** The init inside the sandbox (tini): pid 1, reaps orphans, forwards signals to its child. */
  init: string;
  /** What init runs while the sandbox idles; default the sandbox's own `sleep infinity`. */
  idle?: string[];
  /** The host uid (and gid) of the sandbox's root: its own user namespace maps 0..UID_RANGE-1 there. */
  uidBase?: number;
}

export function buildConfig(input: ConfigInput): Record<string, unknown> {
  const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", TERM: "xterm", ...input.env };
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [input.init, "-s", "--", ...(input.idle ?? ["/usr/bin/sleep", "infinity"])],
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: "/",
      capabilities: {
        bounding: SANDBOX_CAPABILITIES,
        effective: SANDBOX_CAPABILITIES,
        permitted: SANDBOX_CAPABILITIES,
        inheritable: [],
        ambient: [],
      },
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      ...input.overlays.map((o) => ({
        destination: o.destination,
        type: "overlay",
        source: "overlay",
        // nosuid: a setuid file the sandbox makes (or finds below) gives no privilege. userxattr:
        // mounted in the sandbox's user namespace, overlayfs keeps its whiteouts and opaque marks
        // in user.overlay.* (trusted.* is the host's, out of reach there), so deletes and
        // directories made over deleted ones work.
        options: [`lowerdir=${o.lower}`, `upperdir=${o.upper}`, `workdir=${o.work}`, "nodev", "nosuid", ...(input.uidBase !== undefined ? ["userxattr"] : [])],
      })),
      { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
      ...input.mounts,
    ],
    linux: {
      namespaces: [
        { type: "pid" },
        { type: "network" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        ...(input.uidBase !== undefined ? [{ type: "user" }] : []),
      ],
      ...(input.uidBase !== undefined
        ? {
            uidMappings: [{ containerID: 0, hostID: input.uidBase, size: UID_RANGE }],
            gidMappings: [{ containerID: 0, hostID: input.uidBase, size: UID_RANGE }],
          }
        : {}),
      rootfsPropagation: "rslave",
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: { limit: input.memoryBytes },
        pids: { limit: input.pids },
        ...(input.cpus !== undefined ? { cpu: { period: CPU_PERIOD_US, quota: Math.round(input.cpus * CPU_PERIOD_US) } } : {}),
        devices: [{ allow: false, access: "rwm" }],
      },
      maskedPaths: [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      seccomp: seccompProfile(),
    },
  };
}
