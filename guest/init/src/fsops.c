/* Online operations on mounted volumes, asked for over the control channel:
 * grow the ext4 to the disk's new size (after qemu's block_resize), and
 * freeze/thaw it so the host can copy a consistent image while the app runs.
 *
 * The slow parts (EXT4_IOC_RESIZE_FS, FIFREEZE: both write back and flush)
 * run in a forked child so PID 1 keeps serving the app's output, signals and
 * other requests. A freeze is a property of the superblock, not of the
 * process, so the child may exit once the ioctl returned; PID 1 then owns
 * the frozen state and thaws it on request, when the hold time passes, when
 * the host goes away, or at power-off — a frozen volume must never outlive
 * the conversation that asked for it. */
#include "init.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FIFREEZE
#define FIFREEZE _IOWR('X', 119, int)
#define FITHAW _IOWR('X', 120, int)
#endif
/* linux/ext4.h: the new size in filesystem blocks. */
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, unsigned long long)

char *g_volume_serials[16];

enum { V_IDLE, V_BUSY, V_FROZEN };
enum { OP_RESIZE = 1, OP_FREEZE = 2 };

struct vstate {
  int state, op;
  pid_t pid; int rfd;      /* the child doing the slow part */
  char id[32];             /* request to answer when it is done */
  long long hold_ms, deadline;
  int thaw_pending;        /* a thaw arrived while the freeze was running */
  const char *thawed_by;   /* set when the init thawed on its own */
};
static struct vstate vs[16];
static int host_gone;

struct result { int err; long long bytes, blocks, bsize; char msg[200]; };

static int vol_index(const char *serial) {
  for (int i = 0; i < g_nvolumes; i++) if (g_volume_serials[i] && strcmp(g_volume_serials[i], serial) == 0) return i;
  return -1;
}

/* The mount point, only while the volume's own disk is still mounted there
 * (the app, as root, could have unmounted it or mounted something over it). */
static int open_volume(int i, char *msg, size_t n) {
  char dev[64];
  struct stat ds, ms;
  int fd = -1;
  if (find_disk(g_volume_serials[i], dev, sizeof dev) != 0) snprintf(msg, n, "disk %s not found", g_volume_serials[i]);
  else if (stat(dev, &ds) != 0) snprintf(msg, n, "stat %s: %s", dev, strerror(errno));
  else if ((fd = open(g_volumes[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0) snprintf(msg, n, "open %s: %s", g_volumes[i], strerror(errno));
  else if (fstat(fd, &ms) != 0 || ms.st_dev != ds.st_rdev) {
    close(fd); fd = -1;
    snprintf(msg, n, "%s is no longer the mount point of disk %s", g_volumes[i], g_volume_serials[i]);
  }
  /* ENODEV: the host treats it as "not mounted" */
  if (fd < 0) errno = ENODEV;
  return fd;
}

static long long disk_bytes(const char *serial) {
  char dev[64], p[128], s[64];
  if (find_disk(serial, dev, sizeof dev) != 0) return -1;
  snprintf(p, sizeof p, "/sys/block/%s/size", dev + 5);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r = read(fd, s, sizeof s - 1);
  close(fd);
  if (r <= 0) return -1;
  s[r] = 0;
  return atoll(s) * 512;
}

static void child_resize(int i, long long want, struct result *r) {
  /* qemu's block_resize reaches the guest as a virtio config-change
   * interrupt; virtio_blk updates the capacity from a workqueue, so the new
   * size shows up in sysfs a moment later. */
  long long have = disk_bytes(g_volume_serials[i]);
  for (long long until = now_ms() + 10000; have < want && now_ms() < until; have = disk_bytes(g_volume_serials[i])) usleep(20000);
  if (have < want) {
    r->err = ETIMEDOUT;
    snprintf(r->msg, sizeof r->msg, "disk %s still has %lld bytes, not %lld: the new size did not reach the guest", g_volume_serials[i], have, want);
    return;
  }
  int fd = open_volume(i, r->msg, sizeof r->msg);
  if (fd < 0) { r->err = ENODEV; return; }
  struct statfs sf;
  if (fstatfs(fd, &sf) != 0) { r->err = errno; snprintf(r->msg, sizeof r->msg, "statfs %s: %s", g_volumes[i], strerror(errno)); close(fd); return; }
  unsigned long long blocks = (unsigned long long)have / (unsigned long long)sf.f_bsize;
  if (ioctl(fd, EXT4_IOC_RESIZE_FS, &blocks) != 0) {
    r->err = errno;
    snprintf(r->msg, sizeof r->msg, "online resize of %s to %llu blocks: %s", g_volumes[i], blocks, strerror(errno));
    close(fd);
    return;
  }
  fstatfs(fd, &sf);
  close(fd);
  r->bsize = (long long)sf.f_bsize;
  r->blocks = (long long)sf.f_blocks;
  r->bytes = r->bsize * r->blocks;
}

static void child_freeze(int i, struct result *r) {
  int fd = open_volume(i, r->msg, sizeof r->msg);
  if (fd < 0) { r->err = ENODEV; return; }
  if (ioctl(fd, FIFREEZE, 0) != 0) {
    r->err = errno;
    snprintf(r->msg, sizeof r->msg, "freeze %s: %s", g_volumes[i], errno == EBUSY ? "already frozen" : strerror(errno));
  }
  close(fd);
}

static int thaw(int i) {
  char msg[200];
  int fd = open_volume(i, msg, sizeof msg);
  /* Thaw through the path even when the check fails: a frozen volume
   * stuck forever is worse than thawing whatever is mounted there. */
  if (fd < 0) fd = open(g_volumes[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = ioctl(fd, FITHAW, 0);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static void reply_ok_head(const char *id) {
  struct buf *o = ctl_outbuf();
  rec_puts(o, "id", id);
  rec_puti(o, "ok", 1);
}

static void reply_fail(const char *id, const char *reason, const char *msg) {
  struct buf *o = ctl_outbuf();
  rec_puts(o, "id", id);
  rec_puti(o, "ok", 0);
  rec_puts(o, "reason", reason);
  rec_puts(o, "error", msg);
  rec_put(o, "end", "", 0);
}

static void start_child(int i, const char *id, int op, long long bytes) {
  struct vstate *v = &vs[i];
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) { reply_fail(id, "error", strerror(errno)); return; }
  pid_t pid = fork();
  if (pid < 0) { close(p[0]); close(p[1]); reply_fail(id, "error", strerror(errno)); return; }
  if (pid == 0) {
    struct result r; memset(&r, 0, sizeof r);
    if (op == OP_RESIZE) child_resize(i, bytes, &r); else child_freeze(i, &r);
    write(p[1], &r, sizeof r);
    _exit(r.err ? 1 : 0);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  v->state = V_BUSY; v->op = op; v->pid = pid; v->rfd = p[0];
  v->thaw_pending = 0;
  snprintf(v->id, sizeof v->id, "%s", id);
}

void fsop_request(const char *id, const char *op, const char *serial, long long bytes, long long hold_ms) {
  int i = serial && *serial ? vol_index(serial) : -1;
  if (i < 0) {
    char m[160]; snprintf(m, sizeof m, "no volume with disk serial '%s' is mounted", serial ? serial : "");
    reply_fail(id, "not_mounted", m);
    return;
  }
  struct vstate *v = &vs[i];
  if (strcmp(op, "fs.thaw") == 0) {
    if (v->state == V_BUSY && v->op == OP_FREEZE) {
      v->thaw_pending = 1;
      reply_fail(id, "busy", "the freeze is still in progress; it is undone as soon as it completes");
      return;
    }
    int was = v->state == V_FROZEN;
    if (was && thaw(i) != 0) {
      if (errno != EINVAL) {
        char m[200]; snprintf(m, sizeof m, "thaw %s: %s", g_volumes[i], strerror(errno));
        reply_fail(id, "error", m);
        return;
      }
      /* Someone else (the app, as root) thawed it meanwhile. */
      was = 0;
      v->thawed_by = "other";
    }
    if (v->state == V_FROZEN) v->state = V_IDLE;
    reply_ok_head(id);
    rec_puti(ctl_outbuf(), "was_frozen", was);
    if (!was && v->thawed_by) rec_puts(ctl_outbuf(), "thawed_by", v->thawed_by);
    rec_put(ctl_outbuf(), "end", "", 0);
    return;
  }
  if (v->state != V_IDLE) { reply_fail(id, "busy", v->state == V_FROZEN ? "the volume is frozen" : "another operation on this volume is running"); return; }
  if (strcmp(op, "fs.resize") == 0) {
    if (bytes <= 0) { reply_fail(id, "error", "fs.resize needs bytes"); return; }
    start_child(i, id, OP_RESIZE, bytes);
  } else if (strcmp(op, "fs.freeze") == 0) {
    if (hold_ms <= 0 || hold_ms > 3600000) { reply_fail(id, "error", "fs.freeze needs hold_ms from 1 to 3600000"); return; }
    v->hold_ms = hold_ms;
    v->thawed_by = NULL;
    start_child(i, id, OP_FREEZE, 0);
  } else reply_fail(id, "error", "unknown op");
}

int fsop_reaped(pid_t pid, int status) {
  int i = 0;
  while (i < 16 && !(vs[i].state == V_BUSY && vs[i].pid == pid)) i++;
  if (i == 16) return 0;
  struct vstate *v = &vs[i];
  struct result r; memset(&r, 0, sizeof r);
  if (read(v->rfd, &r, sizeof r) != (ssize_t)sizeof r) {
    r.err = EIO;
    snprintf(r.msg, sizeof r.msg, "the helper process died (status %d)", status);
  }
  close(v->rfd); v->rfd = -1; v->pid = 0;
  v->state = V_IDLE;
  if (r.err) { reply_fail(v->id, r.err == ENODEV ? "not_mounted" : "error", r.msg); ctl_flush(); return 1; }
  if (v->op == OP_RESIZE) {
    ilog("volume %s grown online to %lld bytes", g_volumes[i], r.bytes);
    reply_ok_head(v->id);
    rec_puti(ctl_outbuf(), "size", r.bytes);
    rec_puti(ctl_outbuf(), "blocks", r.blocks);
    rec_puti(ctl_outbuf(), "block_size", r.bsize);
    rec_put(ctl_outbuf(), "end", "", 0);
  } else if (v->thaw_pending || host_gone) {
    /* Nobody is waiting for this freeze any more. */
    thaw(i);
    v->thawed_by = host_gone ? "host_gone" : "abandoned";
    reply_fail(v->id, "abandoned", "the freeze completed after it was given up; the volume was thawed again");
  } else {
    v->state = V_FROZEN;
    v->deadline = now_ms() + v->hold_ms;
    reply_ok_head(v->id);
    rec_put(ctl_outbuf(), "end", "", 0);
  }
  ctl_flush();
  return 1;
}

long long fsop_timeout(long long now) {
  long long t = -1;
  for (int i = 0; i < 16; i++) {
    if (vs[i].state != V_FROZEN) continue;
    long long left = vs[i].deadline - now;
    if (left < 0) left = 0;
    if (t < 0 || left < t) t = left;
  }
  return t;
}

void fsop_tick(long long now, int gone) {
  host_gone = gone;
  for (int i = 0; i < 16; i++) {
    if (vs[i].state != V_FROZEN || (!gone && now < vs[i].deadline)) continue;
    vs[i].thawed_by = gone ? "host_gone" : "hold_expired";
    if (thaw(i) != 0 && errno != EINVAL) ilog("thawing volume %s failed: %s", g_volumes[i], strerror(errno));
    else ilog("volume %s thawed by the init: %s", g_volumes[i], gone ? "the host went away while it was frozen" : "the freeze was held too long");
    vs[i].state = V_IDLE;
  }
}

/* Power-off: sync() on a frozen filesystem would block forever. Wait for
 * helpers that may be inside FIFREEZE (they were SIGKILLed, which lands
 * when the ioctl returns), then thaw everything. */
void fsop_shutdown(void) {
  for (int i = 0; i < 16; i++) {
    if (vs[i].state == V_BUSY && vs[i].pid > 0) { kill(vs[i].pid, SIGKILL); waitpid(vs[i].pid, NULL, 0); }
    vs[i].state = V_IDLE;
  }
  for (int i = 0; i < g_nvolumes; i++) thaw(i);
}
