/*
 * cairn-forward: cairnd's way into one sandbox's network namespace, where a deployed app listens
 * on loopback only (docs/ARCHITECTURE.md, "Deployments' router"). One per serving version.
 *
 *   cairn-forward <socket-path> <port>      with fd 3 open on the sandbox's network namespace
 *
 * It listens on a Unix socket at <socket-path> (made here, mode 0600, in cairnd's own 0700 run
 * directory), enters the namespace held by fd 3 (setns), drops to nobody and prints "ready".
 * Then, for every connection cairnd makes to that socket, it connects to 127.0.0.1:<port> inside
 * the namespace and copies bytes both ways, passing each side's end of stream on to the other,
 * until both are done. One process and one event loop for every connection: nothing forks, and
 * nothing it copies is parsed. It exits when its stdin, a pipe from cairnd, ends: cairnd is gone
 * or done with this version.
 *
 * Exit status: 0 when stdin ended, 1 when setting up failed (the reason on stderr), 2 for usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NS_FD 3
#define NOBODY 65534
/* Bytes read from one side that wait to be written to the other: reading pauses while they do. */
#define BUF_BYTES 16384
#define MAX_EVENTS 64

/* One end of a relayed connection: the Unix side from cairnd, or the TCP side to the app. */
struct side {
  int fd;
  struct side *peer;
  char buf[BUF_BYTES]; /* read from this side, not yet written to the peer */
  size_t len, off;
  int ended;           /* this side sent its end of stream */
  int passed_end;      /* ...and the peer was told (shutdown for writing) */
  int connecting;      /* the TCP side, until its connect completes */
  unsigned events;     /* what epoll watches for now */
};

static int ep, listener;
static int listening = 1;
static struct sockaddr_in app;
/* Pairs closed during one batch of events are freed after it: a later event may name them. */
static struct side *closed_pairs[2 * MAX_EVENTS];
static int n_closed;
/* Markers for epoll: the listener and stdin (a side is never at these addresses). */
static char listener_mark, stdin_mark;

static void die(const char *what) {
  fprintf(stderr, "cairn-forward: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void watch(int fd, unsigned events, void *ptr, int op) {
  struct epoll_event e = {.events = events, .data.ptr = ptr};
  if (epoll_ctl(ep, op, fd, &e) != 0) die("epoll_ctl");
}

static void set_listening(int on) {
  if (on == listening) return;
  watch(listener, EPOLLIN, &listener_mark, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL);
  listening = on;
}

static void close_pair(struct side *s) {
  struct side *p = s->peer;
  if (s->fd < 0) return;
  close(s->fd);
  close(p->fd);
  s->fd = p->fd = -1;
  closed_pairs[n_closed++] = s < p ? s : p;
  set_listening(1); /* an accept that failed for want of descriptors can succeed again */
}

/* What a side waits for: to read when it has nothing buffered (and the app's side is connected),
   to write when its peer has. */
static void rewatch(struct side *s) {
  unsigned ev = 0;
  if (s->connecting) ev = EPOLLOUT;
  else {
    if (s->len == 0 && !s->ended && !s->peer->connecting) ev |= EPOLLIN;
    if (s->peer->len > s->peer->off) ev |= EPOLLOUT;
  }
  if (ev != s->events) {
    watch(s->fd, ev, s, EPOLL_CTL_MOD);
    s->events = ev;
  }
}

/* Write what `from` buffered to its peer; pass its end of stream on once all is written.
   Returns -1 when the pair was closed. */
static int drain(struct side *from) {
  struct side *to = from->peer;
  while (from->off < from->len) {
    ssize_t n = write(to->fd, from->buf + from->off, from->len - from->off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    if (n < 0) {
      close_pair(from);
      return -1;
    }
    from->off += (size_t)n;
  }
  from->off = from->len = 0;
  if (from->ended && !from->passed_end) {
    shutdown(to->fd, SHUT_WR);
    from->passed_end = 1;
    if (to->passed_end) { /* both ways done */
      close_pair(from);
      return -1;
    }
  }
  return 0;
}

static void on_readable(struct side *s) {
  ssize_t n = read(s->fd, s->buf, BUF_BYTES);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) close_pair(s);
    return;
  }
  if (n == 0) s->ended = 1;
  s->len = (size_t)n;
  s->off = 0;
  if (drain(s) < 0) return;
  rewatch(s);
  rewatch(s->peer);
}

static void on_accept(void) {
  for (;;) {
    int c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      /* Out of descriptors or memory: stop accepting until a connection closes (waiting
         connections stay in the backlog) rather than spin on a listener that stays readable. */
      if (errno != EAGAIN) set_listening(0);
      return;
    }
    int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct side *pair = t < 0 ? NULL : calloc(2, sizeof *pair);
    if (!pair) {
      close(c);
      if (t >= 0) close(t);
      set_listening(0);
      return;
    }
    int one = 1;
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct side *u = &pair[0], *a = &pair[1];
    u->fd = c;
    a->fd = t;
    u->peer = a;
    a->peer = u;
    int r = connect(t, (struct sockaddr *)&app, sizeof app);
    if (r != 0 && errno != EINPROGRESS) { /* refused at once: cairnd reads an end of stream */
      close(c);
      close(t);
      free(pair);
      continue;
    }
    a->connecting = r != 0;
    watch(c, 0, u, EPOLL_CTL_ADD);
    watch(t, 0, a, EPOLL_CTL_ADD);
    rewatch(a);
    rewatch(u);
  }
}

static void on_event(struct side *s, unsigned events) {
  if (s->fd < 0) return;
  if (s->connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      close_pair(s);
      return;
    }
    s->connecting = 0;
    rewatch(s);
    rewatch(s->peer);
    return;
  }
  if (s->peer->connecting) { /* cairnd hung up before the app answered the connect */
    if (events & (EPOLLHUP | EPOLLERR)) close_pair(s);
    return;
  }
  if (events & EPOLLERR) {
    close_pair(s);
    return;
  }
  if (events & EPOLLOUT) {
    if (drain(s->peer) < 0) return;
    rewatch(s);
    rewatch(s->peer);
  }
  if (events & (EPOLLIN | EPOLLHUP)) {
    if (s->len == 0 && !s->ended) on_readable(s);
    else if ((events & EPOLLHUP) && s->ended) close_pair(s); /* gone both ways: nothing reaches it */
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cairn-forward <socket-path> <port>   (fd 3: a network namespace)\n");
    return 2;
  }
  char *end;
  long port = strtol(argv[2], &end, 10);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (*end || port < 1 || port > 65535 || strlen(argv[1]) >= sizeof addr.sun_path) {
    fprintf(stderr, "cairn-forward: bad port or socket path too long\n");
    return 2;
  }
  strcpy(addr.sun_path, argv[1]);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  /* The socket cairnd connects to, on the host: only root may use it. */
  listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  unlink(addr.sun_path);
  umask(0177);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
  if (listen(listener, SOMAXCONN) != 0) die("listen");

  /* Sockets made from now on are the sandbox's network's. */
  if (setns(NS_FD, CLONE_NEWNET) != 0) die("setns");
  close(NS_FD);
  if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 || setresuid(NOBODY, NOBODY, NOBODY) != 0) die("dropping to nobody");

  app = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  listening = 0;
  set_listening(1);
  watch(STDIN_FILENO, EPOLLIN, &stdin_mark, EPOLL_CTL_ADD);
  if (write(STDOUT_FILENO, "ready\n", 6) != 6) die("write");

  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      void *ptr = events[i].data.ptr;
      if (ptr == &stdin_mark) {
        char b[256];
        ssize_t r = read(STDIN_FILENO, b, sizeof b);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return 0;
      } else if (ptr == &listener_mark)
        on_accept();
      else
        on_event(ptr, events[i].events);
    }
    for (int i = 0; i < n_closed; i++) free(closed_pairs[i]);
    n_closed = 0;
  }
}
