/**
 * The OCI runtime config of a sandbox. What it grants is the security boundary: read it as such.
 * - rootfs: a per-sandbox writable directory (symlinks for merged /usr); /usr and /etc are
 *   overlays on the host's, read-only below and writable above, so installs work and vanish
 *   with the sandbox; /tmp is a tmpfs.
 * - Docker's default capabilities minus NET_RAW and MKNOD; never CAP_SYS_ADMIN (with it a
 *   sandbox could remount a read-only volume read-write). noNewPrivileges.
 * - seccomp denies mounting, namespace creation, kexec, modules, bpf and keyrings.
 * - its own pid, network (loopback only), ipc, uts and mount namespaces; memory and pids limits.
 */
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

const DENIED_SYSCALLS = [
  "mount", "umount2", "pivot_root",
  "open_tree", "move_mount", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
  "unshare", "setns",
  "kexec_load", "kexec_file_load",
  "init_module", "finit_module", "delete_module",
  "bpf", "keyctl", "add_key", "request_key",
  "swapon", "swapoff", "reboot", "syslog", "acct", "settimeofday", "clock_settime",
  "userfaultfd", "perf_event_open", "quotactl",
];

/** The CLONE_NEW* flags: a sandbox may not make namespaces (a user namespace is a way to new capabilities). */
const CLONE_NEW_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

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
  cgroupsPath: string;
}

export function buildConfig(input: ConfigInput): Record<string, unknown> {
  const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", TERM: "xterm", ...input.env };
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ["/usr/bin/sleep", "infinity"],
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
        options: [`lowerdir=${o.lower}`, `upperdir=${o.upper}`, `workdir=${o.work}`, "nodev"],
      })),
      { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
      ...input.mounts,
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      rootfsPropagation: "rslave",
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: { limit: input.memoryBytes },
        pids: { limit: input.pids },
        devices: [{ allow: false, access: "rwm" }],
      },
      maskedPaths: [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      seccomp: {
        defaultAction: "SCMP_ACT_ALLOW",
        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls: [
          { names: DENIED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: 1 },
          // glibc falls back from clone3 to clone on ENOSYS; clone itself is filtered by flags.
          { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
          // One rule per flag: rules are ORed, the arguments of one rule ANDed.
          ...CLONE_NEW_FLAGS.map((flag) => ({
            names: ["clone"],
            action: "SCMP_ACT_ERRNO",
            errnoRet: 1,
            args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
          })),
        ],
      },
    },
  };
}
