/* USER resolution against the image's own /etc/passwd and /etc/group.
 * Runs after chroot, so symlinks in the image cannot reach outside it; the
 * files are still size-capped and must be regular files. */
#include "init.h"
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_DB (4u << 20)

static int parse_id(const char *s, unsigned long *out) {
  if (!*s) return 0;
  char *end; errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (*end || errno || v > 0x7fffffffUL) return 0;
  *out = v; return 1;
}

/* Split one line of a colon-separated db into at most n fields (in place). */
static int split(char *line, char **f, int n) {
  int k = 0; f[k++] = line;
  for (char *p = line; *p && k < n; p++) if (*p == ':') { *p = 0; f[k++] = p + 1; }
  return k;
}

struct pwent { char name[64]; uid_t uid; gid_t gid; char home[256]; };

/* by name (name != NULL) or by uid; 1 found, 0 not found */
static int pw_find(struct buf *db, const char *name, uid_t uid, struct pwent *out) {
  char *copy = strndup(db->p, db->len);
  if (!copy) return 0;
  int found = 0;
  for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *f[7];
    if (split(line, f, 7) < 7) continue;
    unsigned long u, g;
    if (!parse_id(f[2], &u) || !parse_id(f[3], &g)) continue;
    if (name ? strcmp(f[0], name) != 0 : (uid_t)u != uid) continue;
    snprintf(out->name, sizeof out->name, "%s", f[0]);
    out->uid = (uid_t)u; out->gid = (gid_t)g;
    snprintf(out->home, sizeof out->home, "%s", *f[5] ? f[5] : "/");
    found = 1; break;
  }
  free(copy);
  return found;
}

/* group by name → gid; 1 found */
static int gr_find(struct buf *db, const char *name, gid_t *gid) {
  char *copy = strndup(db->p, db->len);
  if (!copy) return 0;
  int found = 0;
  for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *f[4]; unsigned long g;
    if (split(line, f, 4) < 3 || !parse_id(f[2], &g)) continue;
    if (strcmp(f[0], name) == 0) { *gid = (gid_t)g; found = 1; break; }
  }
  free(copy);
  return found;
}

static void add_group(struct user *u, gid_t g) {
  for (int i = 0; i < u->ngroups; i++) if (u->groups[i] == g) return;
  if (u->ngroups < 64) u->groups[u->ngroups++] = g;
}

/* Supplementary groups: every group whose member list names the user. */
static void gr_members(struct buf *db, const char *user, struct user *u) {
  char *copy = strndup(db->p, db->len);
  if (!copy) return;
  for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *f[4]; unsigned long g;
    if (split(line, f, 4) < 4 || !parse_id(f[2], &g)) continue;
    for (char *s2 = NULL, *m = strtok_r(f[3], ",", &s2); m; m = strtok_r(NULL, ",", &s2))
      if (strcmp(m, user) == 0) add_group(u, (gid_t)g);
  }
  free(copy);
}

int resolve_user(const char *spec, struct user *u) {
  memset(u, 0, sizeof *u);
  char user[256] = "", group[256] = "";
  if (spec && *spec) {
    const char *colon = strchr(spec, ':');
    if (colon) {
      snprintf(user, sizeof user, "%.*s", (int)(colon - spec), spec);
      snprintf(group, sizeof group, "%s", colon + 1);
    } else snprintf(user, sizeof user, "%s", spec);
  }
  if (!*user) snprintf(user, sizeof user, "0");

  struct buf pw = {0}, gr = {0};
  int have_pw = read_file("/etc/passwd", &pw, MAX_DB, 0) == 0;
  int have_gr = read_file("/etc/group", &gr, MAX_DB, 0) == 0;
  int rc = 0;
  struct pwent e;
  unsigned long id;
  if (parse_id(user, &id)) {
    u->uid = (uid_t)id;
    if (have_pw && pw_find(&pw, NULL, u->uid, &e)) {
      u->gid = e.gid;
      snprintf(u->home, sizeof u->home, "%s", e.home);
      snprintf(u->name, sizeof u->name, "%s", e.name);
    } else {
      /* Fly's rule for a uid the image does not know: gid = uid, HOME=/ */
      u->gid = (gid_t)id;
      snprintf(u->home, sizeof u->home, "%s", id == 0 ? "/root" : "/");
    }
  } else {
    if (!have_pw) {
      ilog("USER %s is a name but the image has no readable /etc/passwd; add the user to the image or use a numeric uid", user);
      rc = EXIT_NO_PASSWD; goto out;
    }
    if (!pw_find(&pw, user, 0, &e)) {
      ilog("USER %s is not in the image's /etc/passwd; create the user in the image (e.g. adduser) or use a numeric uid", user);
      rc = EXIT_UNKNOWN_USER; goto out;
    }
    u->uid = e.uid; u->gid = e.gid;
    snprintf(u->home, sizeof u->home, "%s", e.home);
    snprintf(u->name, sizeof u->name, "%s", e.name);
  }
  if (*group) {
    if (parse_id(group, &id)) u->gid = (gid_t)id;
    else if (!have_gr || !gr_find(&gr, group, &u->gid)) {
      ilog("group %s (from USER %s) is not in the image's /etc/group; create it or use a numeric gid", group, spec);
      rc = EXIT_UNKNOWN_USER; goto out;
    }
  }
  add_group(u, u->gid);
  if (*u->name && have_gr) gr_members(&gr, u->name, u);
out:
  buf_free(&pw); buf_free(&gr);
  return rc;
}
