/*
 * cairn-mount: hot-plug volume mounts into a running sandbox, and take them out again, from the
 * host. cairnd never executes a program that lives in a sandbox and never lets the kernel follow
 * a symlink the sandbox planted (docs/ARCHITECTURE.md, "Acting on a sandbox").
 *
 *   cairn-mount attach <init-pid> (rw|ro) <host-source> <sandbox-destination> [(rw|ro) <src> <dst>]...
 *   cairn-mount detach <init-pid> <major:minor> <sandbox-destination>
 *   cairn-mount seal <init-pid>
 *   cairn-mount idmap <host-source> <host-destination> <host-uid-base> <count> [<source> <destination>]...
 *   cairn-mount opaque <host-directory>
 *
 * opaque: mark a directory of an overlay's upper layer opaque (both the trusted. and the user.
 * overlay attribute: a mount by the host's root reads the first, one in a user namespace the
 * second), so the lower layer's directory of that name is hidden and the upper one, empty, is
 * the sandbox's to fill. The directory is cairnd's, made before the sandbox ever ran.
 *
 * With a sandbox in a user namespace, attach makes each clone an idmapped mount in the sandbox's
 * own user namespace: files keep their owners on disk as the sandbox sees them (its root is 0 in
 * the volume, for the file API and every other sandbox alike), and directories it creates on the
 * way belong to the sandbox's root.
 *
 * idmap: a read-only, nosuid, nodev idmapped view of a host directory (the sandbox's /usr and /etc
 * layers, an image's layers), for a sandbox whose ids 0..count-1 are host ids base..base+count-1.
 * Further source/destination pairs get the same mapping, in the same process (an image has many layers).
 *
 * seal: make the sandbox's root mount nosuid,nodev (the runtime remounts the root with its own
 * flags; every other mount a sandbox can write is made nosuid where it is made).
 *
 * attach: for each mount, in cairnd's mount namespace, clone the source as a detached mount
 * (open_tree(OPEN_TREE_CLONE), not recursive, like `mount --bind`) and give the clone the
 * sandbox's flags (mount_setattr: nosuid, nodev, exec, symfollow, and ro when asked; a clone of a
 * read-only mount is never made writable). Then enter the sandbox's mount namespace (setns: this
 * process is single-threaded, which the kernel requires), walk to each destination one component
 * at a time, creating missing directories, and attach the clone to the directory handle it ends
 * on (move_mount to an fd, never to a path resolved again).
 *
 * detach: enter the sandbox's namespace, walk to the destination's parent the same way, check
 * that the destination is the root of a mount of the volume's device, and unmount that name
 * relative to the pinned parent without following it. A sandbox cannot rename or replace a
 * mount point of its own namespace (EBUSY), so between the check and the unmount the name keeps
 * naming the checked mount.
 *
 * The walk (openat2 with RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH, one component at a time) refuses
 * every symlink, "." and "..": a sandbox that replaced a directory on the way with a symlink gets
 * a refusal, not a mount (or an unmount) somewhere else.
 *
 * Exit status (detach): 0 unmounted; 3 the volume is not mounted in the sandbox at all; 4 busy;
 * 5 the destination is no longer this volume's mount (moved or replaced) but the volume is still
 * mounted somewhere in the sandbox; 1 any other error; 2 usage. Attach: 0, or 1 with one line on
 * stderr naming the mount and the error (mounts already attached stay: the caller detaches them or
 * removes the sandbox); 6 when a destination crosses a symlink or a non-directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_MOUNTS 64
#define EXIT_NOT_MOUNTED 3
#define EXIT_BUSY 4
#define EXIT_MOVED 5
#define EXIT_UNSAFE_PATH 6

/* Who owns the directories attach creates in a sandbox: its root, as the host knows it. */
static uid_t owner_uid;
static gid_t owner_gid;

static int fail(const char *what, const char *path) {
  fprintf(stderr, "cairn-mount: %s %s: %s\n", what, path, strerror(errno));
  return 1;
}

/* One component below dirfd, never through a symlink, never out of dirfd. */
static int open_component(int dirfd, const char *name) {
  struct open_how how = {
    .flags = O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH,
  };
  return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
}

/*
 * Walk an absolute path from the namespace's root, one component at a time, and return an O_PATH
 * fd of the directory it names (`create`: make missing directories on the way). With `last` set,
 * stop at the parent and copy the final component there. -1 with errno on failure; ELOOP or
 * ENOTDIR mean the sandbox put a symlink or a file on the way.
 */
static int walk(const char *path, int create, char *last, size_t last_size) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf || path[0] != '/') {
    errno = EINVAL;
    return -1;
  }
  memcpy(buf, path, n + 1);
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  char *save = NULL;
  char *comp = strtok_r(buf, "/", &save);
  if (last && comp == NULL) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  while (comp != NULL) {
    char *next = strtok_r(NULL, "/", &save);
    if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
      close(fd);
      errno = EINVAL;
      return -1;
    }
    if (last && next == NULL) {
      if (strlen(comp) >= last_size) {
        close(fd);
        errno = ENAMETOOLONG;
        return -1;
      }
      strcpy(last, comp);
      return fd;
    }
    int child = open_component(fd, comp);
    if (child < 0 && errno == ENOENT && create) {
      if (mkdirat(fd, comp, 0755) == 0) {
        /* Made for the sandbox: its root owns it (not a host id it cannot use). */
        if (fchownat(fd, comp, owner_uid, owner_gid, AT_SYMLINK_NOFOLLOW) != 0) {
          close(fd);
          return -1;
        }
      } else if (errno != EEXIST) {
        close(fd);
        return -1;
      }
      child = open_component(fd, comp);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    if (child < 0) return -1;
    fd = child;
    comp = next;
  }
  return fd;
}

static int enter(long pid) {
  char nspath[64];
  snprintf(nspath, sizeof nspath, "/proc/%ld/ns/mnt", pid);
  int ns = open(nspath, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return fail("open", nspath);
  if (setns(ns, CLONE_NEWNS) != 0) return fail("enter", nspath);
  close(ns);
  if (chdir("/") != 0) return fail("chdir", "/");
  return 0;
}

static long parse_pid(const char *s) {
  char *end;
  long pid = strtol(s, &end, 10);
  return (*end != '\0' || pid <= 1) ? -1 : pid;
}

/* The host uid and gid of a process's root, from its maps; 0 when it is not in a user namespace. */
static void root_ids(long pid, uid_t *uid, gid_t *gid) {
  char path[64];
  unsigned inside, outside, count;
  *uid = 0;
  *gid = 0;
  snprintf(path, sizeof path, "/proc/%ld/uid_map", pid);
  FILE *f = fopen(path, "r");
  if (f) {
    while (fscanf(f, "%u %u %u", &inside, &outside, &count) == 3) if (inside == 0) *uid = outside;
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%ld/gid_map", pid);
  f = fopen(path, "r");
  if (f) {
    while (fscanf(f, "%u %u %u", &inside, &outside, &count) == 3) if (inside == 0) *gid = outside;
    fclose(f);
  }
}

static int attach(long pid, int argc, char **argv) {
  if (argc < 3 || argc % 3 != 0 || argc / 3 > MAX_MOUNTS) return 2;
  int count = argc / 3;
  int fds[MAX_MOUNTS];
  root_ids(pid, &owner_uid, &owner_gid);
  /* The sandbox's user namespace, when it has one of its own: volumes are idmapped into it. */
  int userns = -1;
  if (owner_uid != 0) {
    char nspath[64];
    snprintf(nspath, sizeof nspath, "/proc/%ld/ns/user", pid);
    userns = open(nspath, O_RDONLY | O_CLOEXEC);
    if (userns < 0) return fail("open", nspath);
  }
  for (int i = 0; i < count; i++) {
    const char *mode = argv[3 * i], *src = argv[3 * i + 1];
    int ro;
    if (strcmp(mode, "ro") == 0) ro = 1;
    else if (strcmp(mode, "rw") == 0) ro = 0;
    else return 2;
    fds[i] = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
    if (fds[i] < 0) return fail("clone", src);
    struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0) | (userns >= 0 ? MOUNT_ATTR_IDMAP : 0),
      .attr_clr = MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSYMFOLLOW,
      .userns_fd = userns >= 0 ? (unsigned)userns : 0,
    };
    if (mount_setattr(fds[i], "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) return fail("set flags on", src);
  }
  if (enter(pid) != 0) return 1;
  for (int i = 0; i < count; i++) {
    const char *dst = argv[3 * i + 2];
    int target = walk(dst, 1, NULL, 0);
    if (target < 0) {
      int unsafe = errno == ELOOP || errno == ENOTDIR || errno == EXDEV;
      fail(unsafe ? "refusing a symlink or a file on the way to" : "mkdir", dst);
      return unsafe ? EXIT_UNSAFE_PATH : 1;
    }
    if (move_mount(fds[i], "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) return fail("attach at", dst);
    close(target);
    close(fds[i]);
  }
  return 0;
}

/* Is any mount of device major:minor in this (the sandbox's) namespace? Reads mountinfo by fd. */
static int device_mounted(int mountinfo, const char *devno, char *where, size_t where_size) {
  FILE *f = fdopen(mountinfo, "r");
  if (!f) return 0;
  char line[8192];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    /* id parent major:minor root mountpoint ... */
    char dev[64], point[4096];
    if (sscanf(line, "%*s %*s %63s %*s %4095s", dev, point) == 2 && strcmp(dev, devno) == 0) {
      found = 1;
      snprintf(where, where_size, "%s", point);
    }
  }
  fclose(f);
  return found;
}

static int detach(long pid, const char *devno, const char *dst) {
  unsigned maj, min;
  char extra;
  if (sscanf(devno, "%u:%u%c", &maj, &min, &extra) != 2) return 2;
  /* The sandbox's mount table, opened from the host's /proc before entering its namespace. */
  char infopath[64];
  snprintf(infopath, sizeof infopath, "/proc/%ld/mountinfo", pid);
  int info = open(infopath, O_RDONLY | O_CLOEXEC);
  if (info < 0) return fail("open", infopath);
  if (enter(pid) != 0) return 1;

  char base[256];
  int parent = walk(dst, 0, base, sizeof base);
  int matches = 0;
  if (parent >= 0) {
    struct open_how how = { .flags = O_PATH | O_CLOEXEC | O_NOFOLLOW, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH };
    int fd = (int)syscall(SYS_openat2, parent, base, &how, sizeof how);
    struct statx st;
    if (fd >= 0 && statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &st) == 0) {
      matches = (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) &&
                st.stx_dev_major == maj && st.stx_dev_minor == min;
    }
    if (fd >= 0) close(fd);
  }
  if (!matches) {
    char where[4096];
    if (device_mounted(info, devno, where, sizeof where)) {
      fprintf(stderr, "cairn-mount: %s is not this volume's mount any more (the sandbox moved or replaced it); the volume is still mounted at %s\n", dst, where);
      return EXIT_MOVED;
    }
    return EXIT_NOT_MOUNTED;
  }
  close(info);
  if (fchdir(parent) != 0) return fail("chdir to the parent of", dst);
  if (umount2(base, UMOUNT_NOFOLLOW) != 0) {
    if (errno == EBUSY) {
      fprintf(stderr, "cairn-mount: %s is busy\n", dst);
      return EXIT_BUSY;
    }
    return fail("unmount", dst);
  }
  return 0;
}

static int idmap(const char *src, const char *dst, const char *base_s, const char *count_s, int npairs, char **pairs) {
  char *end;
  unsigned long base = strtoul(base_s, &end, 10);
  if (*end != '\0' || base == 0) return 2;
  unsigned long count = strtoul(count_s, &end, 10);
  if (*end != '\0' || count == 0) return 2;
  /* A user namespace with the sandbox's map, held by a child for as long as it takes to open it. */
  int ready[2], done[2];
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(done, O_CLOEXEC) != 0) return fail("pipe", "");
  pid_t child = fork();
  if (child < 0) return fail("fork", "");
  if (child == 0) {
    char x = unshare(CLONE_NEWUSER) == 0;
    if (write(ready[1], &x, 1) != 1) _exit(1);
    if (read(done[0], &x, 1) < 0) _exit(1);
    _exit(0);
  }
  char ok = 0;
  if (read(ready[0], &ok, 1) != 1 || !ok) return fail("unshare a user namespace for", src);
  char path[64], map[64];
  int n = snprintf(map, sizeof map, "0 %lu %lu\n", base, count);
  int userns = -1;
  const char *files[] = { "uid_map", "gid_map" };
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "/proc/%d/%s", (int)child, files[i]);
    int f = open(path, O_WRONLY | O_CLOEXEC);
    if (f < 0 || write(f, map, n) != n) return fail("write", path);
    close(f);
  }
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
  userns = open(path, O_RDONLY | O_CLOEXEC);
  if (userns < 0) return fail("open", path);
  if (write(done[1], &ok, 1) != 1) return fail("signal", "child");
  waitpid(child, NULL, 0);
  for (int i = -1; i < npairs; i++) {
    const char *from = i < 0 ? src : pairs[2 * i], *to = i < 0 ? dst : pairs[2 * i + 1];
    int tree = open_tree(AT_FDCWD, from, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
    if (tree < 0) return fail("clone", from);
    struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
      .userns_fd = (unsigned)userns,
    };
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) return fail("idmap", from);
    if (move_mount(tree, "", AT_FDCWD, to, MOVE_MOUNT_F_EMPTY_PATH) != 0) return fail("attach at", to);
    close(tree);
  }
  return 0;
}

static int seal(long pid) {
  if (enter(pid) != 0) return 1;
  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return fail("open", "/");
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
  if (mount_setattr(root, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) return fail("set nosuid,nodev on", "/");
  return 0;
}

static int opaque(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail("open", dir);
  int trusted = fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0);
  int user = fsetxattr(fd, "user.overlay.opaque", "y", 1, 0);
  close(fd);
  if (trusted != 0 && user != 0) return fail("mark opaque", dir);
  return 0;
}

int main(int argc, char **argv) {
  long pid = argc >= 3 ? parse_pid(argv[2]) : -1;
  int rc = 2;
  if (pid > 0 && strcmp(argv[1], "attach") == 0) rc = attach(pid, argc - 3, argv + 3);
  else if (pid > 0 && argc == 5 && strcmp(argv[1], "detach") == 0) rc = detach(pid, argv[3], argv[4]);
  else if (pid > 0 && argc == 3 && strcmp(argv[1], "seal") == 0) rc = seal(pid);
  else if (argc >= 6 && argc % 2 == 0 && strcmp(argv[1], "idmap") == 0) rc = idmap(argv[2], argv[3], argv[4], argv[5], (argc - 6) / 2, argv + 6);
  else if (argc == 3 && strcmp(argv[1], "opaque") == 0) rc = opaque(argv[2]);
  if (rc == 2) {
    fprintf(stderr,
            "usage: cairn-mount attach <init-pid> (rw|ro) <host-source> <sandbox-destination> ...\n"
            "       cairn-mount detach <init-pid> <major:minor> <sandbox-destination>\n"
            "       cairn-mount seal <init-pid>\n"
            "       cairn-mount idmap <host-source> <host-destination> <host-uid-base> <count> [<source> <destination>]...\n"
            "       cairn-mount opaque <host-directory>\n");
  }
  return rc;
}
