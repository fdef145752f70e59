/*
 * _interpose.c - libc file-I/O interposer for trainio.
 *
 * Loaded with LD_PRELOAD into every process of a training run.  Each wrapped
 * call is forwarded to the real libc function (dlsym(RTLD_NEXT)) and, unless
 * recording is off for this thread/process, written as a fixed 64-byte record
 * (plus its path) straight into the process's memory-mapped spool file, which
 * the kernel keeps whatever way the process ends.  Python, C and shell
 * processes alike: no drain, no flush.  docs/capture.md explains the design.
 *
 * Wrappers never change a call's semantics: same arguments, same return
 * value, errno as the real call left it.
 */

/* Fortify would turn read()/open() etc. into inline wrappers that clash with
 * our definitions, and _FILE_OFFSET_BITS=64 would rename open -> open64. */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#undef fread_unlocked /* an inline macro under -O with __USE_EXTERN_INLINES */

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LIKELY(x) __builtin_expect(!!(x), 1)

struct trainio_rec {
    int64_t start_ns, dur_ns, offset, requested, returned;
    int32_t tid, fd;
    uint32_t file_id;  /* per-process id of the open file behind fd; 0 = unknown */
    uint16_t path_len; /* 0 = no path */
    uint8_t op;        /* OP_*; written last: 0 = not committed */
    uint8_t kind;
    uint64_t path_off; /* file offset of the path bytes in the spool */
};
_Static_assert(sizeof(struct trainio_rec) == 64, "record ABI is 64 bytes");

enum { OP_OPEN = 1, OP_READ, OP_PREAD, OP_READV, OP_PREADV, OP_FREAD, OP_CLOSE,
       OP_STAT, OP_FSTAT, OP_MMAP, OP_FOPEN, OP_FCLOSE, OP_FDPATH, OP_MUNMAP };
enum { K_UNKNOWN = 0, K_REG, K_IPC, K_OTHER };

#define FD_MAX 65536
#define PATH_CAP 4096                 /* longer paths are truncated */

#ifndef __OPEN_NEEDS_MODE
#define __OPEN_NEEDS_MODE(fl) (((fl) & O_CREAT) != 0)
#endif

/* glibc entry points that the (non-fortified) headers do not declare. */
int __open_2(const char *, int);
int __open64_2(const char *, int);
int __openat_2(int, const char *, int);
int __openat64_2(int, const char *, int);
ssize_t __read_chk(int, void *, size_t, size_t);
ssize_t __pread_chk(int, void *, size_t, off_t, size_t);
ssize_t __pread64_chk(int, void *, size_t, off64_t, size_t);
size_t __fread_chk(void *, size_t, size_t, size_t, FILE *);
size_t __fread_unlocked_chk(void *, size_t, size_t, size_t, FILE *);
int __xstat(int, const char *, struct stat *);
int __xstat64(int, const char *, struct stat64 *);
int __lxstat(int, const char *, struct stat *);
int __lxstat64(int, const char *, struct stat64 *);
int __fxstat(int, int, struct stat *);
int __fxstat64(int, int, struct stat64 *);
int __fxstatat(int, int, const char *, struct stat *, int);
int __fxstatat64(int, int, const char *, struct stat64 *, int);

/* ---- real functions, resolved lazily (and eagerly in the constructor) ---- */

#define REAL_LIST(X)                                                          \
    X(open) X(open64) X(openat) X(openat64) X(__open_2) X(__open64_2)          \
    X(__openat_2) X(__openat64_2) X(creat) X(creat64) X(read) X(__read_chk)    \
    X(pread) X(pread64) X(__pread_chk) X(__pread64_chk) X(readv) X(preadv)     \
    X(preadv64) X(preadv2) X(preadv64v2) X(fread) X(fread_unlocked)            \
    X(__fread_chk) X(__fread_unlocked_chk) X(close) X(fopen) X(fopen64)        \
    X(fdopen) X(fclose) X(stat) X(stat64) X(lstat) X(lstat64) X(fstatat)       \
    X(fstatat64) X(statx) X(__xstat) X(__xstat64) X(__lxstat) X(__lxstat64)    \
    X(__fxstatat) X(__fxstatat64) X(fstat) X(fstat64) X(__fxstat)              \
    X(__fxstat64) X(mmap) X(mmap64) X(munmap) X(dup2) X(dup3) \
    X(recv) X(recvfrom) X(recvmsg)

#define DECL_REAL(n) static __typeof__(&n) real_##n;
REAL_LIST(DECL_REAL)

/* Benign race: concurrent resolvers store the same value. */
#define REAL(n) __extension__({                                               \
    __typeof__(&n) f_ = __atomic_load_n(&real_##n, __ATOMIC_RELAXED);         \
    if (UNLIKELY(!f_)) {                                                      \
        f_ = (__typeof__(&n))dlsym(RTLD_NEXT, #n);                            \
        __atomic_store_n(&real_##n, f_, __ATOMIC_RELAXED);                    \
    }                                                                         \
    f_; })

/* Declares `f`; a symbol missing from this libc behaves like ENOSYS. */
#define GET(n, fail)                                                          \
    __typeof__(&n) f = REAL(n);                                               \
    if (UNLIKELY(!f)) { errno = ENOSYS; return fail; }

/* ---- state ---- */

static TLS int t_in_hook;     /* inside our own bookkeeping: never record */
static TLS int t_suppress;    /* trainio_suppress_thread() */
static TLS int32_t t_tid;     /* cached gettid(); 0 = not yet known */

static int g_enabled = 1;
static unsigned char fd_kind[FD_MAX]; /* K_* per fd; 0 = not yet classified */
/* Each open/fopen/fdpath record gets a new file id, and every later record on
 * that fd carries it: readers map reads to paths without replaying fd reuse. */
static uint32_t fd_file[FD_MAX];
static uint32_t g_file_seq;

static inline int tracing(void)
{
    return !(t_in_hook | t_suppress) && __atomic_load_n(&g_enabled, __ATOMIC_RELAXED);
}

static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- time stamps ----
 *
 * Every record takes two time stamps, and clock_gettime is most of what a
 * record costs: about 70 ns where it runs (its vDSO data page is cold between
 * two samples), 12 of them per small-file sample.  Where the kernel's clock
 * source is the TSC, a stamp is the TSC itself (rdtsc: no memory access),
 * turned into CLOCK_MONOTONIC nanoseconds against a (TSC, clock) pair that
 * each thread renews every TSC_RENEW ticks (about a millisecond), at the rate
 * measured since the process started.  A pair is the clock read between two
 * TSC reads, kept only when they are close (no preemption or interrupt fell
 * in between), so that a pair is right to under a microsecond and the rate,
 * over at least TSC_RATE_MIN_NS, to a few parts in 10^5: over one renewal
 * period that is nanoseconds.  Until the rate is known, when no close pair
 * comes, and elsewhere, stamps are clock_gettime's. */

#define TSC_RENEW (1ull << 21)          /* ticks: ~0.7 ms at 3 GHz */
#define TSC_PAIR_MAX (1ull << 12)       /* ticks between the two TSC reads of a pair: ~1.5 us at 2.5 GHz */
#define TSC_RATE_MIN_NS 50000000        /* 50 ms of baseline before the rate is used */

static int g_tsc;                       /* 1: stamps from the TSC (clock source "tsc") */
static int64_t g_base_ns;               /* the process's first (clock, TSC) pair: the rate's baseline */
static uint64_t g_base_tsc;
static TLS uint64_t t_anchor_tsc;       /* this thread's last pair; 0 = none */
static TLS int64_t t_anchor_ns;
static TLS double t_ns_per_tick;

#ifdef HAVE_TSC
/* A (clock, TSC) pair read close together; 0 when three tries were each cut by a preemption. */
static int tsc_pair(int64_t *ns, uint64_t *tsc)
{
    for (int i = 0; i < 3; i++) {
        uint64_t before = __rdtsc();
        int64_t clock = mono_ns();
        uint64_t after = __rdtsc();
        if (after - before < TSC_PAIR_MAX) {
            *ns = clock;
            *tsc = before + (after - before) / 2;
            return 1;
        }
    }
    return 0;
}

static __attribute__((noinline)) int64_t tsc_renew(void)
{
    int64_t ns;
    uint64_t tsc;
    if (!tsc_pair(&ns, &tsc)) {
        t_anchor_tsc = 0; /* no close pair: this stamp is the clock's, the next one tries again */
        return mono_ns();
    }
    int64_t span = ns - g_base_ns;
    if (span < TSC_RATE_MIN_NS || tsc <= g_base_tsc) {
        t_anchor_tsc = 0; /* rate not known yet: this stamp is the clock's */
        return ns;
    }
    t_ns_per_tick = (double)span / (double)(tsc - g_base_tsc);
    t_anchor_tsc = tsc;
    t_anchor_ns = ns;
    return ns;
}
#endif

static inline int64_t now_ns(void)
{
#ifdef HAVE_TSC
    if (LIKELY(g_tsc)) {
        uint64_t since = __rdtsc() - t_anchor_tsc; /* huge when there is no anchor (0) or the TSC went back */
        if (LIKELY(since < TSC_RENEW)) return t_anchor_ns + (int64_t)((double)since * t_ns_per_tick);
        return tsc_renew();
    }
#endif
    return mono_ns();
}

static inline uint8_t classify(mode_t m)
{
    if (S_ISREG(m)) return K_REG;
    if (S_ISFIFO(m) || S_ISSOCK(m)) return K_IPC;
    return K_OTHER;
}

static inline uint8_t kind_get(int fd)
{
    return (fd >= 0 && fd < FD_MAX) ? __atomic_load_n(&fd_kind[fd], __ATOMIC_RELAXED) : 0;
}

static inline void kind_set(int fd, uint8_t k)
{
    if (fd >= 0 && fd < FD_MAX) {
        __atomic_store_n(&fd_kind[fd], k, __ATOMIC_RELAXED);
        if (!k) __atomic_store_n(&fd_file[fd], 0, __ATOMIC_RELAXED);
    }
}

/* fstat via the real libc symbol (ours would recurse into the recorder). */
static int real_fstat_any(int fd, struct stat *st)
{
    __typeof__(&fstat) f = REAL(fstat);
    return f ? f(fd, st) : (int)syscall(SYS_fstat, fd, st);
}

/* ---- the spool: a memory-mapped file that the kernel keeps when we die ----
 *
 * One file per process image ($TRAINIO_TRACE_DIR/spool/io-PID-START.spool),
 * created at the first record (a forked child that only closes fds and execs
 * makes none).  A header page, then segments, each reserved on disk with
 * posix_fallocate before it is mapped: a write into a mapped page can then
 * never hit a full disk (SIGBUS).  When a segment cannot be reserved the
 * process stops recording and the header says why.  Records are reserved with
 * one atomic add on their segment's cursor and committed by storing `op` last,
 * so a reader skips a record whose writer died half-way.  Paths live in path
 * segments of the same file; a record holds its path's file offset. */

#define SPOOL_MAGIC "TRAINIOC"
#define SPOOL_VERSION 2
#define HDR_SIZE 4096u
#define SEG_HDR 64u
#define SEG_MAGIC 0x31474553u /* "SEG1" */
#define MAX_SEGS 4096u
enum { SEG_RECS = 1, SEG_PATHS = 2 };
static const uint64_t SEG_INIT[3] = {0, 256u << 10, 64u << 10};
static const uint64_t SEG_MAX[3] = {0, 16u << 20, 1u << 20};

struct spool_hdr {
    char magic[8];
    uint32_t version, hdr_size, rec_size, seg_hdr_size;
    int32_t pid, ppid;
    int64_t start_ns;          /* image start, or fork time for a forked child */
    uint64_t untraced_rchar;   /* rchar before the interposer saw anything, plus its own reads */
    uint64_t dropped;          /* records that found no room in the spool */
    uint32_t stopped;          /* 1: a segment could not be reserved; see stop_reason */
    uint32_t forked;           /* 1: forked from a traced process (inherits its fds and file ids) */
    uint32_t cmdline_len;
    uint32_t tsc;              /* 1: time stamps from the TSC (see now_ns), 0: from clock_gettime */
    char stop_reason[128];
    char exe[512];
    char cmdline[2048];        /* NUL-separated arguments, truncated */
    uint64_t socket_bytes;     /* received by recv/recvfrom/recvmsg (not in rchar; not recorded one by one) */
};
_Static_assert(sizeof(struct spool_hdr) <= HDR_SIZE, "header fits its page");

struct seg_hdr {
    uint32_t magic, type;
    uint64_t size;             /* bytes, this header included */
    uint64_t cursor;           /* records (SEG_RECS) or bytes (SEG_PATHS) reserved */
    uint64_t pad[5];
};
_Static_assert(sizeof(struct seg_hdr) == SEG_HDR, "segment header is 64 bytes");

struct seg {
    char *base;                /* the mapping: segment header, then data */
    uint64_t size;             /* of the mapping */
    uint64_t cap;              /* records or bytes */
    uint64_t file_off;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* segment creation only */
static char g_dir[PATH_CAP];                               /* "" = not capturing: record nothing */
static int g_spool_state;                                  /* 0 not yet opened, 1 open, -1 unavailable */
static int g_spool_fd = -1;
static struct spool_hdr *g_hdr;
static struct seg g_segs[MAX_SEGS];
static unsigned g_nsegs, g_ntype[3];
static struct seg *g_cur[3];
static uint64_t g_file_end;
static int32_t g_pid;
static int64_t g_start_ns;
static int g_forked;
static uint64_t g_untraced; /* see spool_hdr.untraced_rchar */
static uint64_t g_socket_pending; /* socket bytes received before the spool existed */

static long raw_read_file(const char *path, char *buf, size_t cap)
{
    long n, total = 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    while ((size_t)total < cap && (n = syscall(SYS_read, fd, buf + total, cap - (size_t)total)) > 0)
        total += n;
    syscall(SYS_close, fd);
    g_untraced += (uint64_t)total; /* our own reads count in rchar but are not traced */
    return total;
}

static void stop(const char *why, int err)
{
    __atomic_store_n(&g_enabled, 0, __ATOMIC_RELAXED);
    if (g_hdr && !g_hdr->stopped) {
        snprintf(g_hdr->stop_reason, sizeof g_hdr->stop_reason, "%s: %s", why, strerror(err));
        __atomic_store_n(&g_hdr->stopped, 1, __ATOMIC_RELEASE);
    }
}

/* Reserve [off, off+len) on disk.  Past RLIMIT_FSIZE the kernel would send
 * SIGXFSZ, which kills a process that does not ignore it: check first. */
static int reserve_disk(int fd, uint64_t off, uint64_t len)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && off + len > lim.rlim_cur)
        return EFBIG;
    return posix_fallocate(fd, (off_t)off, (off_t)len);
}

static void *map_shared(int fd, uint64_t off, uint64_t len)
{
    __typeof__(&mmap) f = REAL(mmap);
    void *p = f ? f(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off) : MAP_FAILED;
    return p == MAP_FAILED ? NULL : p;
}

static int spool_open_locked(void)
{
    char path[PATH_CAP + 64];
    int fd, err;
    struct spool_hdr *h;
    long n;

    if (g_spool_state) return g_spool_state > 0;
    g_spool_state = -1;
    if (!g_dir[0]) return 0;
    snprintf(path, sizeof path, "%s/io-%d-%lld.spool", g_dir, (int)g_pid, (long long)g_start_ns);
    fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 && fd <= 2) { /* a closed stdin/stdout/stderr must not become the spool (tracer/stdfds.py) */
        int high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
        syscall(SYS_close, fd);
        fd = high;
    }
    if (fd < 0) {
        __atomic_store_n(&g_enabled, 0, __ATOMIC_RELAXED);
        return 0;
    }
    /* Held until the process ends: finalize sees a locked spool as a live process. */
    syscall(SYS_flock, fd, LOCK_EX);
    if ((err = reserve_disk(fd, 0, HDR_SIZE)) != 0 || !(h = map_shared(fd, 0, HDR_SIZE))) {
        /* An empty file is the one trace this process leaves: finalize reports it. */
        __atomic_store_n(&g_enabled, 0, __ATOMIC_RELAXED);
        return 0;
    }
    h->version = SPOOL_VERSION;
    h->hdr_size = HDR_SIZE;
    h->rec_size = sizeof(struct trainio_rec);
    h->seg_hdr_size = SEG_HDR;
    h->pid = g_pid;
    h->ppid = (int32_t)syscall(SYS_getppid);
    h->start_ns = g_start_ns;
    h->forked = (uint32_t)g_forked;
    h->tsc = (uint32_t)g_tsc;
    n = readlink("/proc/self/exe", h->exe, sizeof h->exe - 1);
    h->exe[n > 0 ? n : 0] = '\0';
    n = raw_read_file("/proc/self/cmdline", h->cmdline, sizeof h->cmdline);
    h->cmdline_len = n > 0 ? (uint32_t)n : 0;
    h->untraced_rchar = g_untraced;
    h->socket_bytes = __atomic_load_n(&g_socket_pending, __ATOMIC_RELAXED);
    memcpy(h->magic, SPOOL_MAGIC, 8); /* last: a header without it is incomplete */
    g_hdr = h;
    g_spool_fd = fd;
    g_file_end = HDR_SIZE;
    g_spool_state = 1;
    return 1;
}

/* Make a new current segment of `type` unless another thread already replaced
 * `seen`.  Returns 0 when recording must stop. */
static int new_segment(int type, struct seg *seen)
{
    int ok = 0, err;
    uint64_t size;
    struct seg *s;
    struct seg_hdr *sh;

    pthread_mutex_lock(&g_mu);
    if (__atomic_load_n(&g_cur[type], __ATOMIC_ACQUIRE) != seen) {
        ok = 1;
        goto out;
    }
    if (!spool_open_locked()) goto out;
    if (g_nsegs == MAX_SEGS) {
        stop("spool segment table full", ENOSPC);
        goto out;
    }
    size = SEG_INIT[type] << (g_ntype[type] < 16 ? g_ntype[type] : 16);
    if (size > SEG_MAX[type]) size = SEG_MAX[type];
    if ((err = reserve_disk(g_spool_fd, g_file_end, size)) != 0) {
        stop("cannot reserve spool space", err);
        goto out;
    }
    s = &g_segs[g_nsegs];
    if (!(s->base = map_shared(g_spool_fd, g_file_end, size))) {
        stop("cannot map spool segment", errno);
        goto out;
    }
    sh = (struct seg_hdr *)s->base;
    sh->type = (uint32_t)type;
    sh->size = size;
    __atomic_store_n(&sh->magic, SEG_MAGIC, __ATOMIC_RELEASE);
    s->size = size;
    s->cap = type == SEG_RECS ? (size - SEG_HDR) / sizeof(struct trainio_rec) : size - SEG_HDR;
    s->file_off = g_file_end;
    g_file_end += size;
    g_nsegs++;
    g_ntype[type]++;
    __atomic_store_n(&g_cur[type], s, __ATOMIC_RELEASE);
    ok = 1;
out:
    pthread_mutex_unlock(&g_mu);
    return ok;
}

static struct trainio_rec *reserve_rec(void)
{
    for (;;) {
        struct seg *s = __atomic_load_n(&g_cur[SEG_RECS], __ATOMIC_ACQUIRE);
        if (s) {
            uint64_t i = __atomic_fetch_add(&((struct seg_hdr *)s->base)->cursor, 1, __ATOMIC_RELAXED);
            if (i < s->cap) return (struct trainio_rec *)(s->base + SEG_HDR) + i;
        }
        if (!new_segment(SEG_RECS, s)) return NULL;
    }
}

/* File offset of `n` reserved path bytes (copied in), 0 when there is no room. */
static uint64_t store_path(const char *path, size_t n)
{
    for (;;) {
        struct seg *s = __atomic_load_n(&g_cur[SEG_PATHS], __ATOMIC_ACQUIRE);
        if (s) {
            uint64_t o = __atomic_fetch_add(&((struct seg_hdr *)s->base)->cursor, n, __ATOMIC_RELAXED);
            if (o + n <= s->cap) {
                memcpy(s->base + SEG_HDR + o, path, n);
                return s->file_off + SEG_HDR + o;
            }
        }
        if (!new_segment(SEG_PATHS, s)) return 0;
    }
}

/* Called after the real call with errno already saved by the caller.
 * t0 < 0 means "instant event": start = now, duration 0. */
static void record_file(uint8_t op, uint8_t kind, int fd, int64_t t0, int64_t off,
                        int64_t req, int64_t ret, const char *path, uint32_t file_id)
{
    int64_t t1 = now_ns();
    int prev = t_in_hook;
    struct trainio_rec *r;
    size_t plen = path ? strnlen(path, PATH_CAP) : 0;

    /* A close alone never creates a spool (fork-then-exec children close fds). */
    if (__atomic_load_n(&g_spool_state, __ATOMIC_RELAXED) == 0 && (op == OP_CLOSE || op == OP_FCLOSE))
        return;
    t_in_hook = 1;
    if (UNLIKELY(!t_tid)) t_tid = (int32_t)syscall(SYS_gettid);
    if (t0 < 0 || t1 < t0) t0 = t1; /* t1 < t0: an anchor renewed between two stamps moved by nanoseconds */
    if (fd >= 0 && fd < FD_MAX && !file_id) {
        if (path && (op == OP_FDPATH || ((op == OP_OPEN || op == OP_FOPEN) && ret >= 0))) {
            file_id = __atomic_add_fetch(&g_file_seq, 1, __ATOMIC_RELAXED);
            __atomic_store_n(&fd_file[fd], file_id, __ATOMIC_RELAXED);
        } else {
            file_id = __atomic_load_n(&fd_file[fd], __ATOMIC_RELAXED);
        }
    }
    /* Filled in place: a fresh segment is zeros, and `op` goes last. */
    if ((r = reserve_rec()) != NULL) {
        r->start_ns = t0;
        r->dur_ns = t1 - t0;
        r->offset = off;
        r->requested = req;
        r->returned = ret;
        r->tid = t_tid;
        r->fd = fd;
        r->file_id = file_id;
        r->kind = kind;
        if (plen && (r->path_off = store_path(path, plen)) != 0) r->path_len = (uint16_t)plen;
        __atomic_store_n(&r->op, op, __ATOMIC_RELEASE); /* commit */
    } else if (g_hdr) {
        __atomic_add_fetch(&g_hdr->dropped, 1, __ATOMIC_RELAXED);
    }
    t_in_hook = prev;
}

/* A record whose file id comes from its fd (0 = none). */
static inline void record(uint8_t op, uint8_t kind, int fd, int64_t t0, int64_t off,
                          int64_t req, int64_t ret, const char *path)
{
    record_file(op, kind, fd, t0, off, req, ret, path, 0);
}

/* First read on an fd we did not see opened (pipe, socket, inherited, dup'd):
 * classify it and emit an fdpath record so readers can be attributed. */
static __attribute__((noinline)) uint8_t discover(int fd)
{
    int e = errno;
    struct stat st;
    char link[32], path[PATH_CAP];
    ssize_t n;
    uint8_t k, expect = 0;

    t_in_hook = 1;
    if (real_fstat_any(fd, &st) != 0) { /* not open: the real call will fail */
        t_in_hook = 0;
        errno = e;
        return 0;
    }
    k = classify(st.st_mode);
    /* A pipe's or socket's name is its inode, as readlink would give it (DataLoaders take a new
     * socket for every batch they pass: readlink costs ~3 us, this nothing). */
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
        snprintf(path, sizeof path, "%s:[%lu]", S_ISSOCK(st.st_mode) ? "socket" : "pipe", (unsigned long)st.st_ino);
    } else {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof path - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    t_in_hook = 0;
    /* Only the thread that classifies the fd first emits the fdpath record. */
    if (__atomic_compare_exchange_n(&fd_kind[fd], &expect, k, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
        record(OP_FDPATH, k, fd, -1, -1, -1, -1, path);
    else
        k = expect;
    errno = e;
    return k;
}

static inline uint8_t kind_for_read(int fd)
{
    uint8_t k;
    if (fd < 0 || fd >= FD_MAX) return 0;
    k = __atomic_load_n(&fd_kind[fd], __ATOMIC_RELAXED);
    return k ? k : discover(fd);
}

/* Kind of a freshly opened fd without a syscall in the common case; paths
 * under /dev and /proc (ttys, /dev/stdin, /proc/self/fd/N) get an fstat. */
static uint8_t open_kind(int fd, int flags, const char *path)
{
    struct stat st;
    if (flags & (O_DIRECTORY | O_PATH)) return K_OTHER;
    if (path && (!strncmp(path, "/dev/", 5) || !strncmp(path, "/proc/", 6)))
        return real_fstat_any(fd, &st) == 0 ? classify(st.st_mode) : K_UNKNOWN;
    return K_REG;
}

/* ---- open family ---- */

static int open_done(int r, int64_t t0, int flags, const char *path)
{
    int e = errno;
    uint8_t k = 0;
    if (r >= 0) {
        t_in_hook = 1;
        k = open_kind(r, flags, path);
        t_in_hook = 0;
        kind_set(r, k);
    }
    record(OP_OPEN, k, r, t0, -1, flags, r, (r < 0 && e == EFAULT) ? NULL : path);
    errno = e;
    return r;
}

#define VA_MODE(flags)                                                        \
    mode_t mode = 0;                                                          \
    if (__OPEN_NEEDS_MODE(flags)) {                                           \
        va_list ap;                                                           \
        va_start(ap, flags);                                                  \
        mode = (mode_t)va_arg(ap, int);                                       \
        va_end(ap);                                                           \
    }

#define OPEN_BODY(n, fl, call)                                                \
    GET(n, -1);                                                               \
    if (!tracing()) return call;                                              \
    int64_t t0 = now_ns();                                                    \
    int r = call;                                                             \
    return open_done(r, t0, fl, path);

EXPORT int open(const char *path, int flags, ...) { VA_MODE(flags) OPEN_BODY(open, flags, f(path, flags, mode)) }
EXPORT int open64(const char *path, int flags, ...) { VA_MODE(flags) OPEN_BODY(open64, flags, f(path, flags, mode)) }
EXPORT int openat(int dfd, const char *path, int flags, ...) { VA_MODE(flags) OPEN_BODY(openat, flags, f(dfd, path, flags, mode)) }
EXPORT int openat64(int dfd, const char *path, int flags, ...) { VA_MODE(flags) OPEN_BODY(openat64, flags, f(dfd, path, flags, mode)) }
EXPORT int __open_2(const char *path, int flags) { OPEN_BODY(__open_2, flags, f(path, flags)) }
EXPORT int __open64_2(const char *path, int flags) { OPEN_BODY(__open64_2, flags, f(path, flags)) }
EXPORT int __openat_2(int dfd, const char *path, int flags) { OPEN_BODY(__openat_2, flags, f(dfd, path, flags)) }
EXPORT int __openat64_2(int dfd, const char *path, int flags) { OPEN_BODY(__openat64_2, flags, f(dfd, path, flags)) }
EXPORT int creat(const char *path, mode_t mode) { OPEN_BODY(creat, O_CREAT | O_WRONLY | O_TRUNC, f(path, mode)) }
EXPORT int creat64(const char *path, mode_t mode) { OPEN_BODY(creat64, O_CREAT | O_WRONLY | O_TRUNC, f(path, mode)) }

/* ---- read family ---- */

/* `req` is evaluated after the call (readv sums its iovecs only on success,
 * when the kernel has validated them). */
#define READ_BODY(n, op, off, req, call)                                      \
    GET(n, -1);                                                               \
    if (!tracing()) return call;                                              \
    uint8_t k = kind_for_read(fd);                                            \
    int64_t t0 = now_ns();                                                    \
    ssize_t r = call;                                                         \
    int e = errno;                                                            \
    record(op, k, fd, t0, off, req, r, NULL);                                 \
    errno = e;                                                                \
    return r;

static int64_t iov_sum(const struct iovec *iov, int cnt)
{
    int64_t s = 0;
    for (int i = 0; i < cnt; i++) s += (int64_t)iov[i].iov_len;
    return s;
}
#define IOV_REQ (r >= 0 ? iov_sum(iov, cnt) : -1)

EXPORT ssize_t read(int fd, void *buf, size_t n) { READ_BODY(read, OP_READ, -1, (int64_t)n, f(fd, buf, n)) }
EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t blen) { READ_BODY(__read_chk, OP_READ, -1, (int64_t)n, f(fd, buf, n, blen)) }
EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off) { READ_BODY(pread, OP_PREAD, off, (int64_t)n, f(fd, buf, n, off)) }
EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off) { READ_BODY(pread64, OP_PREAD, off, (int64_t)n, f(fd, buf, n, off)) }
EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t blen) { READ_BODY(__pread_chk, OP_PREAD, off, (int64_t)n, f(fd, buf, n, off, blen)) }
EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t blen) { READ_BODY(__pread64_chk, OP_PREAD, off, (int64_t)n, f(fd, buf, n, off, blen)) }
EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt) { READ_BODY(readv, OP_READV, -1, IOV_REQ, f(fd, iov, cnt)) }
EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off) { READ_BODY(preadv, OP_PREADV, off, IOV_REQ, f(fd, iov, cnt, off)) }
EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off) { READ_BODY(preadv64, OP_PREADV, off, IOV_REQ, f(fd, iov, cnt, off)) }
EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int fl) { READ_BODY(preadv2, OP_PREADV, off, IOV_REQ, f(fd, iov, cnt, off, fl)) }
EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int fl) { READ_BODY(preadv64v2, OP_PREADV, off, IOV_REQ, f(fd, iov, cnt, off, fl)) }

/* fileno_unlocked: no stream lock (fread_unlocked callers may hold it);
 * -1 for memory/cookie streams.  It may set errno, hence the save. */
#define FREAD_BODY(n, call)                                                   \
    GET(n, 0);                                                                \
    if (!tracing()) return call;                                              \
    int e = errno;                                                            \
    int fd = fp ? fileno_unlocked(fp) : -1;                                   \
    uint8_t k = kind_for_read(fd);                                            \
    errno = e;                                                                \
    int64_t t0 = now_ns();                                                    \
    size_t r = call;                                                          \
    e = errno;                                                                \
    record(OP_FREAD, k, fd, t0, -1, (int64_t)(size * cnt), (int64_t)(r * size), NULL); \
    errno = e;                                                                \
    return r;

EXPORT size_t fread(void *p, size_t size, size_t cnt, FILE *fp) { FREAD_BODY(fread, f(p, size, cnt, fp)) }
EXPORT size_t fread_unlocked(void *p, size_t size, size_t cnt, FILE *fp) { FREAD_BODY(fread_unlocked, f(p, size, cnt, fp)) }
EXPORT size_t __fread_chk(void *p, size_t plen, size_t size, size_t cnt, FILE *fp) { FREAD_BODY(__fread_chk, f(p, plen, size, cnt, fp)) }
EXPORT size_t __fread_unlocked_chk(void *p, size_t plen, size_t size, size_t cnt, FILE *fp) { FREAD_BODY(__fread_unlocked_chk, f(p, plen, size, cnt, fp)) }

/* Mappings of files, so that their munmap is recorded too (with the file's
 * id); anonymous munmaps (allocators) then cost one load.  A full table only
 * costs later munmap records. */
#define MAP_SLOTS 1024
static struct { uintptr_t addr; size_t len; uint32_t file_id; } g_maps[MAP_SLOTS];
static unsigned g_nmaps;
static pthread_mutex_t g_map_mu = PTHREAD_MUTEX_INITIALIZER;

static void map_add(void *addr, size_t len, int fd)
{
    pthread_mutex_lock(&g_map_mu);
    if (g_nmaps < MAP_SLOTS) {
        g_maps[g_nmaps].addr = (uintptr_t)addr;
        g_maps[g_nmaps].len = len;
        g_maps[g_nmaps].file_id = (fd >= 0 && fd < FD_MAX) ? __atomic_load_n(&fd_file[fd], __ATOMIC_RELAXED) : 0;
        __atomic_store_n(&g_nmaps, g_nmaps + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_map_mu);
}

/* The file id of the recorded mapping that starts at `addr`, removed from the
 * table; -1 when none does. */
static int64_t map_take(void *addr)
{
    int64_t id = -1;
    pthread_mutex_lock(&g_map_mu);
    for (unsigned i = 0; i < g_nmaps; i++) {
        if (g_maps[i].addr == (uintptr_t)addr) {
            id = g_maps[i].file_id;
            g_maps[i] = g_maps[g_nmaps - 1];
            __atomic_store_n(&g_nmaps, g_nmaps - 1, __ATOMIC_RELEASE);
            break;
        }
    }
    pthread_mutex_unlock(&g_map_mu);
    return id;
}

/* Anonymous and fd < 0 mappings (allocators) skip all bookkeeping. */
#define MMAP_BODY(n)                                                          \
    GET(n, MAP_FAILED);                                                       \
    if (fd < 0 || (flags & MAP_ANONYMOUS) || !tracing())                      \
        return f(addr, len, prot, flags, fd, off);                            \
    uint8_t k = kind_for_read(fd);                                            \
    int64_t t0 = now_ns();                                                    \
    void *r = f(addr, len, prot, flags, fd, off);                             \
    int e = errno;                                                            \
    if (r != MAP_FAILED && k == K_REG) map_add(r, len, fd);                   \
    record(OP_MMAP, k, fd, t0, off, (int64_t)len,                             \
           r == MAP_FAILED ? -1 : (int64_t)(intptr_t)r, NULL);                \
    errno = e;                                                                \
    return r;

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) { MMAP_BODY(mmap) }
EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) { MMAP_BODY(mmap64) }

/* Recorded only for mappings of files recorded by mmap (a whole mapping,
 * unmapped from its start): op munmap, the file's id, the length. */
EXPORT int munmap(void *addr, size_t len)
{
    GET(munmap, -1);
    if (!__atomic_load_n(&g_nmaps, __ATOMIC_ACQUIRE) || !tracing()) return f(addr, len);
    int64_t id = map_take(addr);
    int64_t t0 = now_ns();
    int r = f(addr, len);
    int e = errno;
    if (id >= 0) record_file(OP_MUNMAP, K_REG, -1, t0, -1, (int64_t)len, r, NULL, (uint32_t)id);
    errno = e;
    return r;
}

/* ---- socket receives: counted, not recorded (object clients trainio does not
 * hook move their data this way; the coverage counts it for them) ---- */

static inline void count_socket(ssize_t r)
{
    if (r > 0)
        __atomic_add_fetch(g_hdr ? &g_hdr->socket_bytes : &g_socket_pending, (uint64_t)r, __ATOMIC_RELAXED);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int fl)
{
    GET(recv, -1);
    ssize_t r = f(fd, buf, n, fl);
    if (tracing()) count_socket(r);
    return r;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int fl, struct sockaddr *a, socklen_t *al)
{
    GET(recvfrom, -1);
    ssize_t r = f(fd, buf, n, fl, a, al);
    if (tracing()) count_socket(r);
    return r;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int fl)
{
    GET(recvmsg, -1);
    ssize_t r = f(fd, m, fl);
    if (tracing()) count_socket(r);
    return r;
}

/* ---- close / stdio open+close ---- */

/* fd_kind is reset after the real close even when not tracing: the number
 * may be reused by a pipe/dup, which must be rediscovered.  (Resetting after
 * can at worst clobber a racing open's kind, costing one extra discovery.) */
EXPORT int close(int fd)
{
    GET(close, -1);
    uint8_t k = kind_get(fd);
    int64_t t0 = tracing() ? now_ns() : -1;
    int r = f(fd);
    int e = errno;
    if (t0 >= 0) record(OP_CLOSE, k, fd, t0, -1, -1, r, NULL);
    kind_set(fd, 0);
    errno = e;
    return r;
}

static int64_t fmode_flags(const char *m)
{
    int64_t fl;
    switch (m[0]) {
    case 'r': fl = O_RDONLY; break;
    case 'w': fl = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': fl = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return -1;
    }
    for (m++; *m && *m != ','; m++) {
        if (*m == '+') fl = (fl & ~(int64_t)O_ACCMODE) | O_RDWR;
        else if (*m == 'x') fl |= O_EXCL;
        else if (*m == 'e') fl |= O_CLOEXEC;
    }
    return fl;
}

static FILE *fopen_done(FILE *r, int64_t t0, const char *path, const char *mode)
{
    int e = errno;
    int fd = r ? fileno_unlocked(r) : -1;
    uint8_t k = 0;
    if (fd >= 0) {
        t_in_hook = 1;
        k = open_kind(fd, 0, path);
        t_in_hook = 0;
        kind_set(fd, k);
    }
    /* glibc parses `mode` before opening, so it is a valid string here. */
    record(OP_FOPEN, k, fd, t0, -1, mode ? fmode_flags(mode) : -1, fd,
           (!r && e == EFAULT) ? NULL : path);
    errno = e;
    return r;
}

#define FOPEN_BODY(n)                                                         \
    GET(n, NULL);                                                             \
    if (!tracing()) return f(path, mode);                                     \
    int64_t t0 = now_ns();                                                    \
    return fopen_done(f(path, mode), t0, path, mode);

EXPORT FILE *fopen(const char *path, const char *mode) { FOPEN_BODY(fopen) }
EXPORT FILE *fopen64(const char *path, const char *mode) { FOPEN_BODY(fopen64) }

/* fdopen wraps an existing fd: no path, kind stays as known (maybe 0). */
EXPORT FILE *fdopen(int fd, const char *mode)
{
    GET(fdopen, NULL);
    if (!tracing()) return f(fd, mode);
    int64_t t0 = now_ns();
    FILE *r = f(fd, mode);
    int e = errno;
    record(OP_FOPEN, kind_get(fd), fd, t0, -1, r ? fmode_flags(mode) : -1, r ? fd : -1, NULL);
    errno = e;
    return r;
}

EXPORT int fclose(FILE *fp)
{
    GET(fclose, EOF);
    int e = errno;
    int fd = fp ? fileno_unlocked(fp) : -1;
    uint8_t k = kind_get(fd);
    errno = e;
    int64_t t0 = tracing() ? now_ns() : -1;
    int r = f(fp);
    e = errno;
    if (t0 >= 0) record(OP_FCLOSE, k, fd, t0, -1, -1, r, NULL);
    kind_set(fd, 0);
    errno = e;
    return r;
}

/* Not recorded: only keep fd_kind honest when an fd number is replaced. */
EXPORT int dup2(int oldfd, int newfd)
{
    GET(dup2, -1);
    int r = f(oldfd, newfd);
    if (r >= 0 && oldfd != newfd) kind_set(newfd, 0);
    return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    GET(dup3, -1);
    int r = f(oldfd, newfd, flags);
    if (r >= 0) kind_set(newfd, 0);
    return r;
}

#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
static __typeof__(&close_range) real_close_range;

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    GET(close_range, -1);
    int r = f(first, last, flags);
    if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
        for (unsigned int fd = first; fd <= last && fd < FD_MAX; fd++) kind_set((int)fd, 0);
    return r;
}
#endif

/* ---- stat family ---- */

#define STAT_BODY(n, op, fdv, stp, mode_ok, modev, call)                      \
    GET(n, -1);                                                               \
    if (!tracing()) return call;                                              \
    int64_t t0 = now_ns();                                                    \
    int r = call;                                                             \
    int e = errno;                                                            \
    record(op, (r == 0 && (mode_ok)) ? classify(modev) : 0, fdv, t0, -1, -1, r, \
           (r < 0 && e == EFAULT) ? NULL : stp);                              \
    errno = e;                                                                \
    return r;

#define DIRFD(d) ((d) == AT_FDCWD ? -1 : (d))
#define PSTAT(n, call) STAT_BODY(n, OP_STAT, -1, path, 1, st->st_mode, call)
#define ATSTAT(n, call) STAT_BODY(n, OP_STAT, DIRFD(dfd), path, 1, st->st_mode, call)
#define FSTAT(n, call) STAT_BODY(n, OP_FSTAT, fd, (const char *)NULL, 1, st->st_mode, call)

EXPORT int stat(const char *path, struct stat *st) { PSTAT(stat, f(path, st)) }
EXPORT int stat64(const char *path, struct stat64 *st) { PSTAT(stat64, f(path, st)) }
EXPORT int lstat(const char *path, struct stat *st) { PSTAT(lstat, f(path, st)) }
EXPORT int lstat64(const char *path, struct stat64 *st) { PSTAT(lstat64, f(path, st)) }
EXPORT int fstatat(int dfd, const char *path, struct stat *st, int fl) { ATSTAT(fstatat, f(dfd, path, st, fl)) }
EXPORT int fstatat64(int dfd, const char *path, struct stat64 *st, int fl) { ATSTAT(fstatat64, f(dfd, path, st, fl)) }
EXPORT int statx(int dfd, const char *path, int fl, unsigned int mask, struct statx *st)
{
    STAT_BODY(statx, OP_STAT, DIRFD(dfd), path, st->stx_mask & STATX_TYPE, st->stx_mode,
              f(dfd, path, fl, mask, st))
}
/* Pre-2.33 ABI, still called by binaries (e.g. manylinux wheels) built
 * against older glibc. */
EXPORT int __xstat(int v, const char *path, struct stat *st) { PSTAT(__xstat, f(v, path, st)) }
EXPORT int __xstat64(int v, const char *path, struct stat64 *st) { PSTAT(__xstat64, f(v, path, st)) }
EXPORT int __lxstat(int v, const char *path, struct stat *st) { PSTAT(__lxstat, f(v, path, st)) }
EXPORT int __lxstat64(int v, const char *path, struct stat64 *st) { PSTAT(__lxstat64, f(v, path, st)) }
EXPORT int __fxstatat(int v, int dfd, const char *path, struct stat *st, int fl) { ATSTAT(__fxstatat, f(v, dfd, path, st, fl)) }
EXPORT int __fxstatat64(int v, int dfd, const char *path, struct stat64 *st, int fl) { ATSTAT(__fxstatat64, f(v, dfd, path, st, fl)) }
EXPORT int fstat(int fd, struct stat *st) { FSTAT(fstat, f(fd, st)) }
EXPORT int fstat64(int fd, struct stat64 *st) { FSTAT(fstat64, f(fd, st)) }
EXPORT int __fxstat(int v, int fd, struct stat *st) { FSTAT(__fxstat, f(v, fd, st)) }
EXPORT int __fxstat64(int v, int fd, struct stat64 *st) { FSTAT(__fxstat64, f(v, fd, st)) }

/* ---- exported control API ---- */

EXPORT int trainio_version(void) { return 2; }

/* "PID-START" of this process's spool (the Python recorder names its own spool
 * after it); 0 when not capturing. */
EXPORT int trainio_tag(char *buf, size_t cap)
{
    if (!g_dir[0]) return 0;
    snprintf(buf, cap, "%d-%lld", (int)g_pid, (long long)g_start_ns);
    return 1;
}

EXPORT void trainio_suppress_thread(int on) { t_suppress = on != 0; }

EXPORT void trainio_set_enabled(int on) { __atomic_store_n(&g_enabled, on != 0 && g_dir[0], __ATOMIC_RELAXED); }

/* ---- fork and init ---- */

/* Holding the mutex across fork() keeps the child's segment table consistent.
 * The child drops the parent's spool (its mapping and fd are the parent's)
 * and starts its own at its first record. */
static void atfork_prepare(void) { pthread_mutex_lock(&g_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_mu); }
static void atfork_child(void)
{
    pthread_mutex_init(&g_mu, NULL);
    pthread_mutex_init(&g_map_mu, NULL); /* the mappings themselves are inherited */
    for (unsigned i = 0; i < g_nsegs; i++) syscall(SYS_munmap, g_segs[i].base, g_segs[i].size);
    if (g_hdr) syscall(SYS_munmap, g_hdr, HDR_SIZE);
    if (g_spool_fd >= 0) syscall(SYS_close, g_spool_fd); /* and with it our share of the lock */
    memset(g_cur, 0, sizeof g_cur);
    memset(g_ntype, 0, sizeof g_ntype);
    g_nsegs = 0;
    g_hdr = NULL;
    g_spool_fd = -1;
    g_spool_state = g_dir[0] ? 0 : -1;
    __atomic_store_n(&g_enabled, g_dir[0] != 0, __ATOMIC_RELAXED);
    g_pid = (int32_t)syscall(SYS_getpid);
    g_start_ns = mono_ns();
    g_untraced = 0; /* a forked child's counters start at zero */
    g_forked = 1;
    t_tid = 0;
}

#define RESOLVE_REAL(n) (void)REAL(n);

__attribute__((constructor)) static void trainio_init(void)
{
    const char *dir;
    char buf[512];
    long n;

    t_in_hook = 1;
    g_pid = (int32_t)syscall(SYS_getpid);
    g_start_ns = mono_ns();
    /* rchar when this image started: an exec keeps the pid and its counters,
     * and the dynamic loader reads before any constructor runs. */
    n = raw_read_file("/proc/self/io", buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = '\0';
        if (strncmp(buf, "rchar: ", 7) == 0) g_untraced += strtoull(buf + 7, NULL, 10);
    }
    dir = getenv("TRAINIO_TRACE_DIR");
    if (dir && *dir && strlen(dir) + 7 < sizeof g_dir) {
        snprintf(g_dir, sizeof g_dir, "%s/spool", dir);
#ifdef HAVE_TSC
        /* The TSC stands in for the clock only where the kernel itself trusts it as its clock
         * source (constant rate, in step across CPUs); TRAINIO_TSC=0 turns it off. */
        n = raw_read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource", buf, sizeof buf - 1);
        const char *off = getenv("TRAINIO_TSC");
        g_tsc = n >= 3 && strncmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n') && !(off && strcmp(off, "0") == 0)
                && tsc_pair(&g_base_ns, &g_base_tsc);
#endif
    } else {
        g_enabled = 0; /* not under `tracer capture`: inert */
        g_spool_state = -1;
    }
    REAL_LIST(RESOLVE_REAL)
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    t_in_hook = 0;
}
