/*
 * cairn-mount: hot-plug volume mounts into a running sandbox, in one process.
 *
 *   cairn-mount <init-pid> (rw|ro) <host-source> <sandbox-destination> [(rw|ro) <src> <dst>]...
 *
 * For each mount, in cairnd's mount namespace: clone the source as a detached mount
 * (open_tree(OPEN_TREE_CLONE), not recursive, like `mount --bind`) and give the clone the
 * sandbox's flags (mount_setattr: nosuid, nodev, exec, symfollow, and ro when asked; a clone of a
 * read-only mount is never made writable). Then enter the sandbox's mount namespace (setns: this
 * process is single-threaded, which the kernel requires), create each destination directory and
 * attach the clone there (move_mount). Nothing is executed inside the sandbox: the sandbox cannot
 * substitute a binary of its own, and there is no staging mount to propagate.
 *
 * Paths inside the sandbox resolve in the sandbox's own view (its root, its symlinks): a sandbox
 * can only aim a mount at its own filesystem. The source was resolved by cairnd inside a
 * nosymfollow mount; AT_SYMLINK_NOFOLLOW keeps a last-component symlink from being followed here.
 *
 * Exit status 0 when every mount is in place; otherwise 1 with one line on stderr naming the mount
 * and the error. Mounts already attached stay (the caller removes the sandbox or detaches).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MOUNTS 64

static int fail(const char *what, const char *path) {
  fprintf(stderr, "cairn-mount: %s %s: %s\n", what, path, strerror(errno));
  return 1;
}

/* mkdir -p relative to the current root; every component is created as a directory if missing. */
static int mkdirs(const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf || path[0] != '/') {
    errno = EINVAL;
    return -1;
  }
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
      *p = c;
      if (c == '\0') break;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 2) % 3 != 0 || (argc - 2) / 3 > MAX_MOUNTS) {
    fprintf(stderr, "usage: cairn-mount <init-pid> (rw|ro) <host-source> <sandbox-destination> ...\n");
    return 2;
  }
  char *end;
  long pid = strtol(argv[1], &end, 10);
  if (*end != '\0' || pid <= 1) {
    fprintf(stderr, "cairn-mount: bad pid %s\n", argv[1]);
    return 2;
  }
  int count = (argc - 2) / 3;
  int fds[MAX_MOUNTS];

  for (int i = 0; i < count; i++) {
    const char *mode = argv[2 + 3 * i], *src = argv[3 + 3 * i];
    int ro;
    if (strcmp(mode, "ro") == 0) ro = 1;
    else if (strcmp(mode, "rw") == 0) ro = 0;
    else {
      fprintf(stderr, "cairn-mount: bad mode %s\n", mode);
      return 2;
    }
    fds[i] = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
    if (fds[i] < 0) return fail("clone", src);
    struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0),
      .attr_clr = MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSYMFOLLOW,
    };
    if (mount_setattr(fds[i], "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) return fail("set flags on", src);
  }

  char nspath[64];
  snprintf(nspath, sizeof nspath, "/proc/%ld/ns/mnt", pid);
  int ns = open(nspath, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return fail("open", nspath);
  if (setns(ns, CLONE_NEWNS) != 0) return fail("enter", nspath);
  close(ns);
  if (chdir("/") != 0) return fail("chdir", "/");

  for (int i = 0; i < count; i++) {
    const char *dst = argv[4 + 3 * i];
    if (mkdirs(dst) != 0) return fail("mkdir", dst);
    if (move_mount(fds[i], "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) != 0) return fail("attach at", dst);
    close(fds[i]);
  }
  return 0;
}
