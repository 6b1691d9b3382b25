/* Hangar guest init: shared declarations. See docs/guest-init.md. */
#ifndef HANGAR_INIT_H
#define HANGAR_INIT_H
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/types.h>

/* Exit codes the init itself produces (documented in docs/guest-init.md).
 * They are reported in the exit record together with a short error name, so
 * the host never has to guess whether the app or the init chose the code. */
enum {
  EXIT_CONFIG = 200,          /* run config missing or malformed */
  EXIT_DEVICE = 201,          /* a disk, port or kernel module did not appear */
  EXIT_ROOTFS_MOUNT = 202,    /* erofs / scratch / overlay mount failed */
  EXIT_HOSTILE_ROOTFS = 203,  /* /dev /proc /sys /etc /run is a symlink or not a directory */
  EXIT_NO_PASSWD = 204,       /* named USER but the image has no readable /etc/passwd */
  EXIT_UNKNOWN_USER = 205,    /* USER or group not found */
  EXIT_ENTRYPOINT_NOT_FOUND = 206,
  EXIT_ENTRYPOINT_NOT_EXEC = 207,
  EXIT_WORKDIR = 208,         /* WorkingDir cannot be created or entered */
  EXIT_SETUP = 209,           /* files, volumes, cgroups or another setup step failed */
  EXIT_NO_COMMAND = 210,      /* neither exec, entrypoint nor cmd gave a command */
};

/* ---- growable byte buffer ---- */
struct buf { char *p; size_t len, cap; };
void buf_put(struct buf *b, const void *d, size_t n);
void buf_drop(struct buf *b, size_t n); /* remove n bytes from the front */
void buf_free(struct buf *b);

/* ---- record format: "<key> <len>\n<len bytes>\n", shared with the host ---- */
struct rec { char key[33]; const char *val; size_t vlen; };
/* 1: got a record, 0: need more bytes, -1: malformed */
int rec_next(const char *p, size_t len, size_t *pos, struct rec *r);
void rec_put(struct buf *b, const char *key, const void *val, size_t vlen);
void rec_puts(struct buf *b, const char *key, const char *s);
void rec_puti(struct buf *b, const char *key, long long v);
int rec_is(const struct rec *r, const char *key);
char *rec_dup(const struct rec *r); /* NUL-terminated copy */

/* ---- logging: console always, log port when open ---- */
extern int g_log_fd;      /* virtio port carrying o/e/i/x records, -1 until open */
extern int g_debug;
/* Secret values to mask in app output before it leaves the guest (NULL-terminated). */
extern char **g_masks;
void ilog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_record(const char *key, const char *data, size_t n);
/* Report an init failure on every channel, then power off. Never returns. */
void fail(int code, const char *err, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
/* Report the final exit (app or init), clean up and power off. */
void finish(int code, int sig, int oom, const char *err) __attribute__((noreturn));

/* ---- small fs helpers ---- */
int write_all(int fd, const void *p, size_t n);
int read_file(const char *path, struct buf *out, size_t max, int nofollow);
int mkdir_p(const char *path, mode_t mode);
/* Create or truncate a regular file without following a symlink in the last
 * component (a symlink there is replaced by the file). */
int write_file_nofollow(const char *path, const void *data, size_t n, mode_t mode);
long long now_ms(void);

/* ---- user.c ---- */
struct user { uid_t uid; gid_t gid; gid_t groups[64]; int ngroups; char home[256]; char name[64]; };
/* Returns 0 or an EXIT_* code after logging why. */
int resolve_user(const char *spec, struct user *u);

/* ---- net.c ---- */
int net_up(const char *ip, const char *mask, const char *gw);

/* ---- sup.c ---- */
struct app {
  char **argv; char **envp; struct user user; const char *workdir;
  int ctl_fd;
  /* >0: stop the app when no host has been connected to the control port for this long */
  long long orphan_ms;
};
void supervise(struct app *a) __attribute__((noreturn));
extern int g_ctl_fd;
void ctl_flush_final(void);
void ctl_send_exit(int code, int sig, int oom, const char *err);

/* volumes mounted by the init, unmounted before power-off */
extern char *g_volumes[16];
extern int g_nvolumes;
/* the disk serial of each volume (parallel to g_volumes) */
extern char *g_volume_serials[16];
int find_disk(const char *serial, char *dev, size_t n); /* main.c: /dev/vdX by virtio serial */

/* control-channel replies (sup.c) */
struct buf *ctl_outbuf(void);
void ctl_flush(void);

/* ---- fsops.c: online resize and freeze/thaw of mounted volumes ---- */
void fsop_request(const char *id, const char *op, const char *serial, long long bytes, long long hold_ms);
int fsop_reaped(pid_t pid, int status);  /* 1 when pid was an fsop helper */
long long fsop_timeout(long long now);   /* ms until a frozen volume must be thawed, -1: none */
void fsop_tick(long long now, int host_gone);
void fsop_shutdown(void);                /* power-off: thaw everything */
#endif
