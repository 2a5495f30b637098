/*
 * Synchronous single calls: root descriptors, large-file create/finish (content is written from
 * JS with fs.write), and xattr reads/writes on an absolute path's entry itself.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static napi_value open_root(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "openRoot(path)")) return NULL;
  char *path = st_get_string(env, argv[0], "root path", NULL);
  if (!path) return NULL;
  int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  napi_value r = NULL;
  if (fd < 0) {
    st_error e;
    st_fail(&e, ST_APPLY, errno, "open", path, "cannot open snapshot root");
    st_throw(env, &e);
  } else {
    napi_create_int32(env, fd, &r);
  }
  free(path);
  return r;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (st_args(env, info, 1, 1, argv, "closeFd(fd)") || st_get_fd(env, argv[0], &fd) < 0) return NULL;
  if (close(fd) < 0 && errno != EINTR) {
    st_error e;
    st_fail(&e, ST_APPLY, errno, "close", "", "cannot close descriptor %d", fd);
    st_throw(env, &e);
  }
  return NULL;
}

static napi_value create_file(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int rootfd;
  uint32_t mode = 0644;
  if (st_args(env, info, 2, 3, argv, "createFile(rootFd, path, mode?)") || st_get_fd(env, argv[0], &rootfd) < 0) return NULL;
  napi_get_value_uint32(env, argv[2], &mode); /* undefined: the default stays */
  size_t len;
  char *path = st_get_string(env, argv[1], "path", &len);
  if (!path) return NULL;
  st_error e;
  int fd = st_create_file(rootfd, path, len, mode, &e);
  free(path);
  if (fd < 0) {
    st_throw(env, &e);
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

static int get_num(napi_env env, napi_value obj, const char *key, double *out, int required) {
  napi_value v;
  napi_valuetype t;
  napi_get_named_property(env, obj, key, &v);
  napi_typeof(env, v, &t);
  if (t == napi_undefined && !required) return 1;
  if (t != napi_number) {
    char msg[128];
    snprintf(msg, sizeof msg, "meta.%s must be a number", key);
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", msg);
    return -1;
  }
  napi_get_value_double(env, v, out);
  return 0;
}

/* finishFile(fd, meta, path?): the optional path only names the file in errors. */
static napi_value finish_file(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  if (st_args(env, info, 2, 3, argv, "finishFile(fd, meta, path?)") || st_get_fd(env, argv[0], &fd) < 0) return NULL;
  double mode, uid, gid, msec, mnsec, asec = 0, ansec = 0;
  if (get_num(env, argv[1], "mode", &mode, 1) < 0 || get_num(env, argv[1], "uid", &uid, 1) < 0 ||
      get_num(env, argv[1], "gid", &gid, 1) < 0 || get_num(env, argv[1], "mtimeSec", &msec, 1) < 0 ||
      get_num(env, argv[1], "mtimeNsec", &mnsec, 1) < 0)
    return NULL;
  int ra = get_num(env, argv[1], "atimeSec", &asec, 0);
  if (ra < 0 || get_num(env, argv[1], "atimeNsec", &ansec, 0) < 0) return NULL;
  if (ra == 1) { /* no atime: use the mtime, so the tree is the same on every unpack */
    asec = msec;
    ansec = mnsec;
  }
  st_meta m = {(uint32_t)mode, (uint32_t)uid, (uint32_t)gid, (int64_t)asec, (int64_t)msec,
               (uint32_t)ansec, (uint32_t)mnsec, 0, NULL};
  napi_value xobj, names = NULL;
  napi_valuetype t;
  napi_get_named_property(env, argv[1], "xattrs", &xobj);
  napi_typeof(env, xobj, &t);
  uint32_t nx = 0;
  if (t == napi_object) {
    napi_get_property_names(env, xobj, &names);
    napi_get_array_length(env, names, &nx);
  }
  st_xattr *xs = calloc(nx ? nx : 1, sizeof *xs);
  char **keys = calloc(nx ? nx : 1, sizeof *keys);
  char *path = NULL;
  napi_value result = NULL;
  for (uint32_t i = 0; i < nx; i++) {
    napi_value k, v;
    bool is_buf;
    napi_get_element(env, names, i, &k);
    keys[i] = st_get_string(env, k, "xattr name", NULL);
    if (!keys[i]) goto out;
    napi_get_property(env, xobj, k, &v);
    napi_is_buffer(env, v, &is_buf);
    if (!is_buf) {
      st_throw_msg(env, "ERR_INVALID_ARGUMENT", "meta.xattrs values must be Buffers");
      goto out;
    }
    void *base;
    napi_get_buffer_info(env, v, &base, &xs[i].size);
    xs[i].value = base;
    xs[i].name = keys[i];
  }
  m.nxattrs = nx;
  m.xattrs = xs;
  napi_typeof(env, argv[2], &t); /* undefined when not given */
  if (t == napi_string && !(path = st_get_string(env, argv[2], "path", NULL))) goto out;
  st_error e;
  char fdname[32];
  snprintf(fdname, sizeof fdname, "fd %d", fd);
  if (st_finish_fd(fd, &m, path ? path : fdname, &e) < 0) st_throw(env, &e);
  else napi_get_undefined(env, &result);
out:
  for (uint32_t i = 0; i < nx; i++) free(keys[i]);
  free(keys);
  free(xs);
  free(path);
  return result;
}

/*
 * llistxattr (name NULL) or lgetxattr of `path` itself into *out (freed and replaced), sized by a
 * first call and retried while the list or value grows in between (ERANGE). Length, or -1 + errno.
 */
static ssize_t xattr_read(const char *path, const char *name, char **out) {
  for (;;) {
    ssize_t n = name ? lgetxattr(path, name, NULL, 0) : llistxattr(path, NULL, 0);
    if (n < 0) return -1;
    free(*out);
    *out = malloc((size_t)n + 1);
    ssize_t got = name ? lgetxattr(path, name, *out, (size_t)n) : llistxattr(path, *out, (size_t)n);
    if (got >= 0 || errno != ERANGE) return got;
  }
}

static napi_value lgetxattrs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (st_args(env, info, 1, 1, argv, "lgetxattrs(path)")) return NULL;
  char *path = st_get_string(env, argv[0], "path", NULL);
  if (!path) return NULL;
  napi_value result = NULL;
  char *names = NULL, *value = NULL;
  st_error e;
  ssize_t n = xattr_read(path, NULL, &names);
  if (n < 0) {
    st_fail(&e, ST_APPLY, errno, "llistxattr", path, "cannot list xattrs");
    st_throw(env, &e);
    goto out;
  }
  napi_create_object(env, &result);
  for (char *k = names; k < names + n; k += strlen(k) + 1) {
    ssize_t vn = xattr_read(path, k, &value);
    if (vn < 0) {
      if (errno == ENODATA) continue; /* removed meanwhile */
      st_fail(&e, ST_APPLY, errno, "lgetxattr", path, "cannot read xattr %s", k);
      st_throw(env, &e);
      result = NULL;
      goto out;
    }
    napi_value buf;
    void *dst;
    napi_create_buffer_copy(env, (size_t)vn, value, &dst, &buf);
    napi_set_named_property(env, result, k, buf);
  }
out:
  free(names);
  free(value);
  free(path);
  return result;
}

static napi_value lsetxattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (st_args(env, info, 3, 3, argv, "lsetxattr(path, name, value: Buffer)")) return NULL;
  bool is_buf = false;
  napi_is_buffer(env, argv[2], &is_buf);
  if (!is_buf) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "lsetxattr(path, name, value: Buffer)");
    return NULL;
  }
  char *path = st_get_string(env, argv[0], "path", NULL);
  if (!path) return NULL;
  char *name = st_get_string(env, argv[1], "xattr name", NULL);
  if (!name) {
    free(path);
    return NULL;
  }
  void *value;
  size_t size;
  napi_get_buffer_info(env, argv[2], &value, &size);
  if (lsetxattr(path, name, value, size, 0) < 0) {
    st_error e;
    st_fail(&e, ST_APPLY, errno, "lsetxattr", path, "cannot set xattr %s", name);
    st_throw(env, &e);
  }
  free(path);
  free(name);
  return NULL;
}

/* dropCache(fd, offset, length): POSIX_FADV_DONTNEED, advisory (dirty pages stay; errors ignored). */
static napi_value drop_cache(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t offset = 0, length = 0;
  if (st_args(env, info, 3, 3, argv, "dropCache(fd, offset, length)") || st_get_fd(env, argv[0], &fd) < 0) return NULL;
  if (napi_get_value_int64(env, argv[1], &offset) != napi_ok || napi_get_value_int64(env, argv[2], &length) != napi_ok || offset < 0 || length < 0) {
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", "dropCache(fd, offset, length) takes byte counts ≥ 0");
    return NULL;
  }
  posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_DONTNEED);
  return NULL;
}

napi_status st_init_files(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = st_export(env, exports, "openRoot", open_root)) != napi_ok) return s;
  if ((s = st_export(env, exports, "closeFd", close_fd)) != napi_ok) return s;
  if ((s = st_export(env, exports, "createFile", create_file)) != napi_ok) return s;
  if ((s = st_export(env, exports, "finishFile", finish_file)) != napi_ok) return s;
  if ((s = st_export(env, exports, "lgetxattrs", lgetxattrs)) != napi_ok) return s;
  if ((s = st_export(env, exports, "dropCache", drop_cache)) != napi_ok) return s;
  return st_export(env, exports, "lsetxattr", lsetxattr_js);
}
