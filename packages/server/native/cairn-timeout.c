/*
 * cairn-timeout SECONDS COMMAND [ARG...]: run COMMAND in a process group of its own and kill the
 * whole group with SIGKILL after SECONDS (exit status 137, as `timeout -s KILL` gives); otherwise
 * exit with COMMAND's status (128+N for a signal N). SIGTERM, SIGINT and SIGHUP are passed on to
 * the group. Static and bound read-only into sandboxes that run an image, which may have no
 * `timeout` of its own (or only busybox's, which kills the shell but not its children).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t child = 0;
static volatile sig_atomic_t timed_out = 0;

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  if (child > 0) kill(-child, SIGKILL);
}

static void pass_on(int sig) {
  if (child > 0) kill(-child, sig);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: cairn-timeout SECONDS COMMAND [ARG...]\n");
    return 125;
  }
  char *end = NULL;
  double seconds = strtod(argv[1], &end);
  if (end == argv[1] || *end != '\0' || !(seconds > 0) || seconds > 1e9) {
    fprintf(stderr, "cairn-timeout: invalid time interval '%s'\n", argv[1]);
    return 125;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("cairn-timeout: fork");
    return 125;
  }
  if (pid == 0) {
    setpgid(0, 0);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "cairn-timeout: %s: %s\n", argv[2], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  setpgid(pid, pid); /* also here: no window where a signal finds the child in our group */
  child = pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = pass_on;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  struct itimerval it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_sec = (time_t)seconds;
  it.it_value.tv_usec = (suseconds_t)((seconds - (double)it.it_value.tv_sec) * 1e6);
  if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) it.it_value.tv_usec = 1;
  setitimer(ITIMER_REAL, &it, NULL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("cairn-timeout: waitpid");
      return 125;
    }
  }
  if (timed_out) {
    kill(-pid, SIGKILL); /* what the command left running in its group */
    return 137;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}
