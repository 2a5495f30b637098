/*
 * Mounts through the new mount API only. The legacy mount(2) option string is cut at one page
 * (util-linux then mounts a shorter stack without any error); fsconfig takes one lower per call.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif
#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

/* Overlayfs refuses more lowers than this (OVL_MAX_STACK). */
#define OVERLAY_MAX_LOWERS 500
/* fsconfig copies string values with strndup_user(value, 256): longer paths go by descriptor. */
#define FSCONFIG_MAX_STRING 255

/* Appends the fs context's log ("e overlay: …") to e->detail, so errors say what the kernel said. */
static void append_fs_log(int fsfd, st_error *e) {
  char line[512];
  for (int i = 0; i < 16; i++) {
    ssize_t n = read(fsfd, line, sizeof line - 1);
    if (n <= 0) break;
    line[n] = '\0';
    if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
    size_t used = strlen(e->detail);
    snprintf(e->detail + used, sizeof e->detail - used, " [kernel: %s]", line);
  }
}

static int config_path(int fsfd, const char *key, const char *path, const char *target, st_error *e) {
  if (strlen(path) <= FSCONFIG_MAX_STRING) {
    if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, key, path, 0) == 0) return 0;
  } else {
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      st_fail(e, ST_MOUNT, errno, "open", target, "overlay %s \"%s\"", key, path);
      return -1;
    }
    long r = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FD, key, NULL, fd);
    int err = errno;
    close(fd);
    errno = err;
    if (r == 0) return 0;
  }
  st_fail(e, ST_MOUNT, errno, "fsconfig", target, "overlay %s \"%s\" refused", key, path);
  append_fs_log(fsfd, e);
  return -1;
}

static int config_flag(int fsfd, const char *flag, int *rdonly, const char *target, st_error *e) {
  const char *eq = strchr(flag, '=');
  long r;
  if (strcmp(flag, "ro") == 0) *rdonly = 1;
  if (eq) {
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(eq - flag), flag);
    r = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, key, eq + 1, 0);
  } else {
    r = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, flag, NULL, 0);
  }
  if (r == 0) return 0;
  st_fail(e, ST_MOUNT, errno, "fsconfig", target, "overlay option \"%s\" refused", flag);
  append_fs_log(fsfd, e);
  return -1;
}

static int mount_overlay(const char *target, char **lowers, uint32_t nlowers, const char *upper, const char *work,
                         char **flags, uint32_t nflags, st_error *e) {
  if (nlowers == 0) {
    st_fail(e, ST_MOUNT, 0, NULL, target, "an overlay needs at least one lower directory");
    return -1;
  }
  if (nlowers > OVERLAY_MAX_LOWERS) {
    st_fail(e, ST_MOUNT, 0, NULL, target, "overlayfs stacks at most %d lower directories; %u were given",
            OVERLAY_MAX_LOWERS, nlowers);
    return -1;
  }
  int fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0) {
    st_fail(e, ST_MOUNT, errno, "fsopen", target, "cannot open an overlay filesystem context");
    return -1;
  }
  int rdonly = upper == NULL, mfd = -1, r = -1;
  for (uint32_t i = 0; i < nlowers; i++)
    if (config_path(fsfd, "lowerdir+", lowers[i], target, e) < 0) goto out;
  if (upper && config_path(fsfd, "upperdir", upper, target, e) < 0) goto out;
  if (work && config_path(fsfd, "workdir", work, target, e) < 0) goto out;
  for (uint32_t i = 0; i < nflags; i++)
    if (config_flag(fsfd, flags[i], &rdonly, target, e) < 0) goto out;
  if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
    st_fail(e, ST_MOUNT, errno, "fsconfig", target, "cannot create the overlay (%u lowers%s)", nlowers,
            upper ? ", with upper" : ", read-only");
    append_fs_log(fsfd, e);
    goto out;
  }
  mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, rdonly ? MOUNT_ATTR_RDONLY : 0);
  if (mfd < 0) {
    st_fail(e, ST_MOUNT, errno, "fsmount", target, "cannot make a mount of the overlay");
    append_fs_log(fsfd, e);
    goto out;
  }
  if (syscall(SYS_move_mount, mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    st_fail(e, ST_MOUNT, errno, "move_mount", target, "cannot attach the overlay");
    goto out;
  }
  r = 0;
out:
  if (mfd >= 0) close(mfd);
  close(fsfd);
  return r;
}

/* Reads a JS string[] into malloc'd strings; NULL (after throwing) on a bad element. */
static char **get_strings(napi_env env, napi_value arr, const char *what, uint32_t *n) {
  bool is_arr = false;
  napi_is_array(env, arr, &is_arr);
  if (!is_arr) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an array of strings", what);
    st_throw_msg(env, "ERR_INVALID_ARGUMENT", msg);
    return NULL;
  }
  napi_get_array_length(env, arr, n);
  char **out = calloc(*n ? *n : 1, sizeof *out);
  for (uint32_t i = 0; i < *n; i++) {
    napi_value el;
    napi_get_element(env, arr, i, &el);
    if (!(out[i] = st_get_string(env, el, what, NULL))) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_strings(char **s, uint32_t n) {
  if (!s) return;
  for (uint32_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

static char *get_optional_string(napi_env env, napi_value v, const char *what, int *failed) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return NULL;
  char *s = st_get_string(env, v, what, NULL);
  if (!s) *failed = 1;
  return s;
}

/* mountOverlayPaths(target, lowers[], upper|null, work|null, flags[]) */
static napi_value mount_overlay_js(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (st_args(env, info, 5, 5, argv, "mountOverlayPaths(target, lowers, upper, work, flags)")) return NULL;
  int failed = 0;
  uint32_t nl = 0, nf = 0;
  char *target = st_get_string(env, argv[0], "mount target", NULL);
  char **lowers = target ? get_strings(env, argv[1], "lowers", &nl) : NULL;
  char *upper = lowers ? get_optional_string(env, argv[2], "upper", &failed) : NULL;
  char *work = lowers && !failed ? get_optional_string(env, argv[3], "work", &failed) : NULL;
  char **flags = lowers && !failed ? get_strings(env, argv[4], "flags", &nf) : NULL;
  if (flags) {
    st_error e;
    if (mount_overlay(target, lowers, nl, upper, work, flags, nf, &e) < 0) st_throw(env, &e);
  }
  free(target);
  free_strings(lowers, nl);
  free(upper);
  free(work);
  free_strings(flags, nf);
  return NULL;
}

static napi_value bind_mount_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (st_args(env, info, 3, 3, argv, "bindMount(source, target, readonly)")) return NULL;
  bool readonly = false;
  napi_get_value_bool(env, argv[2], &readonly);
  char *source = st_get_string(env, argv[0], "bind source", NULL);
  char *target = source ? st_get_string(env, argv[1], "bind target", NULL) : NULL;
  if (!target) {
    free(source);
    return NULL;
  }
  st_error e;
  int fd = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0) {
    st_fail(&e, ST_MOUNT, errno, "open_tree", target, "cannot clone \"%s\" for a bind mount", source);
    st_throw(env, &e);
    goto out;
  }
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (readonly && syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    st_fail(&e, ST_MOUNT, errno, "mount_setattr", target, "cannot make the bind of \"%s\" read-only", source);
    st_throw(env, &e);
  } else if (syscall(SYS_move_mount, fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    st_fail(&e, ST_MOUNT, errno, "move_mount", target, "cannot attach the bind of \"%s\"", source);
    st_throw(env, &e);
  }
  close(fd);
out:
  free(source);
  free(target);
  return NULL;
}

/* mountErofs(source, target): a read-only EROFS mount of an image file, file-backed (kernel >= 6.12: no loop device). */
static napi_value mount_erofs_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (st_args(env, info, 2, 2, argv, "mountErofs(source, target)")) return NULL;
  char *source = st_get_string(env, argv[0], "erofs image", NULL);
  char *target = source ? st_get_string(env, argv[1], "mount target", NULL) : NULL;
  if (!target) {
    free(source);
    return NULL;
  }
  st_error e;
  int mfd = -1, failed = 1;
  int fsfd = (int)syscall(SYS_fsopen, "erofs", FSOPEN_CLOEXEC);
  if (fsfd < 0) {
    st_fail(&e, ST_MOUNT, errno, "fsopen", target, "cannot open an erofs filesystem context");
    goto out;
  }
  if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", source, 0) < 0) {
    st_fail(&e, ST_MOUNT, errno, "fsconfig", target, "erofs source \"%s\" refused", source);
    goto out;
  }
  if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
      syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
    st_fail(&e, ST_MOUNT, errno, "fsconfig", target, "cannot create the erofs mount of \"%s\"", source);
    append_fs_log(fsfd, &e);
    goto out;
  }
  mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
  if (mfd < 0) {
    st_fail(&e, ST_MOUNT, errno, "fsmount", target, "cannot make a mount of \"%s\"", source);
    goto out;
  }
  if (syscall(SYS_move_mount, mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    st_fail(&e, ST_MOUNT, errno, "move_mount", target, "cannot attach the erofs mount of \"%s\"", source);
    goto out;
  }
  failed = 0;
out:
  if (mfd >= 0) close(mfd);
  if (fsfd >= 0) close(fsfd);
  if (failed) st_throw(env, &e);
  free(source);
  free(target);
  return NULL;
}

static napi_value unmount_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (st_args(env, info, 1, 2, argv, "unmount(target, detach?)")) return NULL;
  bool detach = false;
  napi_get_value_bool(env, argv[1], &detach); /* undefined: false */
  char *target = st_get_string(env, argv[0], "mount target", NULL);
  if (!target) return NULL;
  if (syscall(SYS_umount2, target, (detach ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) < 0) {
    st_error e;
    st_fail(&e, ST_MOUNT, errno, "umount2", target, "cannot unmount");
    st_throw(env, &e);
  }
  free(target);
  return NULL;
}

napi_status st_init_mount(napi_env env, napi_value exports) {
  napi_status s;
  if ((s = st_export(env, exports, "mountOverlayPaths", mount_overlay_js)) != napi_ok) return s;
  if ((s = st_export(env, exports, "bindMount", bind_mount_js)) != napi_ok) return s;
  if ((s = st_export(env, exports, "mountErofs", mount_erofs_js)) != napi_ok) return s;
  return st_export(env, exports, "unmount", unmount_js);
}
