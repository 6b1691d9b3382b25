/* Buffers, the record format, logging and the final power-off path. */
#include "init.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int g_log_fd = -1;
int g_debug = 0;
char *g_volumes[16];
int g_nvolumes = 0;

void buf_put(struct buf *b, const void *d, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { static const char m[] = "hangar-init: out of memory\n"; write(2, m, sizeof m - 1); reboot(RB_AUTOBOOT); _exit(1); }
    b->p = p; b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = 0;
}

void buf_drop(struct buf *b, size_t n) {
  if (n >= b->len) { b->len = 0; return; }
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}

void buf_free(struct buf *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }

int rec_next(const char *p, size_t len, size_t *pos, struct rec *r) {
  size_t i = *pos, k = 0;
  while (i < len && p[i] != ' ') {
    char c = p[i];
    if (k >= 32 || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_')) return -1;
    r->key[k++] = c; i++;
  }
  if (i >= len) return 0;
  if (k == 0) return -1;
  r->key[k] = 0;
  i++;
  size_t v = 0; int digits = 0;
  while (i < len && p[i] != '\n') {
    if (p[i] < '0' || p[i] > '9' || ++digits > 9) return -1;
    v = v * 10 + (size_t)(p[i] - '0'); i++;
  }
  if (i >= len) return 0;
  if (!digits) return -1;
  i++;
  if (len - i < v + 1) return 0;
  if (p[i + v] != '\n') return -1;
  r->val = p + i; r->vlen = v;
  *pos = i + v + 1;
  return 1;
}

void rec_put(struct buf *b, const char *key, const void *val, size_t vlen) {
  char head[64];
  int n = snprintf(head, sizeof head, "%s %zu\n", key, vlen);
  buf_put(b, head, (size_t)n);
  buf_put(b, val, vlen);
  buf_put(b, "\n", 1);
}
void rec_puts(struct buf *b, const char *key, const char *s) { rec_put(b, key, s, strlen(s)); }
void rec_puti(struct buf *b, const char *key, long long v) {
  char t[32]; int n = snprintf(t, sizeof t, "%lld", v); rec_put(b, key, t, (size_t)n);
}
int rec_is(const struct rec *r, const char *key) { return strcmp(r->key, key) == 0; }
char *rec_dup(const struct rec *r) {
  char *s = malloc(r->vlen + 1);
  if (!s) fail(EXIT_SETUP, "oom", "out of memory");
  memcpy(s, r->val, r->vlen); s[r->vlen] = 0;
  return s;
}

int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    c += w; n -= (size_t)w;
  }
  return 0;
}

void log_record(const char *key, const char *data, size_t n) {
  if (g_log_fd < 0) return;
  struct buf b = {0};
  rec_put(&b, key, data, n);
  write_all(g_log_fd, b.p, b.len);
  buf_free(&b);
}

static void vlog(int to_stream, const char *fmt, va_list ap) {
  char msg[1024];
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  char line[1100];
  int m = snprintf(line, sizeof line, "hangar-init: %s\n", msg);
  write_all(2, line, (size_t)m);
  if (to_stream) log_record("i", msg, (size_t)n);
}

void ilog(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vlog(1, fmt, ap); va_end(ap); }
void dlog(const char *fmt, ...) {
  if (!g_debug) return;
  va_list ap; va_start(ap, fmt); vlog(0, fmt, ap); va_end(ap);
}

void fail(int code, const char *err, const char *fmt, ...) {
  va_list ap; va_start(ap, fmt); vlog(1, fmt, ap); va_end(ap);
  finish(code, 0, 0, err);
}

void finish(int code, int sig, int oom, const char *err) {
  static int finishing;
  if (finishing++) { reboot(RB_AUTOBOOT); _exit(1); }
  char rec[160];
  int n = snprintf(rec, sizeof rec, "%d %d %d %s", code, sig, oom, err && *err ? err : "-");
  log_record("x", rec, (size_t)n);
  ctl_send_exit(code, sig, oom, err);
  char line[200];
  int m = snprintf(line, sizeof line, "hangar-exit code=%d signal=%d oom=%d error=%s\n", code, sig, oom, err && *err ? err : "-");
  write_all(2, line, (size_t)m);
  ctl_flush_final();
  /* Anything the app left behind goes now; the VM is about to stop. */
  kill(-1, SIGKILL);
  fsop_shutdown();
  sync();
  for (int i = g_nvolumes - 1; i >= 0; i--) {
    if (umount(g_volumes[i]) != 0) umount2(g_volumes[i], MNT_DETACH);
  }
  sync();
  /* RB_AUTOBOOT, not RB_POWER_OFF: the microvm runs without ACPI, so only a
   * reset ends it (qemu runs with -no-reboot and exits on the reset). */
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

int read_file(const char *path, struct buf *out, size_t max, int nofollow) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (nofollow ? O_NOFOLLOW : 0));
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); errno = EINVAL; return -1; }
  char tmp[8192];
  for (;;) {
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0) { if (errno == EINTR) continue; close(fd); return -1; }
    if (r == 0) break;
    if (out->len + (size_t)r > max) { close(fd); errno = EFBIG; return -1; }
    buf_put(out, tmp, (size_t)r);
  }
  close(fd);
  if (!out->p) buf_put(out, "", 0);
  return 0;
}

int mkdir_p(const char *path, mode_t mode) {
  char tmp[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
  memcpy(tmp, path, n + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
  return 0;
}

int write_file_nofollow(const char *path, const void *data, size_t n, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
  if (fd < 0 && errno == ELOOP) {
    /* A symlink (e.g. resolv.conf -> ../run/...) is replaced, never followed. */
    if (unlink(path) != 0) return -1;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
  }
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); errno = EINVAL; return -1; }
  int rc = write_all(fd, data, n);
  if (rc == 0) rc = fchmod(fd, mode);
  close(fd);
  return rc;
}

long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
