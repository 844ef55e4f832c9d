/*
 * cairn-pause: the idle child of a sandbox's init when the sandbox runs an image, which may have
 * no sleep of its own (or no shell, or no /usr at all). Static, bound read-only from the host.
 */
#include <unistd.h>

int main(void) {
  for (;;) pause();
}
