/* Benchmark aid, never used by the daemon or the tests: an LD_PRELOAD shim that makes every
 * fsync/fdatasync take SLOW_FSYNC_US microseconds longer, to show what group commit does on a
 * disk whose syncs are slow (a spinning disk, network storage) rather than this VM's fast ones. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void delay(void) {
  const char* us = getenv("SLOW_FSYNC_US");
  long n = us ? atol(us) : 0;
  struct timespec ts = {n / 1000000, (n % 1000000) * 1000};
  if (n > 0) nanosleep(&ts, NULL);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  delay();
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  delay();
  return real(fd);
}
