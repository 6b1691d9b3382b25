/* Supervision: run the app, forward signals, reap every zombie, frame its
 * output, serve the control channel, then report the exit and power off. */
#include "init.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int g_ctl_fd = -1;
char *g_prog;
extern char **environ;

#define LINE_MAX_BYTES 16384
#define EXEC_MAX_OUT (1u << 20)
#define MAX_EXEC 8

static struct buf ctl_in, ctl_out;
static int ctl_hup;
static long long ctl_hup_at;
static long long ctl_gone_since; /* when the host was last seen going away */

struct stream { int fd; const char *key; struct buf line; };
struct execjob {
  int used; pid_t pid; char id[32];
  int outfd, errfd; struct buf out, err;
  long long deadline; int timed_out;
};
static struct execjob jobs[MAX_EXEC];
static struct app *g_app;
static pid_t app_pid;
static long long app_started;

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

struct buf *ctl_outbuf(void) { return &ctl_out; }

void ctl_flush(void) {
  if (g_ctl_fd < 0 || ctl_hup || !ctl_out.len) return;
  ssize_t w = write(g_ctl_fd, ctl_out.p, ctl_out.len);
  if (w > 0) buf_drop(&ctl_out, (size_t)w);
}

/* Best effort: the host may not be connected (it reads the exit record from
 * the log file instead), so wait only briefly. */
void ctl_flush_final(void) {
  long long until = now_ms() + 300;
  while (g_ctl_fd >= 0 && ctl_out.len && now_ms() < until) {
    struct pollfd p = {g_ctl_fd, POLLOUT, 0};
    if (poll(&p, 1, 50) > 0 && (p.revents & POLLOUT) && !(p.revents & POLLHUP)) {
      ssize_t w = write(g_ctl_fd, ctl_out.p, ctl_out.len);
      if (w > 0) buf_drop(&ctl_out, (size_t)w);
    } else if (p.revents & POLLHUP) break;
  }
}

void ctl_send_exit(int code, int sig, int oom, const char *err) {
  if (g_ctl_fd < 0) return;
  rec_puts(&ctl_out, "ev", "exit");
  rec_puti(&ctl_out, "code", code);
  rec_puti(&ctl_out, "signal", sig);
  rec_puti(&ctl_out, "oom", oom);
  rec_puts(&ctl_out, "error", err && *err ? err : "-");
  rec_put(&ctl_out, "end", "", 0);
}

/* An app that prints a secret must not put it in the host's log file:
 * replace every secret value in the line before it leaves the guest. */
static void emit_masked(const char *key, const char *p, size_t n) {
  if (!g_masks || !g_masks[0]) { log_record(key, p, n); return; }
  struct buf out = {0};
  size_t i = 0, plain = 0;
  while (i < n) {
    size_t hit = 0;
    for (char **m = g_masks; *m; m++) {
      size_t ml = strlen(*m);
      if (ml > hit && ml <= n - i && memcmp(p + i, *m, ml) == 0) hit = ml;
    }
    if (!hit) { i++; continue; }
    buf_put(&out, p + plain, i - plain);
    buf_put(&out, "[REDACTED]", 10);
    i += hit;
    plain = i;
  }
  if (!out.len) { log_record(key, p, n); return; }
  buf_put(&out, p + plain, n - plain);
  log_record(key, out.p, out.len);
  buf_free(&out);
}

static void stream_emit(struct stream *s, int final) {
  size_t start = 0;
  for (size_t i = 0; i < s->line.len; i++) {
    if (s->line.p[i] == '\n') { emit_masked(s->key, s->line.p + start, i - start); start = i + 1; }
    else if (i - start + 1 >= LINE_MAX_BYTES) { emit_masked(s->key, s->line.p + start, i - start + 1); start = i + 1; }
  }
  if (final && start < s->line.len) { emit_masked(s->key, s->line.p + start, s->line.len - start); start = s->line.len; }
  buf_drop(&s->line, start);
}

static void stream_read(struct stream *s) {
  char tmp[16384];
  for (int k = 0; k < 16; k++) {
    ssize_t r = read(s->fd, tmp, sizeof tmp);
    if (r > 0) { buf_put(&s->line, tmp, (size_t)r); stream_emit(s, 0); continue; }
    if (r < 0 && (errno == EINTR)) continue;
    if (r < 0 && errno == EAGAIN) return;
    stream_emit(s, 1); close(s->fd); s->fd = -1; return;
  }
}

static int oom_kills(void) {
  struct buf b = {0};
  if (read_file("/sys/fs/cgroup/app/memory.events", &b, 65536, 1) != 0) return 0;
  char *p = strstr(b.p, "oom_kill ");
  int n = p ? atoi(p + 9) : 0;
  buf_free(&b);
  return n;
}

static void job_read(int *fd, struct buf *b) {
  char tmp[8192];
  for (;;) {
    ssize_t r = read(*fd, tmp, sizeof tmp);
    if (r > 0) { size_t room = b->len < EXEC_MAX_OUT ? EXEC_MAX_OUT - b->len : 0; if (room) buf_put(b, tmp, (size_t)r < room ? (size_t)r : room); continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    close(*fd); *fd = -1; return;
  }
}

static void job_finish(struct execjob *j, int status) {
  if (j->outfd >= 0) job_read(&j->outfd, &j->out);
  if (j->errfd >= 0) job_read(&j->errfd, &j->err);
  if (j->outfd >= 0) { close(j->outfd); j->outfd = -1; }
  if (j->errfd >= 0) { close(j->errfd); j->errfd = -1; }
  rec_puts(&ctl_out, "id", j->id);
  rec_puti(&ctl_out, "ok", 1);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  rec_puti(&ctl_out, "code", code);
  rec_puti(&ctl_out, "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  rec_puti(&ctl_out, "timed_out", j->timed_out);
  rec_put(&ctl_out, "stdout", j->out.p ? j->out.p : "", j->out.len);
  rec_put(&ctl_out, "stderr", j->err.p ? j->err.p : "", j->err.len);
  rec_put(&ctl_out, "end", "", 0);
  buf_free(&j->out); buf_free(&j->err);
  j->used = 0;
  ctl_flush();
}

static void reply_error(const char *id, const char *msg) {
  rec_puts(&ctl_out, "id", id);
  rec_puti(&ctl_out, "ok", 0);
  rec_puts(&ctl_out, "error", msg);
  rec_put(&ctl_out, "end", "", 0);
}

static void start_exec(const char *id, char **argv, long long timeout_ms) {
  struct execjob *j = NULL;
  for (int i = 0; i < MAX_EXEC; i++) if (!jobs[i].used) { j = &jobs[i]; break; }
  if (!j) { reply_error(id, "too many concurrent exec requests"); return; }
  int o[2], e[2];
  if (pipe2(o, O_CLOEXEC) != 0) { reply_error(id, strerror(errno)); return; }
  if (pipe2(e, O_CLOEXEC) != 0) { close(o[0]); close(o[1]); reply_error(id, strerror(errno)); return; }
  pid_t pid = fork();
  if (pid < 0) { reply_error(id, strerror(errno)); close(o[0]); close(o[1]); close(e[0]); close(e[1]); return; }
  if (pid == 0) {
    sigset_t all; sigemptyset(&all); sigprocmask(SIG_SETMASK, &all, NULL);
    setsid();
    int nul = open("/dev/null", O_RDONLY);
    dup2(nul, 0); dup2(o[1], 1); dup2(e[1], 2);
    if (chdir(g_app->workdir ? g_app->workdir : "/") != 0) chdir("/");
    environ = g_app->envp;
    execvp(argv[0], argv);
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  close(o[1]); close(e[1]);
  set_nonblock(o[0]); set_nonblock(e[0]);
  memset(j, 0, sizeof *j);
  j->used = 1; j->pid = pid; j->outfd = o[0]; j->errfd = e[0];
  snprintf(j->id, sizeof j->id, "%s", id);
  j->deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
}

static int parse_signal(const char *s) { int n = atoi(s); return n > 0 && n < 65 ? n : 0; }

/* One request: records up to "end". */
static void handle_request(const char *p, size_t len) {
  size_t pos = 0; struct rec r;
  char id[32] = "0", op[32] = "";
  char *args[256]; int nargs = 0; long long timeout = 0; int sig = 0;
  char serial[32] = ""; long long bytes = 0, hold_ms = 0;
  while (rec_next(p, len, &pos, &r) == 1) {
    if (rec_is(&r, "id")) snprintf(id, sizeof id, "%.*s", (int)r.vlen, r.val);
    else if (rec_is(&r, "op")) snprintf(op, sizeof op, "%.*s", (int)r.vlen, r.val);
    else if (rec_is(&r, "arg") && nargs < 255) args[nargs++] = rec_dup(&r);
    else if (rec_is(&r, "timeout")) { char *t = rec_dup(&r); timeout = atoll(t); free(t); }
    else if (rec_is(&r, "sig")) { char *t = rec_dup(&r); sig = parse_signal(t); free(t); }
    else if (rec_is(&r, "serial")) snprintf(serial, sizeof serial, "%.*s", (int)r.vlen, r.val);
    else if (rec_is(&r, "bytes")) { char *t = rec_dup(&r); bytes = atoll(t); free(t); }
    else if (rec_is(&r, "hold_ms")) { char *t = rec_dup(&r); hold_ms = atoll(t); free(t); }
  }
  args[nargs] = NULL;
  if (strcmp(op, "status") == 0) {
    rec_puts(&ctl_out, "id", id);
    rec_puti(&ctl_out, "ok", 1);
    rec_puts(&ctl_out, "state", app_pid > 0 ? "running" : "exited");
    rec_puti(&ctl_out, "pid", app_pid);
    rec_puti(&ctl_out, "uptime_ms", now_ms() - app_started);
    rec_put(&ctl_out, "end", "", 0);
  } else if (strcmp(op, "signal") == 0) {
    if (!sig) reply_error(id, "invalid signal number");
    else if (app_pid <= 0) reply_error(id, "the app is not running");
    else if (kill(app_pid, sig) != 0) reply_error(id, strerror(errno));
    else { rec_puts(&ctl_out, "id", id); rec_puti(&ctl_out, "ok", 1); rec_put(&ctl_out, "end", "", 0); }
  } else if (strcmp(op, "exec") == 0) {
    if (!nargs) reply_error(id, "exec needs a command");
    else start_exec(id, args, timeout);
  } else if (strncmp(op, "fs.", 3) == 0) fsop_request(id, op, serial, bytes, hold_ms);
  else reply_error(id, "unknown op");
  for (int i = 0; i < nargs; i++) free(args[i]);
  ctl_flush();
}

static void ctl_read(void) {
  char tmp[8192];
  for (;;) {
    ssize_t r = read(g_ctl_fd, tmp, sizeof tmp);
    if (r > 0) { if (ctl_in.len + (size_t)r > (8u << 20)) ctl_in.len = 0; buf_put(&ctl_in, tmp, (size_t)r); continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) { if (!ctl_hup) ctl_gone_since = now_ms(); ctl_hup = 1; ctl_hup_at = now_ms(); ctl_in.len = 0; }
    break;
  }
  /* Dispatch every complete message (ending in an "end" record). */
  size_t pos = 0, start = 0; struct rec r; int rc;
  while ((rc = rec_next(ctl_in.p, ctl_in.len, &pos, &r)) == 1) {
    if (rec_is(&r, "end")) { handle_request(ctl_in.p + start, pos - start); start = pos; }
  }
  if (rc < 0) { ilog("control channel: malformed request dropped"); ctl_in.len = 0; return; }
  buf_drop(&ctl_in, start);
}

struct child_report { int stage; int err; };
enum { STAGE_IDS = 1, STAGE_WORKDIR = 2, STAGE_EXEC = 3 };

static pid_t spawn_app(struct app *a, int out, int err, int rep) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  int cg = open("/sys/fs/cgroup/app/cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (cg >= 0) { write(cg, "0", 1); close(cg); }
  int nul = open("/dev/null", O_RDONLY);
  dup2(nul, 0); dup2(out, 1); dup2(err, 2);
  if (nul > 2) close(nul);
  struct child_report cr = {0, 0};
  if (setgroups((size_t)a->user.ngroups, a->user.groups) != 0 || setgid(a->user.gid) != 0 || setuid(a->user.uid) != 0) {
    cr.stage = STAGE_IDS; cr.err = errno; write(rep, &cr, sizeof cr); _exit(127);
  }
  if (a->workdir && chdir(a->workdir) != 0) { cr.stage = STAGE_WORKDIR; cr.err = errno; write(rep, &cr, sizeof cr); _exit(127); }
  if (!a->workdir && chdir(a->user.uid == 0 ? "/" : "/") != 0) {}
  execve(g_prog, a->argv, a->envp);
  cr.stage = STAGE_EXEC; cr.err = errno; write(rep, &cr, sizeof cr);
  _exit(127);
}

void supervise(struct app *a) {
  g_app = a;
  sigset_t mask; sigfillset(&mask);
  sigdelset(&mask, SIGSEGV); sigdelset(&mask, SIGBUS); sigdelset(&mask, SIGILL); sigdelset(&mask, SIGFPE);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fail(EXIT_SETUP, "signalfd", "signalfd: %s", strerror(errno));

  /* A child cgroup for the app, so an OOM kill can be told apart. */
  mkdir("/sys/fs/cgroup/app", 0755);
  int st = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
  if (st >= 0) { write(st, "+memory +pids", 13); close(st); }

  int o[2], e[2], rp[2];
  if (pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC) || pipe2(rp, O_CLOEXEC)) fail(EXIT_SETUP, "pipe", "pipe: %s", strerror(errno));
  app_started = now_ms();
  app_pid = spawn_app(a, o[1], e[1], rp[1]);
  if (app_pid < 0) fail(EXIT_SETUP, "fork", "fork: %s", strerror(errno));
  close(o[1]); close(e[1]); close(rp[1]);
  struct child_report cr;
  ssize_t n = read(rp[0], &cr, sizeof cr);
  close(rp[0]);
  if (n == (ssize_t)sizeof cr) {
    waitpid(app_pid, NULL, 0);
    if (cr.stage == STAGE_IDS) fail(EXIT_SETUP, "user", "cannot switch to uid %u gid %u: %s", a->user.uid, a->user.gid, strerror(cr.err));
    if (cr.stage == STAGE_WORKDIR) fail(EXIT_WORKDIR, "workdir", "cannot enter WorkingDir %s as uid %u: %s", a->workdir, a->user.uid, strerror(cr.err));
    if (cr.err == ENOENT) fail(EXIT_ENTRYPOINT_NOT_FOUND, "entrypoint_not_found", "cannot run %s: %s (for a script, is its #! interpreter in the image?)", g_prog, strerror(cr.err));
    fail(EXIT_ENTRYPOINT_NOT_EXEC, "entrypoint_not_executable", "cannot run %s as uid %u: %s", g_prog, a->user.uid, strerror(cr.err));
  }
  dlog("started %s as pid %d uid %u", g_prog, app_pid, a->user.uid);
  rec_puts(&ctl_out, "ev", "started"); rec_puti(&ctl_out, "pid", app_pid); rec_put(&ctl_out, "end", "", 0);
  ctl_flush();

  struct stream so = {o[0], "o", {0}}, se = {e[0], "e", {0}};
  set_nonblock(so.fd); set_nonblock(se.fd);
  int exited = 0, code = 0, sig = 0;
  long long drain_until = 0;
  int orphaned = 0;

  for (;;) {
    if (exited && ((so.fd < 0 && se.fd < 0) || now_ms() >= drain_until)) break;
    struct pollfd pf[4 + 2 * MAX_EXEC]; int np = 0;
    int i_sig = np; pf[np++] = (struct pollfd){sfd, POLLIN, 0};
    int i_out = -1, i_err = -1, i_ctl = -1;
    if (so.fd >= 0) { i_out = np; pf[np++] = (struct pollfd){so.fd, POLLIN, 0}; }
    if (se.fd >= 0) { i_err = np; pf[np++] = (struct pollfd){se.fd, POLLIN, 0}; }
    long long now = now_ms();
    int timeout = -1;
    if (!ctl_hup || now - ctl_hup_at >= 200) {
      i_ctl = np; pf[np++] = (struct pollfd){g_ctl_fd, (short)(POLLIN | (ctl_out.len ? POLLOUT : 0)), 0};
    } else timeout = (int)(200 - (now - ctl_hup_at));
    int jidx[2 * MAX_EXEC]; int jn = 0;
    for (int i = 0; i < MAX_EXEC; i++) {
      if (!jobs[i].used) continue;
      if (jobs[i].outfd >= 0) { jidx[jn++] = i; pf[np++] = (struct pollfd){jobs[i].outfd, POLLIN, 0}; }
      if (jobs[i].errfd >= 0) { jidx[jn++] = i + 100; pf[np++] = (struct pollfd){jobs[i].errfd, POLLIN, 0}; }
      if (jobs[i].deadline) {
        long long left = jobs[i].deadline - now; if (left < 0) left = 0;
        if (timeout < 0 || left < timeout) timeout = (int)left;
      }
    }
    long long fz = fsop_timeout(now);
    if (fz >= 0 && (timeout < 0 || fz < timeout)) timeout = (int)fz;
    if (exited) { long long left = drain_until - now; if (left < 0) left = 0; if (timeout < 0 || left < timeout) timeout = (int)left; }
    /* Opt-in safety net (tests): nobody has watched this VM for too long. */
    if (a->orphan_ms > 0 && ctl_hup && !exited && !orphaned && now - ctl_gone_since >= a->orphan_ms) {
      orphaned = 1;
      ilog("no host has been connected for %lld s (orphan timeout): stopping the app", a->orphan_ms / 1000);
      if (app_pid > 0) kill(app_pid, SIGKILL);
    }
    int pr = poll(pf, (nfds_t)np, timeout);
    if (pr < 0 && errno != EINTR) fail(EXIT_SETUP, "poll", "poll: %s", strerror(errno));
    now = now_ms();

    if (pr > 0 && pf[i_sig].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) continue;
        if (app_pid > 0) kill(app_pid, (int)si.ssi_signo);
      }
    }
    /* Reap everything: the app, exec jobs and any orphan reparented to us. */
    for (;;) {
      int status; pid_t p = waitpid(-1, &status, WNOHANG);
      if (p <= 0) break;
      if (p == app_pid) {
        exited = 1; app_pid = 0;
        if (WIFSIGNALED(status)) { sig = WTERMSIG(status); code = 128 + sig; }
        else code = WEXITSTATUS(status);
        drain_until = now + 500;
        continue;
      }
      if (fsop_reaped(p, status)) continue;
      for (int i = 0; i < MAX_EXEC; i++) if (jobs[i].used && jobs[i].pid == p) { job_finish(&jobs[i], status); break; }
    }
    if (i_out >= 0 && pf[i_out].revents && so.fd >= 0) stream_read(&so);
    if (i_err >= 0 && pf[i_err].revents && se.fd >= 0) stream_read(&se);
    for (int k = 0; k < jn; k++) {
      int idx = jidx[k] % 100; struct execjob *j = &jobs[idx];
      if (!j->used) continue;
      if (jidx[k] >= 100) { if (j->errfd >= 0) job_read(&j->errfd, &j->err); }
      else if (j->outfd >= 0) job_read(&j->outfd, &j->out);
    }
    for (int i = 0; i < MAX_EXEC; i++)
      if (jobs[i].used && jobs[i].deadline && now >= jobs[i].deadline && !jobs[i].timed_out) {
        jobs[i].timed_out = 1; kill(-jobs[i].pid, SIGKILL); kill(jobs[i].pid, SIGKILL);
      }
    if (i_ctl >= 0) {
      short rv = pf[i_ctl].revents;
      if (rv & POLLIN) ctl_read();
      if ((rv & POLLHUP) && !(rv & POLLIN)) {
        if (!ctl_hup) { dlog("control channel: host disconnected"); ctl_gone_since = now; }
        ctl_hup = 1; ctl_hup_at = now;
      } else if (pr >= 0 && !(rv & POLLHUP)) ctl_hup = 0;
      if (!ctl_hup && (rv & POLLOUT)) ctl_flush();
    }
    fsop_tick(now, ctl_hup);
  }
  if (so.fd >= 0) { stream_read(&so); stream_emit(&so, 1); }
  if (se.fd >= 0) { stream_read(&se); stream_emit(&se, 1); }
  int oom = (sig == SIGKILL && oom_kills() > 0) ? 1 : 0;
  if (oom) ilog("the app was killed by the kernel's OOM killer; give the machine more memory (guest.memory_mb)");
  finish(code, sig, oom, NULL);
}
