/**
 * The sandbox's seccomp filter: an allowlist in the spirit of Docker's default profile. Every
 * system call not named here fails with ENOSYS (as on an older kernel: programs fall back), and
 * the ones a sandbox must never make fail with EPERM: mounting, namespaces, kexec, modules, bpf,
 * keyrings, file handles (open_by_handle_at reads any file of the filesystem by inode), clocks,
 * swap, reboot, the kernel log, io_uring (a large, often-exploited surface Docker also left out),
 * perf and userfaultfd. Arguments are checked where one call is both needed and dangerous: clone
 * without CLONE_NEW* flags, personality with the usual personas only, sockets of every family
 * but vsock (the host's hypervisor channel).
 */

/** Allowed without conditions. */
const ALLOWED = [
  "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget", "capset", "chdir", "chmod", "chown",
  "chroot", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "close_range", "connect", "copy_file_range",
  "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2",
  "epoll_wait", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
  "fadvise64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl",
  "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync",
  "ftruncate", "futex", "futex_waitv", "futimesat", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
  "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid",
  "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage",
  "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch",
  "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
  "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "kill", "landlock_add_rule",
  "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen", "listxattr",
  "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "membarrier", "memfd_create", "mincore",
  "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "modify_ldt", "mprotect",
  "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl",
  "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "open",
  "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
  "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
  "pselect6", "ptrace", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
  "recvfrom", "recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
  "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
  "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max",
  "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
  "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
  "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto",
  "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer",
  "setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "setsid", "setsockopt",
  "setuid", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
  "socketpair", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
  "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
  "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask",
  "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid", "write",
  "writev",
  // 32-bit x86 names of the same calls (32-bit programs still run).
  "_llseek", "_newselect", "chown32", "fadvise64_64", "fchown32", "fcntl64", "fstat64", "fstatat64", "fstatfs64",
  "ftruncate64", "getegid32", "geteuid32", "getgid32", "getgroups32", "getresgid32", "getresuid32", "getuid32",
  "lchown32", "lstat64", "mmap2", "sendfile64", "setfsgid32", "setfsuid32", "setgid32", "setgroups32", "setregid32",
  "setresgid32", "setresuid32", "setreuid32", "setuid32", "sigreturn", "socketcall", "stat64", "statfs64",
  "truncate64", "ugetrlimit", "waitpid", "ipc", "clock_gettime64", "clock_nanosleep_time64", "futex_time64",
  "ppoll_time64", "pselect6_time64", "recvmmsg_time64", "rt_sigtimedwait_time64", "semtimedop_time64",
  "timer_gettime64", "timer_settime64", "timerfd_gettime64", "timerfd_settime64", "utimensat_time64",
  "io_pgetevents_time64", "mq_timedreceive_time64", "mq_timedsend_time64", "sched_rr_get_interval_time64",
  "clock_getres_time64",
];

/** Refused with EPERM, named so that a test and a reader see them: the walls. */
export const DENIED_SYSCALLS = [
  "mount", "umount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsmount", "fsconfig", "fspick",
  "mount_setattr", "unshare", "setns", "kexec_load", "kexec_file_load", "init_module", "finit_module",
  "delete_module", "create_module", "bpf", "keyctl", "add_key", "request_key", "open_by_handle_at",
  "name_to_handle_at", "swapon", "swapoff", "reboot", "syslog", "acct", "settimeofday", "clock_settime",
  "clock_adjtime", "adjtimex", "stime", "userfaultfd", "perf_event_open", "quotactl", "quotactl_fd",
  "io_uring_setup", "io_uring_enter", "io_uring_register", "iopl", "ioperm", "lookup_dcookie", "nfsservctl",
  "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "kcmp", "process_vm_readv", "process_vm_writev",
  "fanotify_init", "sethostname", "setdomainname", "vhangup", "mbind", "set_mempolicy", "migrate_pages",
  "move_pages", "get_kernel_syms", "query_module",
];

/** Every CLONE_NEW* flag: a sandbox may not make namespaces (a user namespace is a way to new capabilities). */
const CLONE_NEW_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];
const CLONE_NEW_MASK = CLONE_NEW_FLAGS.reduce((a, b) => a | b, 0);
const AF_VSOCK = 40;
const EPERM = 1;
const ENOSYS = 38;

export function seccompProfile(): Record<string, unknown> {
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: ENOSYS,
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    syscalls: [
      { names: ALLOWED, action: "SCMP_ACT_ALLOW" },
      { names: DENIED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // clone only without namespace flags (rules are ORed, the arguments of one rule ANDed);
      // clone3 passes its flags in memory a filter cannot read: ENOSYS, and glibc falls back to clone.
      { names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: CLONE_NEW_MASK, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] },
      ...CLONE_NEW_FLAGS.map((flag) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      })),
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      // The usual personas only (Linux, and 32-bit address space or no randomisation as tools ask).
      ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map((persona) => ({
        names: ["personality"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 0, value: persona, op: "SCMP_CMP_EQ" }],
      })),
      { names: ["socket"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }] },
    ],
  };
}
