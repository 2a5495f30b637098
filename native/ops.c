/*
 * The filesystem operations of a batch. Each works on (parent directory fd, final name); the
 * final component is never followed. Replacement follows tar/containerd: a non-directory in the
 * way is unlinked, a directory in the way of a non-directory is removed recursively, an existing
 * directory is kept when a directory is wanted.
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif

/* Set when a directory was removed: the cached parent fd may now name a dead directory. */
static __thread int directory_removed;

struct st_xattr_args {
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

static int have_setxattrat = 1;
static int have_fchmodat2 = 1;

int st_setxattr_at(int pfd, const char *name, const char *xname, const void *value, size_t size) {
  if (__atomic_load_n(&have_setxattrat, __ATOMIC_RELAXED)) {
    struct st_xattr_args args = {(uint64_t)(uintptr_t)value, (uint32_t)size, 0};
    long r = syscall(SYS_setxattrat, pfd, name, AT_SYMLINK_NOFOLLOW, xname, &args, sizeof args);
    if (r == 0 || errno != ENOSYS) return (int)r;
    __atomic_store_n(&have_setxattrat, 0, __ATOMIC_RELAXED);
  }
  /* Before Linux 6.13: the parent by its /proc/self/fd magic link, the final name via lsetxattr (not followed). */
  char proc[PATH_MAX + 64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", pfd, name);
  return lsetxattr(proc, xname, value, size, 0);
}

/* chmod of a non-symlink, refusing to follow one if it appeared in between. */
static int chmod_at(int pfd, const char *name, mode_t mode) {
  if (__atomic_load_n(&have_fchmodat2, __ATOMIC_RELAXED)) {
    long r = syscall(SYS_fchmodat2, pfd, name, mode, AT_SYMLINK_NOFOLLOW);
    if (r == 0 || errno != ENOSYS) return (int)r;
    __atomic_store_n(&have_fchmodat2, 0, __ATOMIC_RELAXED);
  }
  return fchmodat(pfd, name, mode, 0);
}

static void to_timespecs(const st_meta *m, struct timespec ts[2]) {
  ts[0].tv_sec = m->atime_sec;
  ts[0].tv_nsec = m->atime_nsec;
  ts[1].tv_sec = m->mtime_sec;
  ts[1].tv_nsec = m->mtime_nsec;
}

/* Owner, then mode (chown clears setuid/setgid), then xattrs (chown clears security.capability), then times. */
static int set_meta_at(int pfd, const char *name, const st_meta *m, int is_symlink, const char *entry, st_error *e) {
  if (fchownat(pfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0) {
    st_fail(e, ST_APPLY, errno, "fchownat", entry, "cannot set owner %u:%u", m->uid, m->gid);
    return -1;
  }
  if (!is_symlink && chmod_at(pfd, name, m->mode & 07777) < 0) {
    st_fail(e, ST_APPLY, errno, "fchmodat", entry, "cannot set mode %04o", m->mode & 07777);
    return -1;
  }
  for (uint32_t i = 0; i < m->nxattrs; i++) {
    const st_xattr *x = &m->xattrs[i];
    if (st_setxattr_at(pfd, name, x->name, x->value, x->size) < 0) {
      st_fail(e, ST_APPLY, errno, "setxattrat", entry, "cannot set xattr %s", x->name);
      return -1;
    }
  }
  struct timespec ts[2];
  to_timespecs(m, ts);
  if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0) {
    st_fail(e, ST_APPLY, errno, "utimensat", entry, "cannot set times");
    return -1;
  }
  return 0;
}

int st_finish_fd(int fd, const st_meta *m, const char *path, st_error *e) {
  if (fchown(fd, m->uid, m->gid) < 0) {
    st_fail(e, ST_APPLY, errno, "fchown", path, "cannot set owner %u:%u", m->uid, m->gid);
    return -1;
  }
  if (fchmod(fd, m->mode & 07777) < 0) {
    st_fail(e, ST_APPLY, errno, "fchmod", path, "cannot set mode %04o", m->mode & 07777);
    return -1;
  }
  for (uint32_t i = 0; i < m->nxattrs; i++) {
    const st_xattr *x = &m->xattrs[i];
    if (fsetxattr(fd, x->name, x->value, x->size, 0) < 0) {
      st_fail(e, ST_APPLY, errno, "fsetxattr", path, "cannot set xattr %s", x->name);
      return -1;
    }
  }
  struct timespec ts[2];
  to_timespecs(m, ts);
  if (futimens(fd, ts) < 0) {
    st_fail(e, ST_APPLY, errno, "futimens", path, "cannot set times");
    return -1;
  }
  return 0;
}

static int remove_tree_at(int pfd, const char *name, int depth, const char *entry, st_error *e);

/* Removes everything inside the directory open at fd (consumed), never following symlinks. */
static int empty_dir(int fd, int depth, const char *entry, st_error *e) {
  DIR *d = fdopendir(fd);
  if (!d) {
    st_fail(e, ST_APPLY, errno, "fdopendir", entry, "cannot read a directory to remove its contents");
    close(fd);
    return -1;
  }
  /* A second pass catches entries a concurrent readdir position may have skipped. */
  for (int pass = 0; pass < 2; pass++) {
    int removed = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
      const char *n = de->d_name;
      if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
      int is_dir = de->d_type == DT_DIR;
      if (de->d_type == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0) is_dir = S_ISDIR(st.st_mode);
      }
      if (is_dir) {
        if (remove_tree_at(dirfd(d), n, depth + 1, entry, e) < 0) {
          closedir(d);
          return -1;
        }
      } else if (unlinkat(dirfd(d), n, 0) < 0 && errno != ENOENT) {
        st_fail(e, ST_APPLY, errno, "unlinkat", entry, "cannot remove \"%s\" inside it", n);
        closedir(d);
        return -1;
      }
      removed++;
      errno = 0;
    }
    if (errno != 0) {
      st_fail(e, ST_APPLY, errno, "readdir", entry, "cannot read a directory to remove its contents");
      closedir(d);
      return -1;
    }
    if (removed == 0) break;
    rewinddir(d);
  }
  closedir(d);
  return 0;
}

static int remove_tree_at(int pfd, const char *name, int depth, const char *entry, st_error *e) {
  if (depth > 4096) {
    st_fail(e, ST_APPLY, ELOOP, NULL, entry, "directory tree deeper than 4096 levels");
    return -1;
  }
  int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    if (errno == ENOTDIR || errno == ELOOP) { /* replaced by a non-directory meanwhile */
      if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT) return 0;
    }
    st_fail(e, ST_APPLY, errno, "openat", entry, "cannot open directory \"%s\" to remove it", name);
    return -1;
  }
  directory_removed = 1;
  if (empty_dir(fd, depth, entry, e) < 0) return -1;
  if (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
    st_fail(e, ST_APPLY, errno, "unlinkat", entry, "cannot remove directory \"%s\"", name);
    return -1;
  }
  return 0;
}

/* Clears the way for a new non-directory (or, with want_dir, for a directory) at pfd/name. */
static int make_way(int pfd, const char *name, int want_dir, int *kept_dir, const char *entry, st_error *e) {
  struct stat st;
  if (kept_dir) *kept_dir = 0;
  if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return 0;
    st_fail(e, ST_APPLY, errno, "fstatat", entry, "cannot inspect what is in the way");
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    if (want_dir) {
      *kept_dir = 1;
      return 0;
    }
    return remove_tree_at(pfd, name, 0, entry, e);
  }
  if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT) {
    st_fail(e, ST_APPLY, errno, "unlinkat", entry, "cannot remove the existing entry");
    return -1;
  }
  return 0;
}

static int refuse_root(const st_path *p, const char *entry, const char *what, st_error *e) {
  if (strcmp(p->name, ".") != 0) return 0;
  st_fail(e, ST_UNSAFE, 0, NULL, entry, "cannot %s the root directory itself", what);
  return -1;
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* O_CREAT|O_EXCL|O_NOFOLLOW, replacing what is in the way; returns a writable fd. */
static int create_at(int pfd, const char *name, const char *entry, st_error *e) {
  for (int attempt = 0; attempt < 4; attempt++) {
    int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    if (errno != EEXIST) break;
    if (make_way(pfd, name, 0, NULL, entry, e) < 0) return -1;
  }
  st_fail(e, ST_APPLY, errno, "openat", entry, "cannot create file");
  return -1;
}

static int op_file(int pfd, const st_path *p, const st_op *op, st_error *e) {
  if (refuse_root(p, op->path, "replace", e) < 0) return -1;
  int fd = create_at(pfd, p->name, op->path, e);
  if (fd < 0) return -1;
  int r = 0;
  if (op->data_len > 0 && write_all(fd, op->data, op->data_len) < 0) {
    st_fail(e, ST_APPLY, errno, "write", op->path, "cannot write %zu bytes", op->data_len);
    r = -1;
  }
  if (r == 0) r = st_finish_fd(fd, &op->meta, op->path, e);
  if (close(fd) < 0 && r == 0) {
    st_fail(e, ST_APPLY, errno, "close", op->path, "cannot close file");
    r = -1;
  }
  return r;
}

static int is_overlay_xattr(const char *name) {
  return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}

/*
 * A directory entry for a directory that is already there (a lower layer's, on a full snapshot)
 * replaces its metadata whole, as the merged view of an overlay shows it: xattrs the entry does
 * not carry are removed. overlayfs' own xattrs (opaque markers set by this layer) stay.
 */
static int drop_unlisted_xattrs(int pfd, const char *name, const st_meta *m, const char *entry, st_error *e) {
  int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    st_fail(e, ST_APPLY, errno, "openat", entry, "cannot open directory to update its xattrs");
    return -1;
  }
  char list[65536];
  ssize_t n = flistxattr(fd, list, sizeof list);
  int r = 0;
  if (n < 0) {
    if (errno != ENOTSUP) {
      st_fail(e, ST_APPLY, errno, "flistxattr", entry, "cannot list xattrs");
      r = -1;
    }
    n = 0;
  }
  for (ssize_t off = 0; r == 0 && off < n; off += (ssize_t)strlen(list + off) + 1) {
    const char *x = list + off;
    if (is_overlay_xattr(x)) continue;
    int listed = 0;
    for (uint32_t i = 0; i < m->nxattrs && !listed; i++) listed = strcmp(m->xattrs[i].name, x) == 0;
    if (!listed && fremovexattr(fd, x) < 0 && errno != ENODATA) {
      st_fail(e, ST_APPLY, errno, "fremovexattr", entry, "cannot remove xattr %s", x);
      r = -1;
    }
  }
  close(fd);
  return r;
}

static int op_mkdir(int pfd, const st_path *p, const st_op *op, st_error *e) {
  int kept = 0;
  for (int attempt = 0; attempt < 4; attempt++) {
    if (mkdirat(pfd, p->name, 0700) == 0) break;
    if (errno != EEXIST) {
      st_fail(e, ST_APPLY, errno, "mkdirat", op->path, "cannot create directory");
      return -1;
    }
    if (make_way(pfd, p->name, 1, &kept, op->path, e) < 0) return -1;
    if (kept) break;
  }
  if (kept && drop_unlisted_xattrs(pfd, p->name, &op->meta, op->path, e) < 0) return -1;
  return set_meta_at(pfd, p->name, &op->meta, 0, op->path, e);
}

static int op_symlink(int pfd, const st_path *p, const st_op *op, st_error *e) {
  if (refuse_root(p, op->path, "replace", e) < 0) return -1;
  for (int attempt = 0;; attempt++) {
    if (symlinkat(op->target, pfd, p->name) == 0) break;
    if (errno != EEXIST || attempt == 3) {
      st_fail(e, ST_APPLY, errno, "symlinkat", op->path, "cannot create symlink");
      return -1;
    }
    if (make_way(pfd, p->name, 0, NULL, op->path, e) < 0) return -1;
  }
  return set_meta_at(pfd, p->name, &op->meta, 1, op->path, e);
}

static int op_mknod(int pfd, const st_path *p, const st_op *op, st_error *e) {
  if (refuse_root(p, op->path, "replace", e) < 0) return -1;
  mode_t type = op->kind == NODE_CHAR ? S_IFCHR : op->kind == NODE_BLOCK ? S_IFBLK : S_IFIFO;
  dev_t dev = op->kind == NODE_FIFO ? 0 : makedev(op->major, op->minor);
  for (int attempt = 0;; attempt++) {
    if (mknodat(pfd, p->name, type | 0600, dev) == 0) break;
    if (errno != EEXIST || attempt == 3) {
      st_fail(e, ST_APPLY, errno, "mknodat", op->path, "cannot create %s",
              op->kind == NODE_FIFO ? "fifo" : op->kind == NODE_CHAR ? "character device" : "block device");
      return -1;
    }
    if (make_way(pfd, p->name, 0, NULL, op->path, e) < 0) return -1;
  }
  return set_meta_at(pfd, p->name, &op->meta, 0, op->path, e);
}

static int op_hardlink(st_ctx *c, int pfd, const st_path *p, const st_op *op, st_error *e) {
  if (refuse_root(p, op->path, "replace", e) < 0) return -1;
  st_path t;
  st_error te;
  if (st_split(op->target, op->target_len, &t, &te) < 0 || refuse_root(&t, op->target, "link to", &te) < 0) {
    st_fail(e, te.kind, te.err, te.syscall, op->path, "hardlink target \"%s\": %s", op->target, te.detail);
    return -1;
  }
  int tfd = st_open_parent(c->rootfd, &t, op->target, 0, 0, &te);
  if (tfd < 0) {
    st_fail(e, te.kind, te.err, te.syscall, op->path, "hardlink target \"%s\": %s", op->target, te.detail);
    return -1;
  }
  int r = 0;
  for (int attempt = 0;; attempt++) {
    /* flags 0: a symlink target is linked itself, never followed. */
    if (linkat(tfd, t.name, pfd, p->name, 0) == 0) break;
    if (errno != EEXIST || attempt == 3) {
      st_fail(e, ST_APPLY, errno, "linkat", op->path, "cannot link to \"%s\"", op->target);
      r = -1;
      break;
    }
    struct stat a, b;
    if (fstatat(tfd, t.name, &a, AT_SYMLINK_NOFOLLOW) == 0 && fstatat(pfd, p->name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
      break; /* already the same inode */
    if (make_way(pfd, p->name, 0, NULL, op->path, e) < 0) {
      r = -1;
      break;
    }
  }
  close(tfd);
  return r;
}

static int op_remove(int pfd, const st_path *p, const st_op *op, st_error *e) {
  if (refuse_root(p, op->path, "remove", e) < 0) return -1;
  return make_way(pfd, p->name, 0, NULL, op->path, e);
}

static int op_remove_children(int pfd, const st_path *p, const st_op *op, st_error *e) {
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (strcmp(p->name, ".") == 0 ? 0 : O_NOFOLLOW);
  int fd = openat(pfd, p->name, flags);
  if (fd < 0) {
    /* Missing, or not a directory (never followed): there are no children to remove. */
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return 0;
    st_fail(e, ST_APPLY, errno, "openat", op->path, "cannot open directory to empty it");
    return -1;
  }
  directory_removed = 1;
  return empty_dir(fd, 0, op->path, e);
}

static int op_setxattr(int pfd, const st_path *p, const st_op *op, st_error *e) {
  if (st_setxattr_at(pfd, p->name, op->target, op->data, op->data_len) < 0) {
    st_fail(e, ST_APPLY, errno, "setxattrat", op->path, "cannot set xattr %s", op->target);
    return -1;
  }
  return 0;
}

static int op_times(int pfd, const st_path *p, const st_op *op, st_error *e) {
  struct timespec ts[2];
  to_timespecs(&op->meta, ts);
  if (utimensat(pfd, p->name, ts, AT_SYMLINK_NOFOLLOW) < 0) {
    st_fail(e, ST_APPLY, errno, "utimensat", op->path, "cannot set times");
    return -1;
  }
  return 0;
}

int st_apply_op(st_ctx *c, const st_op *op, st_error *e) {
  if (directory_removed) {
    st_ctx_forget(c);
    directory_removed = 0;
  }
  st_path p;
  if (st_split(op->path, op->path_len, &p, e) < 0) return -1;
  int tolerant = op->op == OP_REMOVE || op->op == OP_REMOVE_CHILDREN; /* missing parent: nothing to remove */
  int create = op->op == OP_MKDIR || op->op == OP_FILE || op->op == OP_SYMLINK || op->op == OP_HARDLINK ||
               op->op == OP_MKNOD;
  int pfd = st_parent_fd(c, &p, op->path, create, tolerant, e);
  if (pfd == -2) return 0;
  if (pfd < 0) return -1;
  switch (op->op) {
    case OP_MKDIR: return op_mkdir(pfd, &p, op, e);
    case OP_FILE: return op_file(pfd, &p, op, e);
    case OP_SYMLINK: return op_symlink(pfd, &p, op, e);
    case OP_HARDLINK: return op_hardlink(c, pfd, &p, op, e);
    case OP_MKNOD: return op_mknod(pfd, &p, op, e);
    case OP_REMOVE: return op_remove(pfd, &p, op, e);
    case OP_REMOVE_CHILDREN: return op_remove_children(pfd, &p, op, e);
    case OP_SETXATTR: return op_setxattr(pfd, &p, op, e);
    case OP_TIMES: return op_times(pfd, &p, op, e);
  }
  st_fail(e, ST_INVALID, 0, NULL, op->path, "unknown operation %u", op->op);
  return -1;
}

int st_create_file(int rootfd, const char *path, size_t len, uint32_t mode, st_error *e) {
  (void)mode; /* the final mode is set by st_finish_fd, after the owner */
  st_path p;
  if (st_split(path, len, &p, e) < 0) return -1;
  if (refuse_root(&p, path, "replace", e) < 0) return -1;
  int pfd = st_open_parent(rootfd, &p, path, 1, 0, e);
  if (pfd < 0) return -1;
  int fd = create_at(pfd, p.name, path, e);
  close(pfd);
  return fd;
}
