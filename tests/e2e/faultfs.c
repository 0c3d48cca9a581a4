/* Test aid: an LD_PRELOAD shim that makes the queue's disk "full" while the file named by
 * $FAULTFS_TRIGGER exists, so an end-to-end test can fill the disk for a moment at the point it
 * chooses (a real failure of the real daemon's real writes, not a fake store).
 *
 * The trigger file holds the bytes still free (empty: none). While it exists, a write to
 * SQLite's write-ahead log (a file ending in "-wal") and posix_fallocate take their size from
 * that budget and fail with ENOSPC when it is too small; unlinking a file gives its allocated
 * blocks to the budget, as a real file system does. Every process that preloads the shim (the
 * daemon, the command line) shares the budget through the trigger file, under flock(2). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Adds `delta` to the budget when the result stays >= 0; returns whether it did. With no
 * trigger file nothing is full: every request passes. */
static int take(long long delta) {
  const char* trigger = getenv("FAULTFS_TRIGGER");
  if (!trigger) return 1;
  FILE* f = fopen(trigger, "r+");
  if (!f) return 1;
  flock(fileno(f), LOCK_EX);
  long long budget = 0;
  if (fscanf(f, "%lld", &budget) != 1) budget = 0;
  const int ok = budget + delta >= 0;
  if (ok) {
    rewind(f);
    if (ftruncate(fileno(f), 0) == 0) fprintf(f, "%lld\n", budget + delta);
    fflush(f);
  }
  flock(fileno(f), LOCK_UN);
  fclose(f);
  return ok;
}

static int full_disk(void) {
  const char* trigger = getenv("FAULTFS_TRIGGER");
  return trigger && access(trigger, F_OK) == 0;
}

static int failing(int fd, size_t count) {
  if (!full_disk()) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 4) return 0;
  path[n] = '\0';
  if (strcmp(path + n - 4, "-wal") != 0) return 0;
  if (take(-(long long)count)) return 0;
  errno = ENOSPC;
  return 1;
}

typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef int (*unlink_fn)(const char*);
typedef int (*unlinkat_fn)(int, const char*, int);
typedef int (*fallocate_fn)(int, off_t, off_t);

ssize_t write(int fd, const void* buf, size_t count) {
  static write_fn real;
  if (!real) real = (write_fn)dlsym(RTLD_NEXT, "write");
  return failing(fd, count) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static pwrite_fn real;
  if (!real) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  return failing(fd, count) ? -1 : real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  static pwrite_fn real;
  if (!real) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
  return failing(fd, count) ? -1 : real(fd, buf, count, offset);
}

/* The blocks of a file removed while the disk is full become free. */
static long long freed_by(int dirfd, const char* path) {
  struct stat st;
  if (!full_disk() || fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
  return S_ISREG(st.st_mode) ? (long long)st.st_blocks * 512 : 0;
}

int unlink(const char* path) {
  static unlink_fn real;
  if (!real) real = (unlink_fn)dlsym(RTLD_NEXT, "unlink");
  const long long freed = freed_by(AT_FDCWD, path);
  const int r = real(path);
  if (r == 0 && freed > 0) take(freed);
  return r;
}

int unlinkat(int dirfd, const char* path, int flags) {
  static unlinkat_fn real;
  if (!real) real = (unlinkat_fn)dlsym(RTLD_NEXT, "unlinkat");
  const long long freed = (flags & AT_REMOVEDIR) ? 0 : freed_by(dirfd, path);
  const int r = real(dirfd, path, flags);
  if (r == 0 && freed > 0) take(freed);
  return r;
}

static int allocate(const char* name, int fd, off_t offset, off_t len) {
  if (full_disk() && !take(-(long long)len)) return ENOSPC;
  fallocate_fn real = (fallocate_fn)dlsym(RTLD_NEXT, name);
  return real(fd, offset, len);
}

int posix_fallocate(int fd, off_t offset, off_t len) {
  return allocate("posix_fallocate", fd, offset, len);
}

int posix_fallocate64(int fd, off_t offset, off_t len) {
  return allocate("posix_fallocate64", fd, offset, len);
}
