/*
 * Containment: every parent directory is resolved by openat2 beneath the root with no symlinks
 * (RESOLVE_NO_SYMLINKS also refuses magic links) and no mount crossings; the final component is
 * left to the caller's *at() call with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * RESOLVE_NO_XDEV: a snapshot root holds one filesystem (an overlay upper dir, a btrfs
 * subvolume); a mount point inside it is never a place a layer may write through.
 */
#define ST_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

static int openat2_dir(int dirfd, const char *path) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = ST_RESOLVE;
  for (int attempt = 0;; attempt++) {
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    /* EAGAIN: a concurrent rename raced the resolution; the kernel asks us to retry. */
    if (fd < 0 && (errno == EAGAIN || errno == EINTR) && attempt < 8) continue;
    return fd;
  }
}

int st_split(const char *raw, size_t len, st_path *out, st_error *e) {
  if (strlen(raw) != len) {
    st_fail(e, ST_UNSAFE, 0, NULL, raw, "the path contains a NUL byte");
    return -1;
  }
  if (len > PATH_MAX) {
    st_fail(e, ST_UNSAFE, ENAMETOOLONG, NULL, raw, "the path is longer than %d bytes", PATH_MAX);
    return -1;
  }
  if (raw[0] == '/') {
    st_fail(e, ST_UNSAFE, 0, NULL, raw, "absolute paths are refused");
    return -1;
  }
  char *w = out->buf;
  size_t last = (size_t)-1; /* offset of the last component in buf */
  const char *s = raw;
  while (*s) {
    while (*s == '/') s++;
    if (!*s) break;
    const char *end = strchrnul(s, '/');
    size_t n = (size_t)(end - s);
    if (n == 1 && s[0] == '.') {
      s = end;
      continue;
    }
    if (n == 2 && s[0] == '.' && s[1] == '.') {
      st_fail(e, ST_UNSAFE, 0, NULL, raw, "\"..\" components are refused");
      return -1;
    }
    if (n > NAME_MAX) {
      st_fail(e, ST_UNSAFE, ENAMETOOLONG, NULL, raw, "a component is longer than %d bytes", NAME_MAX);
      return -1;
    }
    if (w != out->buf) *w++ = '/';
    last = (size_t)(w - out->buf);
    memcpy(w, s, n);
    w += n;
    s = end;
  }
  *w = '\0';
  if (last == (size_t)-1) { /* the root itself */
    out->parent = "";
    out->name = ".";
  } else if (last == 0) {
    out->parent = "";
    out->name = out->buf;
  } else {
    out->buf[last - 1] = '\0';
    out->parent = out->buf;
    out->name = out->buf + last;
  }
  return 0;
}

void st_ctx_init(st_ctx *c, int rootfd) {
  c->rootfd = rootfd;
  c->cached_fd = -1;
  c->cached_parent[0] = '\0';
}

void st_ctx_forget(st_ctx *c) {
  if (c->cached_fd >= 0) close(c->cached_fd);
  c->cached_fd = -1;
  c->cached_parent[0] = '\0';
}

void st_ctx_release(st_ctx *c) { st_ctx_forget(c); }

static void resolve_error(st_error *e, int err, const char *entry, const char *parent) {
  switch (err) {
    case ELOOP:
      st_fail(e, ST_UNSAFE, err, "openat2", entry, "parent \"%s\" is or passes through a symlink", parent);
      break;
    case EXDEV:
      st_fail(e, ST_UNSAFE, err, "openat2", entry, "parent \"%s\" leaves the root or crosses a mount point", parent);
      break;
    case ENOTDIR:
      st_fail(e, ST_APPLY, err, "openat2", entry, "a component of parent \"%s\" is not a directory", parent);
      break;
    default:
      st_fail(e, ST_APPLY, err, "openat2", entry, "cannot open parent directory \"%s\"", parent);
  }
}

/* Walks `parent` one component at a time from the root, creating missing directories (0755). */
static int make_parents(int rootfd, const char *parent, const char *entry, st_error *e) {
  char comp[NAME_MAX + 1];
  int fd = -1;
  const char *s = parent;
  while (*s) {
    const char *end = strchrnul(s, '/');
    size_t n = (size_t)(end - s);
    memcpy(comp, s, n);
    comp[n] = '\0';
    int at = fd < 0 ? rootfd : fd;
    int next = openat2_dir(at, comp);
    if (next < 0 && errno == ENOENT) {
      if (mkdirat(at, comp, 0755) < 0 && errno != EEXIST) {
        int err = errno;
        if (fd >= 0) close(fd);
        st_fail(e, ST_APPLY, err, "mkdirat", entry, "cannot create parent directory \"%.*s\"",
                (int)(end - parent), parent);
        return -1;
      }
      next = openat2_dir(at, comp);
    }
    if (next < 0) {
      int err = errno;
      if (fd >= 0) close(fd);
      char upto[PATH_MAX + 1];
      snprintf(upto, sizeof upto, "%.*s", (int)(end - parent), parent);
      resolve_error(e, err, entry, upto);
      return -1;
    }
    if (fd >= 0) close(fd);
    fd = next;
    s = *end ? end + 1 : end;
  }
  return fd;
}

int st_open_parent(int rootfd, const st_path *p, const char *entry, int create, int missing_ok, st_error *e) {
  if (p->parent[0] == '\0') {
    int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) st_fail(e, ST_APPLY, errno, "fcntl", entry, "cannot duplicate the root descriptor");
    return fd;
  }
  int fd = openat2_dir(rootfd, p->parent);
  if (fd >= 0) return fd;
  if (errno == ENOENT && create) return make_parents(rootfd, p->parent, entry, e);
  if (errno == ENOENT && missing_ok) return -2;
  resolve_error(e, errno, entry, p->parent);
  return -1;
}

int st_parent_fd(st_ctx *c, const st_path *p, const char *entry, int create, int missing_ok, st_error *e) {
  if (p->parent[0] == '\0') return c->rootfd;
  if (c->cached_fd >= 0 && strcmp(c->cached_parent, p->parent) == 0) return c->cached_fd;
  int fd = st_open_parent(c->rootfd, p, entry, create, missing_ok, e);
  if (fd < 0) return fd;
  st_ctx_forget(c);
  c->cached_fd = fd;
  strcpy(c->cached_parent, p->parent);
  return fd;
}
