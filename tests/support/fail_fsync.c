/* A test-only LD_PRELOAD library: makes the server's fdatasync() and fsync() of its log
 * segments (*.kgl) fail as a failing disk does, and drops what was written since that
 * file's last good sync, as a kernel does with the dirty pages it could not write back
 * (PostgreSQL's "fsyncgate"). Nothing of it is in keygate's own build: the integration
 * tests preload it into the real binary.
 *
 * KEYGATE_TEST_FAIL_FSYNC=FILE arms it: while FILE holds a number N > 0, the next N syncs
 * of a log segment fail with EIO and the number in FILE counts down; -1 fails every one;
 * 0 or no FILE, none. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { kMaxFds = 4096 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  ino_t ino;
  off_t size;
} last_good[kMaxFds];

static int is_log_segment(int fd) {
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 4) return 0;
  path[n] = 0;
  return strcmp(path + n - 4, ".kgl") == 0;
}

/* Whether this sync is to fail: reads and counts down the number in the control file. */
static int take_failure(void) {
  const char* file = getenv("KEYGATE_TEST_FAIL_FSYNC");
  if (!file || !*file) return 0;
  int fd = open(file, O_RDWR | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32] = {0};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  long left = n > 0 ? strtol(buf, NULL, 10) : 0;
  int fail = left != 0;
  if (left > 0) {
    int len = snprintf(buf, sizeof buf, "%ld\n", left - 1);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) fail = 0;
  }
  close(fd);
  return fail;
}

static int intercept(int fd, int (*real)(int)) {
  pthread_mutex_lock(&lock);
  struct stat st;
  const int known = fd >= 0 && fd < kMaxFds && fstat(fd, &st) == 0;
  if (known && is_log_segment(fd) && take_failure()) {
    /* The pages written since the last good sync are lost. */
    if (last_good[fd].ino == st.st_ino && st.st_size > last_good[fd].size &&
        ftruncate(fd, last_good[fd].size) != 0) {
      /* Cannot drop them: still report the failure. */
    }
    pthread_mutex_unlock(&lock);
    errno = EIO;
    return -1;
  }
  pthread_mutex_unlock(&lock);
  int rc = real(fd);
  if (rc == 0 && known) {
    pthread_mutex_lock(&lock);
    last_good[fd].ino = st.st_ino;
    last_good[fd].size = st.st_size;
    pthread_mutex_unlock(&lock);
  }
  return rc;
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return intercept(fd, real);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return intercept(fd, real);
}
