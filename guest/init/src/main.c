/* Hangar guest init: PID 1 of every machine. The boot sequence is here; the
 * supervision loop and control channel are in sup.c. docs/guest-init.md has
 * the full story, including what the init refuses to trust in an image. */
#include "init.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define RUN_CONFIG "/hangar/run.cfg"
#define MODULE_ORDER "/lib/modules/hangar.order"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct strv { char **v; int n; };
static void strv_push(struct strv *s, char *x) {
  char **v = realloc(s->v, sizeof(char *) * (size_t)(s->n + 2));
  if (!v) fail(EXIT_SETUP, "oom", "out of memory");
  s->v = v; s->v[s->n++] = x; s->v[s->n] = NULL;
}

struct file_spec { char *path; mode_t mode; char *data; size_t len; };

static struct strv masks;
char **g_masks;

static struct {
  int probe;
  char *hostname, *user, *workdir, *disk_root, *disk_scratch, *root_fstype;
  char *ip, *mask, *gw;
  long long time_ms;
  long long orphan_ms;
  struct strv argv, env, dns, hosts, mount_dev, mount_path;
  struct file_spec files[64]; int nfiles;
  char *pending_path; mode_t pending_mode;
} cfg;

static void read_config(void) {
  struct buf b = {0};
  if (read_file(RUN_CONFIG, &b, 64u << 20, 1) != 0)
    fail(EXIT_CONFIG, "config", "no run config at %s (%s); the host must append a config cpio to the initramfs", RUN_CONFIG, strerror(errno));
  size_t pos = 0; struct rec r; int rc;
  while ((rc = rec_next(b.p, b.len, &pos, &r)) == 1) {
    if (rec_is(&r, "probe")) cfg.probe = 1;
    else if (rec_is(&r, "debug")) g_debug = 1;
    else if (rec_is(&r, "hostname")) cfg.hostname = rec_dup(&r);
    else if (rec_is(&r, "user")) cfg.user = rec_dup(&r);
    else if (rec_is(&r, "workdir")) cfg.workdir = rec_dup(&r);
    else if (rec_is(&r, "arg")) strv_push(&cfg.argv, rec_dup(&r));
    else if (rec_is(&r, "env")) strv_push(&cfg.env, rec_dup(&r));
    else if (rec_is(&r, "mask")) strv_push(&masks, rec_dup(&r));
    else if (rec_is(&r, "disk.root")) cfg.disk_root = rec_dup(&r);
    else if (rec_is(&r, "disk.scratch")) cfg.disk_scratch = rec_dup(&r);
    else if (rec_is(&r, "root.fstype")) cfg.root_fstype = rec_dup(&r);
    else if (rec_is(&r, "net.ip")) cfg.ip = rec_dup(&r);
    else if (rec_is(&r, "net.mask")) cfg.mask = rec_dup(&r);
    else if (rec_is(&r, "net.gw")) cfg.gw = rec_dup(&r);
    else if (rec_is(&r, "net.dns")) strv_push(&cfg.dns, rec_dup(&r));
    else if (rec_is(&r, "hosts")) strv_push(&cfg.hosts, rec_dup(&r));
    else if (rec_is(&r, "time")) { char *t = rec_dup(&r); cfg.time_ms = atoll(t); free(t); }
    else if (rec_is(&r, "orphan_ms")) { char *t = rec_dup(&r); cfg.orphan_ms = atoll(t); free(t); }
    else if (rec_is(&r, "mount.dev")) strv_push(&cfg.mount_dev, rec_dup(&r));
    else if (rec_is(&r, "mount.path")) strv_push(&cfg.mount_path, rec_dup(&r));
    else if (rec_is(&r, "file.path")) cfg.pending_path = rec_dup(&r);
    else if (rec_is(&r, "file.mode")) { char *t = rec_dup(&r); cfg.pending_mode = (mode_t)strtoul(t, NULL, 8); free(t); }
    else if (rec_is(&r, "file.data")) {
      if (!cfg.pending_path || cfg.nfiles >= 64) fail(EXIT_CONFIG, "config", "run config: file.data without file.path, or more than 64 files");
      struct file_spec *f = &cfg.files[cfg.nfiles++];
      f->path = cfg.pending_path; f->mode = cfg.pending_mode ? cfg.pending_mode : 0644;
      f->data = rec_dup(&r); f->len = r.vlen;
      cfg.pending_path = NULL; cfg.pending_mode = 0;
    }
    /* unknown keys are ignored so a newer host can talk to an older init */
  }
  if (rc < 0) fail(EXIT_CONFIG, "config", "run config is malformed at byte %zu", pos);
  /* The config holds secrets: it must not outlive this function. */
  memset(b.p, 0, b.len);
  buf_free(&b);
  unlink(RUN_CONFIG);
  if (cfg.mount_dev.n != cfg.mount_path.n) fail(EXIT_CONFIG, "config", "run config: mount.dev and mount.path counts differ");
}

/* modprobe is not in the guest: the host computed the dependency order when
 * it built the initramfs. Options "mod.key=val" on the kernel command line
 * are passed on the way modprobe would. */
static void load_modules(void) {
  struct buf order = {0}, cmdline = {0};
  if (read_file(MODULE_ORDER, &order, 1u << 20, 1) != 0) { dlog("no %s; assuming a kernel with built-in drivers", MODULE_ORDER); return; }
  int cfd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (cfd >= 0) { char t[4096]; ssize_t r = read(cfd, t, sizeof t - 1); if (r > 0) buf_put(&cmdline, t, (size_t)r); close(cfd); }
  for (char *save = NULL, *line = strtok_r(order.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (!*line || strchr(line, '/') ) continue;
    char name[128]; snprintf(name, sizeof name, "%s", line);
    char *dot = strstr(name, ".ko"); if (dot) *dot = 0;
    for (char *p = name; *p; p++) if (*p == '-') *p = '_';
    char params[1024] = ""; size_t pl = 0;
    if (cmdline.p) {
      char *cl = strdup(cmdline.p);
      for (char *s2 = NULL, *tok = strtok_r(cl, " \n", &s2); tok; tok = strtok_r(NULL, " \n", &s2)) {
        size_t nl = strlen(name);
        char norm[128]; snprintf(norm, sizeof norm, "%.*s", (int)nl, tok);
        for (char *p = norm; *p; p++) if (*p == '-') *p = '_';
        if (strlen(tok) > nl + 1 && strcmp(norm, name) == 0 && tok[nl] == '.') {
          int w = snprintf(params + pl, sizeof params - pl, "%s%s", pl ? " " : "", tok + nl + 1);
          if (w > 0 && (size_t)w < sizeof params - pl) pl += (size_t)w;
        }
      }
      free(cl);
    }
    char path[256]; snprintf(path, sizeof path, "/lib/modules/%s", line);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { ilog("module %s missing from the initramfs: %s", line, strerror(errno)); continue; }
    if (syscall(SYS_finit_module, fd, params, 0) != 0 && errno != EEXIST) {
      /* e.g. crc32c-intel on a CPU without SSE4.2: ENODEV, harmless */
      if (errno == ENODEV) dlog("module %s: no device", name);
      else ilog("loading module %s failed: %s", name, strerror(errno));
    } else dlog("loaded %s %s", name, params);
    close(fd);
    unlink(path); /* frees initramfs memory */
  }
  buf_free(&order); buf_free(&cmdline);
}

static int read_small(const char *path, char *out, size_t n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r = read(fd, out, n - 1);
  close(fd);
  if (r < 0) return -1;
  while (r > 0 && (out[r - 1] == '\n' || out[r - 1] == ' ')) r--;
  out[r] = 0;
  return 0;
}

/* virtio-blk disks are found by the serial the host gave them, virtio ports
 * by name: device probe order is not something to rely on. */
int find_disk(const char *serial, char *dev, size_t n) {
  DIR *d = opendir("/sys/block");
  if (!d) return -1;
  struct dirent *e; int found = -1;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "vd", 2) != 0) continue;
    char p[300], s[128];
    snprintf(p, sizeof p, "/sys/block/%s/serial", e->d_name);
    if (read_small(p, s, sizeof s) == 0 && strcmp(s, serial) == 0) { snprintf(dev, n, "/dev/%s", e->d_name); found = 0; break; }
  }
  closedir(d);
  return found;
}

static int find_port(const char *name, char *dev, size_t n) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return -1;
  struct dirent *e; int found = -1;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[300], s[128];
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    if (read_small(p, s, sizeof s) == 0 && strcmp(s, name) == 0) { snprintf(dev, n, "/dev/%s", e->d_name); found = 0; break; }
  }
  closedir(d);
  return found;
}

static void wait_devices(char *root, char *scratch, char *logp, char *ctlp, char vols[][64]) {
  long long deadline = now_ms() + 15000;
  for (;;) {
    int ok = find_port("hangar.log", logp, 64) == 0 && access(logp, F_OK) == 0;
    ok &= find_port("hangar.ctl", ctlp, 64) == 0 && access(ctlp, F_OK) == 0;
    if (cfg.disk_root) ok &= find_disk(cfg.disk_root, root, 64) == 0 && access(root, F_OK) == 0;
    if (cfg.disk_scratch) ok &= find_disk(cfg.disk_scratch, scratch, 64) == 0 && access(scratch, F_OK) == 0;
    for (int i = 0; i < cfg.mount_dev.n; i++) ok &= find_disk(cfg.mount_dev.v[i], vols[i], 64) == 0 && access(vols[i], F_OK) == 0;
    if (ok) return;
    if (now_ms() > deadline)
      fail(EXIT_DEVICE, "device", "virtio devices did not appear within 15s (log port %s, ctl port %s, root disk '%s' %s, scratch '%s' %s); check the qemu command line and the initramfs modules",
           *logp ? "ok" : "missing", *ctlp ? "ok" : "missing", cfg.disk_root ? cfg.disk_root : "", *root ? "ok" : "missing",
           cfg.disk_scratch ? cfg.disk_scratch : "", *scratch ? "ok" : "missing");
    usleep(5000);
  }
}

static void mount_or_fail(const char *src, const char *dst, const char *type, unsigned long flags, const char *data, int code, const char *what) {
  if (mount(src, dst, type, flags, data) != 0)
    fail(code, "mount", "cannot mount %s (%s %s on %s): %s", what, type ? type : "", src, dst, strerror(errno));
}

/* The image decides what /dev, /proc, /sys, /etc and /run are. A symlink
 * there would make the init mount or write wherever the image points, so
 * such an image is refused rather than repaired. Missing ones are created. */
static void check_mountpoints(const char *root) {
  static const char *dirs[] = {"dev", "proc", "sys", "etc", "run"};
  int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0) fail(EXIT_ROOTFS_MOUNT, "mount", "cannot open the new root: %s", strerror(errno));
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    struct stat st;
    if (fstatat(rfd, dirs[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT && mkdirat(rfd, dirs[i], 0755) == 0) continue;
      fail(EXIT_HOSTILE_ROOTFS, "hostile_rootfs", "image root /%s cannot be used: %s", dirs[i], strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      char target[256] = ""; ssize_t n = readlinkat(rfd, dirs[i], target, sizeof target - 1);
      if (n > 0) target[n] = 0;
      fail(EXIT_HOSTILE_ROOTFS, "hostile_rootfs", "image /%s is a symlink (to %s); Hangar refuses to mount or write through it. Rebuild the image with /%s as a real directory", dirs[i], target, dirs[i]);
    }
    if (!S_ISDIR(st.st_mode))
      fail(EXIT_HOSTILE_ROOTFS, "hostile_rootfs", "image /%s is not a directory; rebuild the image with /%s as a directory", dirs[i], dirs[i]);
  }
  struct stat st;
  if (fstatat(rfd, "tmp", &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) { mkdirat(rfd, "tmp", 01777); fchmodat(rfd, "tmp", 01777, 0); }
  close(rfd);
}

static void setup_new_root(char *rootdev, char *scratchdev) {
  mkdir("/hangar", 0755); mkdir("/hangar/lower", 0755); mkdir("/hangar/scratch", 0755); mkdir("/newroot", 0755);
  const char *fstype = cfg.root_fstype ? cfg.root_fstype : "erofs";
  mount_or_fail(rootdev, "/hangar/lower", fstype, MS_RDONLY, NULL, EXIT_ROOTFS_MOUNT, "the image root filesystem");
  if (*scratchdev) mount_or_fail(scratchdev, "/hangar/scratch", "ext4", MS_NOATIME, NULL, EXIT_ROOTFS_MOUNT, "the scratch disk");
  else mount_or_fail("scratch", "/hangar/scratch", "tmpfs", 0, "mode=0755", EXIT_ROOTFS_MOUNT, "a tmpfs scratch layer");
  mkdir("/hangar/scratch/upper", 0755); mkdir("/hangar/scratch/work", 0755);
  mount_or_fail("overlay", "/newroot", "overlay", 0,
                "lowerdir=/hangar/lower,upperdir=/hangar/scratch/upper,workdir=/hangar/scratch/work",
                EXIT_ROOTFS_MOUNT, "the overlay root");
  check_mountpoints("/newroot");
  /* Move our own /dev, /proc, /sys over the (now verified) image dirs. */
  mount_or_fail("/dev", "/newroot/dev", NULL, MS_MOVE, NULL, EXIT_SETUP, "/dev");
  mount_or_fail("/proc", "/newroot/proc", NULL, MS_MOVE, NULL, EXIT_SETUP, "/proc");
  mount_or_fail("/sys", "/newroot/sys", NULL, MS_MOVE, NULL, EXIT_SETUP, "/sys");
  unlink("/init");
  if (chdir("/newroot") != 0) fail(EXIT_SETUP, "switch_root", "chdir /newroot: %s", strerror(errno));
  mount_or_fail(".", "/", NULL, MS_MOVE, NULL, EXIT_SETUP, "the new root on /");
  if (chroot(".") != 0 || chdir("/") != 0) fail(EXIT_SETUP, "switch_root", "chroot: %s", strerror(errno));

  mkdir("/dev/pts", 0755); mkdir("/dev/shm", 01777); mkdir("/dev/mqueue", 0755);
  mount_or_fail("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", EXIT_SETUP, "/dev/pts");
  mount_or_fail("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", EXIT_SETUP, "/dev/shm");
  mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_fail("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", EXIT_SETUP, "/run");
  mkdir("/run/lock", 01777);
  mount_or_fail("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate", EXIT_SETUP, "/sys/fs/cgroup");
  symlink("/proc/self/fd", "/dev/fd");
  symlink("/proc/self/fd/0", "/dev/stdin");
  symlink("/proc/self/fd/1", "/dev/stdout");
  symlink("/proc/self/fd/2", "/dev/stderr");
}

static void write_etc(void) {
  char buf[8192]; int n;
  const char *h = cfg.hostname && *cfg.hostname ? cfg.hostname : "hangar";
  if (sethostname(h, strlen(h)) != 0) ilog("sethostname %s: %s", h, strerror(errno));
  n = snprintf(buf, sizeof buf, "%s\n", h);
  if (write_file_nofollow("/etc/hostname", buf, (size_t)n, 0644) != 0) ilog("cannot write /etc/hostname: %s", strerror(errno));
  n = snprintf(buf, sizeof buf, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n",
               cfg.ip && *cfg.ip ? cfg.ip : "127.0.1.1", h);
  for (int i = 0; i < cfg.hosts.n && n < (int)sizeof buf - 300; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, "%.256s\n", cfg.hosts.v[i]);
  if (write_file_nofollow("/etc/hosts", buf, (size_t)n, 0644) != 0) ilog("cannot write /etc/hosts: %s", strerror(errno));
  if (cfg.dns.n) {
    n = 0;
    for (int i = 0; i < cfg.dns.n && n < (int)sizeof buf - 300; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, "nameserver %.64s\n", cfg.dns.v[i]);
    if (write_file_nofollow("/etc/resolv.conf", buf, (size_t)n, 0644) != 0) ilog("cannot write /etc/resolv.conf: %s", strerror(errno));
  }
}

static void write_files(void) {
  for (int i = 0; i < cfg.nfiles; i++) {
    struct file_spec *f = &cfg.files[i];
    if (f->path[0] != '/') fail(EXIT_SETUP, "files", "file path %s must be absolute", f->path);
    char dir[4096]; snprintf(dir, sizeof dir, "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) { *slash = 0; if (mkdir_p(dir, 0755) != 0) fail(EXIT_SETUP, "files", "cannot create directory %s for %s: %s", dir, f->path, strerror(errno)); }
    if (write_file_nofollow(f->path, f->data, f->len, f->mode) != 0) fail(EXIT_SETUP, "files", "cannot write %s: %s", f->path, strerror(errno));
    memset(f->data, 0, f->len); free(f->data); f->data = NULL;
  }
}

static void mount_volumes(char vols[][64], const struct user *u) {
  for (int i = 0; i < cfg.mount_dev.n; i++) {
    const char *path = cfg.mount_path.v[i];
    if (path[0] != '/' || strcmp(path, "/") == 0) fail(EXIT_SETUP, "volume", "volume path %s must be absolute and not /", path);
    if (mkdir_p(path, 0755) != 0) fail(EXIT_SETUP, "volume", "cannot create volume mount point %s: %s", path, strerror(errno));
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) fail(EXIT_SETUP, "volume", "volume mount point %s is not a directory (a symlink in the image?)", path);
    if (mount(vols[i], path, "ext4", MS_NOATIME, NULL) != 0) fail(EXIT_SETUP, "volume", "cannot mount volume %s on %s: %s", cfg.mount_dev.v[i], path, strerror(errno));
    /* Fly hands a fresh volume to the app user. */
    if (lstat(path, &st) == 0 && st.st_uid == 0 && u->uid != 0) chown(path, u->uid, u->gid);
    g_volume_serials[g_nvolumes] = cfg.mount_dev.v[i];
    g_volumes[g_nvolumes++] = strdup(path);
  }
}

static int env_has(struct strv *e, const char *key) {
  size_t n = strlen(key);
  for (int i = 0; i < e->n; i++) if (strncmp(e->v[i], key, n) == 0 && e->v[i][n] == '=') return 1;
  return 0;
}
static const char *env_get(struct strv *e, const char *key) {
  size_t n = strlen(key);
  for (int i = 0; i < e->n; i++) if (strncmp(e->v[i], key, n) == 0 && e->v[i][n] == '=') return e->v[i] + n + 1;
  return NULL;
}

/* PATH lookup with the app's PATH, so a missing binary gets its own exit
 * code and a message naming what was searched. */
static char *resolve_cmd(const char *cmd, const char *path) {
  struct stat st;
  if (strchr(cmd, '/')) {
    if (stat(cmd, &st) != 0) fail(EXIT_ENTRYPOINT_NOT_FOUND, "entrypoint_not_found", "command %s does not exist in the image: %s", cmd, strerror(errno));
    if (S_ISDIR(st.st_mode)) fail(EXIT_ENTRYPOINT_NOT_EXEC, "entrypoint_not_executable", "command %s is a directory", cmd);
    return strdup(cmd);
  }
  char *p = strdup(path);
  for (char *save = NULL, *dir = strtok_r(p, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    char full[4096]; snprintf(full, sizeof full, "%s/%s", *dir ? dir : ".", cmd);
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) { free(p); return strdup(full); }
  }
  free(p);
  fail(EXIT_ENTRYPOINT_NOT_FOUND, "entrypoint_not_found", "command %s was not found in PATH=%s; check the image's ENTRYPOINT/CMD or the machine's init.exec", cmd, path);
}

int main(void) {
  if (getpid() != 1) { fprintf(stderr, "hangar-init must run as PID 1\n"); return 1; }
  umask(022);
  mkdir("/dev", 0755); mkdir("/proc", 0555); mkdir("/sys", 0555);
  mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  int con = open("/dev/console", O_RDWR | O_NOCTTY);
  if (con >= 0) { dup2(con, 0); dup2(con, 1); dup2(con, 2); if (con > 2) close(con); }
  mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

  read_config();
  if (cfg.probe) {
    /* Used by the host to tell whether an accelerator really boots guests. */
    static const char m[] = "HANGAR_PROBE_OK\n";
    write_all(1, m, sizeof m - 1);
    reboot(RB_AUTOBOOT);
    for (;;) pause();
  }
  if (cfg.time_ms > 0) {
    struct timeval tv; gettimeofday(&tv, NULL);
    long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (now + 2000 < cfg.time_ms) { tv.tv_sec = cfg.time_ms / 1000; tv.tv_usec = (cfg.time_ms % 1000) * 1000; settimeofday(&tv, NULL); }
  }
  load_modules();
  char rootdev[64] = "", scratchdev[64] = "", logp[64] = "", ctlp[64] = "", vols[16][64];
  memset(vols, 0, sizeof vols);
  if (cfg.mount_dev.n > 16) fail(EXIT_CONFIG, "config", "at most 16 volumes");
  if (!cfg.disk_root) fail(EXIT_CONFIG, "config", "run config has no disk.root");
  wait_devices(rootdev, scratchdev, logp, ctlp, vols);
  g_log_fd = open(logp, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (g_log_fd < 0) fail(EXIT_DEVICE, "device", "cannot open log port %s: %s", logp, strerror(errno));
  g_ctl_fd = open(ctlp, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (g_ctl_fd < 0) fail(EXIT_DEVICE, "device", "cannot open control port %s: %s", ctlp, strerror(errno));
  dlog("devices ready: root=%s scratch=%s log=%s ctl=%s", rootdev, scratchdev, logp, ctlp);

  setup_new_root(rootdev, scratchdev);
  write_etc();
  net_up(cfg.ip, cfg.mask, cfg.gw);
  struct rlimit rl = {10240, 10240};
  setrlimit(RLIMIT_NOFILE, &rl);

  static struct app app;
  int urc = resolve_user(cfg.user, &app.user);
  if (urc) finish(urc, 0, 0, urc == EXIT_NO_PASSWD ? "no_passwd" : "unknown_user");
  mount_volumes(vols, &app.user);
  write_files();

  if (!env_has(&cfg.env, "PATH")) strv_push(&cfg.env, strdup("PATH=" DEFAULT_PATH));
  if (!env_has(&cfg.env, "HOME")) {
    char *h = malloc(strlen(app.user.home) + 6); sprintf(h, "HOME=%s", app.user.home); strv_push(&cfg.env, h);
  }
  if (cfg.argv.n == 0) fail(EXIT_NO_COMMAND, "no_command", "the image has no ENTRYPOINT or CMD and the machine sets no init.exec/cmd; nothing to run");
  char *prog = resolve_cmd(cfg.argv.v[0], env_get(&cfg.env, "PATH"));
  /* argv[0] stays as written; only the executable path is resolved. */
  app.argv = cfg.argv.v;
  app.envp = cfg.env.v;
  app.workdir = cfg.workdir && *cfg.workdir ? cfg.workdir : NULL;
  app.ctl_fd = g_ctl_fd;
  app.orphan_ms = cfg.orphan_ms;
  if (app.workdir) {
    struct stat st;
    if (stat(app.workdir, &st) != 0) {
      if (mkdir_p(app.workdir, 0755) != 0) fail(EXIT_WORKDIR, "workdir", "cannot create WorkingDir %s: %s", app.workdir, strerror(errno));
      if (app.user.uid != 0) chown(app.workdir, app.user.uid, app.user.gid);
    } else if (!S_ISDIR(st.st_mode)) fail(EXIT_WORKDIR, "workdir", "WorkingDir %s is not a directory", app.workdir);
  }
  extern char *g_prog;
  g_prog = prog;
  g_masks = masks.v;
  supervise(&app);
}
