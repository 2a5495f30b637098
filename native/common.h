/*
 * Shared declarations of the stratum addon. C does system calls only: path policy beyond
 * "stay inside the root, never follow a symlink" lives in TypeScript.
 */
#ifndef STRATUM_COMMON_H
#define STRATUM_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

/* What kind of failure an st_error is; maps to the stable codes seen by TypeScript. */
enum st_kind { ST_OK = 0, ST_UNSAFE = 1, ST_APPLY = 2, ST_MOUNT = 3, ST_INVALID = 4 };

typedef struct {
  int kind;
  int err;             /* errno, 0 when the failure is a policy refusal */
  const char *syscall; /* static string or NULL */
  char path[PATH_MAX + 1];
  char detail[512];
} st_error;

/* Records an error; `detail` is printf-style and says why (the entry path is kept separately). */
void st_fail(st_error *e, int kind, int err, const char *syscall, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Rejects with (or throws) a JS Error built from e: {code, path, errno, errnoName, syscall}. */
napi_value st_error_value(napi_env env, const st_error *e);
void st_throw(napi_env env, const st_error *e);

/* ---- path resolution inside a root (resolve.c) ---- */

/*
 * A root-relative path split into a normalised parent ("" for the root itself) and a final
 * component ("." when the path names the root). Storage is owned by the struct.
 */
typedef struct {
  char buf[PATH_MAX + 2];
  const char *parent;
  const char *name;
} st_path;

/* Normalises `raw` (collapses "//" and "."); refuses "..", absolute paths, NUL bytes, overlong paths. */
int st_split(const char *raw, size_t len, st_path *out, st_error *e);

/* Per-batch resolution state: the root and the most recently used parent directory. */
typedef struct {
  int rootfd;
  int cached_fd;
  char cached_parent[PATH_MAX + 1];
} st_ctx;

void st_ctx_init(st_ctx *c, int rootfd);
void st_ctx_release(st_ctx *c);
/* Drops the cached parent (after anything that may have removed a directory). */
void st_ctx_forget(st_ctx *c);

/*
 * Returns an O_PATH descriptor of the parent directory of `p` (owned by the ctx: do not close),
 * resolved by the kernel beneath the root with no symlinks. With `create`, missing parents are
 * made (0755). Returns -1 with e set; with `missing_ok` a missing parent returns -2 and no error.
 */
int st_parent_fd(st_ctx *c, const st_path *p, const char *entry, int create, int missing_ok, st_error *e);

/* Same resolution, but a fresh descriptor the caller closes (hardlink targets, single calls). */
int st_open_parent(int rootfd, const st_path *p, const char *entry, int create, int missing_ok, st_error *e);

/* ---- operations (ops.c) ---- */

typedef struct {
  const char *name;
  const void *value;
  size_t size;
} st_xattr;

typedef struct {
  uint32_t mode, uid, gid;
  int64_t atime_sec, mtime_sec;
  uint32_t atime_nsec, mtime_nsec;
  uint32_t nxattrs;
  const st_xattr *xattrs;
} st_meta;

enum st_opcode {
  OP_MKDIR = 1,
  OP_FILE = 2,
  OP_SYMLINK = 3,
  OP_HARDLINK = 4,
  OP_MKNOD = 5,
  OP_REMOVE = 6,
  OP_REMOVE_CHILDREN = 7,
  OP_SETXATTR = 8,
  OP_TIMES = 9,
};
enum st_nodekind { NODE_CHAR = 1, NODE_BLOCK = 2, NODE_FIFO = 3 };

typedef struct {
  uint8_t op;
  uint8_t kind;
  const char *path;
  size_t path_len;
  const char *target; /* symlink target, hardlink target, or xattr name */
  size_t target_len;
  const void *data; /* file content or xattr value */
  size_t data_len;
  uint32_t major, minor;
  st_meta meta;
} st_op;

int st_apply_op(st_ctx *c, const st_op *op, st_error *e);

/* Opens path for writing (creating it, replacing a non-directory or removing a directory in the way). */
int st_create_file(int rootfd, const char *path, size_t len, uint32_t mode, st_error *e);
/* fchown, fchmod (after chown: it clears setuid), xattrs, futimens on an open regular file. */
int st_finish_fd(int fd, const st_meta *m, const char *path, st_error *e);

/* lsetxattr on parentfd/name itself, never following a final symlink. */
int st_setxattr_at(int pfd, const char *name, const char *xname, const void *value, size_t size);

/* ---- N-API registration (one per module file) ---- */
napi_status st_init_batch(napi_env env, napi_value exports);
napi_status st_init_files(napi_env env, napi_value exports);
napi_status st_init_mount(napi_env env, napi_value exports);
napi_status st_init_digest(napi_env env, napi_value exports);
napi_status st_init_tls(napi_env env, napi_value exports);

/* ---- a DigestWriter handle fed by other modules (digest.c) ---- */
typedef struct digest_handle digest_handle;
/* The handle behind a JS digest writer handle; NULL after throwing. */
digest_handle *st_digest_get(napi_env env, napi_value v);
/* Marks h busy for an append job; returns why it cannot take one (and leaves it alone), or NULL. */
const char *st_digest_claim(digest_handle *h);
void st_digest_release(digest_handle *h);
/* On the pool: write (short writes finished) + hash + drop-behind; 0 or errno (the handle is then poisoned). */
int st_digest_append(digest_handle *h, const void *buf, size_t len);


/*
 * Called first by every job this addon runs on libuv's thread pool: once batchPoolThreads() was
 * called, the thread (on its first job) switches itself to SCHED_BATCH (addon.c).
 */
void st_pool_thread_setup(void);

/* Small N-API helpers (addon.c). */
/*
 * Reads up to `capacity` arguments into argv (missing ones are undefined); fewer than `required`
 * throws ERR_INVALID_ARGUMENT with `usage` and returns -1.
 */
int st_args(napi_env env, napi_callback_info info, size_t required, size_t capacity, napi_value *argv, const char *usage);
/* Queues `execute` on the thread pool and `complete` after it; returns the promise `*deferred` settles. */
napi_value st_queue(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data,
                    napi_deferred *deferred, napi_async_work *work);
int st_get_fd(napi_env env, napi_value v, int *fd);
/* Copies a JS string into a malloc'd NUL-terminated buffer; refuses embedded NULs. NULL after throwing. */
char *st_get_string(napi_env env, napi_value v, const char *what, size_t *len_out);
napi_status st_export(napi_env env, napi_value exports, const char *name, napi_callback cb);
void st_throw_msg(napi_env env, const char *code, const char *msg);

#endif
