/* Test aid: an LD_PRELOAD shim that makes writes to SQLite's write-ahead log fail with ENOSPC
 * while the file named by $FAULTFS_TRIGGER exists, so an end-to-end test can make the queue's
 * disk "full" for a moment at the point it chooses (a real failure of the real daemon's real
 * writes, not a fake store). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int failing(int fd) {
  const char* trigger = getenv("FAULTFS_TRIGGER");
  if (!trigger || access(trigger, F_OK) != 0) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 4) return 0;
  path[n] = '\0';
  if (strcmp(path + n - 4, "-wal") != 0) return 0;
  errno = ENOSPC;
  return 1;
}

typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);

ssize_t write(int fd, const void* buf, size_t count) {
  static write_fn real;
  if (!real) real = (write_fn)dlsym(RTLD_NEXT, "write");
  return failing(fd) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static pwrite_fn real;
  if (!real) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  return failing(fd) ? -1 : real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  static pwrite_fn real;
  if (!real) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
  return failing(fd) ? -1 : real(fd, buf, count, offset);
}
