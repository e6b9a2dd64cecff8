/*
 * fake_nvml.c: a fake libnvidia-ml.so.1 for greentop's tests.
 *
 * It exports the subset of NVML's C interface that greentop and pynvml use, with NVML's real
 * signatures and return codes, and reports power and energy from a scripted power profile, so
 * a test can compare what greentop measured against the exact truth.
 *
 * Build (tests/fakes/nvml.py: build_fake_nvml does this):
 *   cc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1 -O2 -ffp-contract=off \
 *      -o libnvidia-ml.so.1 fake_nvml.c -lm
 * The soname matters: once this file is loaded (ctypes.CDLL(path, RTLD_GLOBAL) or
 * LD_LIBRARY_PATH), a later dlopen("libnvidia-ml.so.1") resolves to it.
 *
 * Configuration: the file named by $GREENTOP_FAKE_NVML_CONFIG, read by nvmlInit* each time the
 * init reference count goes from 0 to 1. No variable: 1 device at a constant 100 W. The format
 * (one directive a line, '#' starts a comment) is documented in tests/fakes/nvml.py.
 *
 * Semantics (mirrored exactly, floating-point operation for operation, by
 * tests/fakes/nvml.py: expected_energy_mj / expected_power_mw):
 *   E(t)  energy in J of the profile from the epoch to t s after it (PowerProfile.energy_j with
 *         repeat=True); for t < 0, E(t) = P(0) * t (the device drew the profile's power at 0
 *         before the epoch).
 *   q     last refresh instant = floor((now - epoch) / update) * update, integer ns.
 *   total energy (mJ)         = energy_start_mj + floor(E(q) * 1000 + 1e-3)   (clamped at 0)
 *   power usage (mW)          = floor((E(q) - E(q - update)) / update * 1000 + 1e-3)
 *   POWER_INSTANT (186) (mW)  = power usage
 *   POWER_AVERAGE (185) (mW)  = same over the 1 s window ending at q
 *   field timestamp (µs)      = (epoch + q) / 1000, i.e. CLOCK_MONOTONIC µs of the refresh
 * The +1e-3 (one µJ, one µW) absorbs floating-point error so a constant 100 W reads 100000 mW.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__) && !defined(__clang__)
/* The Python mirror must see the same roundings: never fuse a*b+c into one FMA. */
#pragma GCC optimize("fp-contract=off")
#endif

#define EXPORT __attribute__((visibility("default")))

/* ---- NVML's types and constants (values from nvml.h) ---------------------------------- */

typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_ALREADY_INITIALIZED 5
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_INSUFFICIENT_POWER 8
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_IRQ_ISSUE 11
#define NVML_ERROR_LIBRARY_NOT_FOUND 12
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_ERROR_CORRUPTED_INFOROM 14
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_RESET_REQUIRED 16
#define NVML_ERROR_OPERATING_SYSTEM 17
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH 18
#define NVML_ERROR_IN_USE 19
#define NVML_ERROR_MEMORY 20
#define NVML_ERROR_NO_DATA 21
#define NVML_ERROR_UNKNOWN 999

#define NVML_FI_DEV_POWER_AVERAGE 185
#define NVML_FI_DEV_POWER_INSTANT 186
#define NVML_FI_MAX 308

typedef enum {
    NVML_VALUE_TYPE_DOUBLE = 0,
    NVML_VALUE_TYPE_UNSIGNED_INT = 1,
    NVML_VALUE_TYPE_UNSIGNED_LONG = 2,
    NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3,
    NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4,
    NVML_VALUE_TYPE_SIGNED_INT = 5,
    NVML_VALUE_TYPE_UNSIGNED_SHORT = 6,
} nvmlValueType_t;

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    signed int siVal;
    unsigned short usVal;
} nvmlValue_t;

/* 40 bytes on LP64, the same layout as pynvml's c_nvmlFieldValue_t. */
typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;   /* µs; here CLOCK_MONOTONIC of the refresh that produced the value */
    long long latencyUsec; /* µs spent producing the value */
    nvmlValueType_t valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

_Static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t must be 40 bytes");

/* The handle is a pointer to one of these, as in NVML (an opaque struct nvmlDevice_st *). */
struct nvmlDevice_st {
    unsigned int index;
};
typedef struct nvmlDevice_st *nvmlDevice_t;

/* ---- configuration -------------------------------------------------------------------- */

#define FAKE_MAX_DEVICES 64
#define FAKE_NAME_LEN 96

struct fake_device {
    char name[FAKE_NAME_LEN];
    unsigned int mig;             /* current (and pending) MIG mode */
    unsigned int power_limit_mw;  /* mW */
    unsigned long long energy_start_mj; /* counter at the epoch, mJ */
    long long power_stall_us;     /* sleep inside this device's power and field reads, µs */
    int nseg;                     /* segments of the profile, cycling for ever */
    double *seg_duration_s;       /* [nseg] */
    double *seg_power_w;          /* [nseg] */
    double *starts_s;             /* [nseg + 1], cumulative, as PowerProfile._starts_s */
    double *energy_at_start_j;    /* [nseg + 1], as PowerProfile._energy_at_start_j */
};

struct fake_state {
    unsigned int devices;
    long long epoch_ns;       /* CLOCK_MONOTONIC ns at which every profile starts */
    long long update_ns;      /* refresh period of power and energy, ns */
    long long energy_cost_us; /* busy-wait inside nvmlDeviceGetTotalEnergyConsumption, µs */
    long long power_cost_us;  /* busy-wait inside nvmlDeviceGetPowerUsage, µs */
    int fields;               /* 0: every field value is NOT_SUPPORTED */
    int energy;               /* 0: nvmlDeviceGetTotalEnergyConsumption is NOT_SUPPORTED */
    int init_error;           /* nonzero: nvmlInit* returns it */
    struct fake_device dev[FAKE_MAX_DEVICES];
};

static struct nvmlDevice_st g_handles[FAKE_MAX_DEVICES];

/* Published with __atomic stores: readers never see a half-built state. Old states are leaked
 * on purpose (a few KiB per re-read), so a thread still reading one never reads freed memory. */
static struct fake_state *g_state;
static unsigned int g_refcount; /* written under g_init_lock, read atomically */
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static long long g_first_init_ns = -1;

static unsigned long long g_calls[3]; /* power usage, energy, field values */

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void busy_wait_us(long long us)
{
    if (us <= 0)
        return;
    long long deadline = now_ns() + us * 1000LL;
    while (now_ns() < deadline) {
    }
}

/* A driver call blocked in the kernel (waiting on the GPU), not a busy CPU: it sleeps. */
static void sleep_us(long long us)
{
    if (us <= 0)
        return;
    struct timespec ts = {(time_t)(us / 1000000LL), (long)(us % 1000000LL) * 1000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int set_profile(struct fake_device *d, int nseg, const double *dur, const double *pw)
{
    double *buf = malloc(sizeof(double) * (size_t)(4 * nseg + 2));
    if (!buf)
        return -1;
    d->nseg = nseg;
    d->seg_duration_s = buf;
    d->seg_power_w = buf + nseg;
    d->starts_s = buf + 2 * nseg;
    d->energy_at_start_j = buf + 3 * nseg + 1;
    d->starts_s[0] = 0.0;
    d->energy_at_start_j[0] = 0.0;
    for (int i = 0; i < nseg; i++) {
        d->seg_duration_s[i] = dur[i];
        d->seg_power_w[i] = pw[i];
        /* Same order of operations as PowerProfile.__post_init__. */
        d->energy_at_start_j[i + 1] = d->energy_at_start_j[i] + dur[i] * pw[i];
        d->starts_s[i + 1] = d->starts_s[i] + dur[i];
    }
    return 0;
}

static void set_defaults(struct fake_state *s)
{
    memset(s, 0, sizeof(*s));
    s->devices = 1;
    s->epoch_ns = -1; /* unset: the time of the first init */
    s->update_ns = 100LL * 1000000LL;
    s->energy_cost_us = 3900;
    s->power_cost_us = 0;
    s->fields = 1;
    s->energy = 1;
    s->init_error = 0;
    for (int i = 0; i < FAKE_MAX_DEVICES; i++) {
        snprintf(s->dev[i].name, FAKE_NAME_LEN, "Fake GPU %d", i);
        s->dev[i].power_limit_mw = 700000;
        s->dev[i].nseg = 0; /* filled with the constant 100 W after parsing */
    }
}

static void free_state(struct fake_state *s)
{
    if (!s)
        return;
    for (int i = 0; i < FAKE_MAX_DEVICES; i++)
        free(s->dev[i].seg_duration_s);
    free(s);
}

/* -- a tiny tokenizer over one line ------------------------------------------------------- */

static char *skip_ws(char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Returns the next whitespace-delimited word (NUL-terminated in place), or NULL at the end. */
static char *next_word(char **cursor)
{
    char *p = skip_ws(*cursor);
    if (!*p) {
        *cursor = p;
        return NULL;
    }
    char *w = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
        p++;
    if (*p)
        *p++ = '\0';
    *cursor = p;
    return w;
}

static int parse_ll(const char *w, long long *out)
{
    if (!w)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(w, &end, 0);
    if (errno || end == w || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *w, double *out)
{
    if (!w)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(w, &end);
    if (errno || end == w || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

#define CONFIG_FAIL(...)                                                                      \
    do {                                                                                      \
        fprintf(stderr, "fake_nvml: %s:%d: ", path, lineno);                                  \
        fprintf(stderr, __VA_ARGS__);                                                         \
        fputc('\n', stderr);                                                                  \
        goto fail;                                                                            \
    } while (0)

/* Reads the config at path into *s (already holding defaults). Returns 0, or -1 after printing
 * one line to stderr. */
static int parse_config(const char *path, struct fake_state *s)
{
    int lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    double *dur = NULL, *pw = NULL;
    long long max_dev_named = -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fake_nvml: cannot open config %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *cur = line;
        char *key = next_word(&cur);
        if (!key)
            continue;
        long long v, dev;
        if (!strcmp(key, "devices") || !strcmp(key, "epoch_ns") || !strcmp(key, "update_ms") ||
            !strcmp(key, "energy_cost_us") || !strcmp(key, "power_cost_us") ||
            !strcmp(key, "fields") || !strcmp(key, "energy") || !strcmp(key, "init_error")) {
            if (parse_ll(next_word(&cur), &v) || next_word(&cur))
                CONFIG_FAIL("%s takes one integer", key);
            if (!strcmp(key, "devices")) {
                if (v < 0 || v > FAKE_MAX_DEVICES)
                    CONFIG_FAIL("devices must be 0..%d", FAKE_MAX_DEVICES);
                s->devices = (unsigned int)v;
            } else if (!strcmp(key, "epoch_ns")) {
                s->epoch_ns = v;
            } else if (!strcmp(key, "update_ms")) {
                if (v <= 0)
                    CONFIG_FAIL("update_ms must be positive");
                s->update_ns = v * 1000000LL;
            } else if (!strcmp(key, "energy_cost_us")) {
                s->energy_cost_us = v;
            } else if (!strcmp(key, "power_cost_us")) {
                s->power_cost_us = v;
            } else if (!strcmp(key, "fields")) {
                s->fields = v != 0;
            } else if (!strcmp(key, "energy")) {
                s->energy = v != 0;
            } else {
                s->init_error = (int)v;
            }
            continue;
        }
        if (strcmp(key, "mig") && strcmp(key, "name") && strcmp(key, "power_limit_mw") &&
            strcmp(key, "energy_start_mj") && strcmp(key, "profile") && strcmp(key, "power_stall_us"))
            CONFIG_FAIL("unknown directive '%s'", key);
        if (parse_ll(next_word(&cur), &dev) || dev < 0 || dev >= FAKE_MAX_DEVICES)
            CONFIG_FAIL("%s needs a device index 0..%d first", key, FAKE_MAX_DEVICES - 1);
        if (dev > max_dev_named)
            max_dev_named = dev;
        struct fake_device *d = &s->dev[dev];
        if (!strcmp(key, "name")) {
            char *name = skip_ws(cur);
            size_t n = strlen(name);
            while (n && (name[n - 1] == ' ' || name[n - 1] == '\t' || name[n - 1] == '\r' ||
                         name[n - 1] == '\n'))
                name[--n] = '\0';
            if (!n || n >= FAKE_NAME_LEN)
                CONFIG_FAIL("name must be 1..%d characters", FAKE_NAME_LEN - 1);
            memcpy(d->name, name, n + 1);
        } else if (!strcmp(key, "profile")) {
            int n = 0, nalloc = 16;
            free(dur);
            free(pw);
            dur = malloc(sizeof(double) * nalloc);
            pw = malloc(sizeof(double) * nalloc);
            if (!dur || !pw)
                CONFIG_FAIL("out of memory");
            for (;;) {
                char *w1 = next_word(&cur);
                if (!w1)
                    break;
                char *w2 = next_word(&cur);
                if (!w2)
                    CONFIG_FAIL("profile needs (duration_s, power_w) pairs");
                if (n == nalloc) {
                    nalloc *= 2;
                    double *nd = realloc(dur, sizeof(double) * nalloc);
                    if (nd)
                        dur = nd;
                    double *np = realloc(pw, sizeof(double) * nalloc);
                    if (np)
                        pw = np;
                    if (!nd || !np)
                        CONFIG_FAIL("out of memory");
                }
                if (parse_double(w1, &dur[n]) || parse_double(w2, &pw[n]))
                    CONFIG_FAIL("profile values must be numbers");
                if (!(dur[n] > 0) || !(pw[n] >= 0))
                    CONFIG_FAIL("bad segment (%s, %s): duration > 0 and power >= 0", w1, w2);
                n++;
            }
            if (!n)
                CONFIG_FAIL("a profile needs at least one segment");
            free(d->seg_duration_s);
            d->seg_duration_s = NULL;
            if (set_profile(d, n, dur, pw))
                CONFIG_FAIL("out of memory");
        } else {
            if (parse_ll(next_word(&cur), &v) || next_word(&cur))
                CONFIG_FAIL("%s takes a device index and one integer", key);
            if (!strcmp(key, "mig")) {
                d->mig = v != 0;
            } else if (!strcmp(key, "power_limit_mw")) {
                if (v < 0 || v > 0xFFFFFFFFLL)
                    CONFIG_FAIL("power_limit_mw out of range");
                d->power_limit_mw = (unsigned int)v;
            } else if (!strcmp(key, "power_stall_us")) {
                if (v < 0)
                    CONFIG_FAIL("power_stall_us must be >= 0");
                d->power_stall_us = v;
            } else {
                if (v < 0)
                    CONFIG_FAIL("energy_start_mj must be >= 0");
                d->energy_start_mj = (unsigned long long)v;
            }
        }
    }
    if (max_dev_named >= (long long)s->devices) {
        lineno = 0;
        CONFIG_FAIL("a directive names device %lld but there are %u devices", max_dev_named,
                    s->devices);
    }
    free(line);
    free(dur);
    free(pw);
    fclose(f);
    return 0;
fail:
    free(line);
    free(dur);
    free(pw);
    fclose(f);
    return -1;
}

/* Builds a fresh state from the environment. Returns NULL after printing why. */
static struct fake_state *load_state(void)
{
    struct fake_state *s = malloc(sizeof(*s));
    if (!s) {
        fprintf(stderr, "fake_nvml: out of memory\n");
        return NULL;
    }
    set_defaults(s);
    const char *path = getenv("GREENTOP_FAKE_NVML_CONFIG");
    if (path && *path && parse_config(path, s)) {
        free_state(s);
        return NULL;
    }
    static const double dur100 = 1.0, pw100 = 100.0; /* PowerProfile.constant(100.0) */
    for (int i = 0; i < FAKE_MAX_DEVICES; i++) {
        if (!s->dev[i].nseg && set_profile(&s->dev[i], 1, &dur100, &pw100)) {
            free_state(s);
            return NULL;
        }
    }
    return s;
}

static struct fake_state *state_if_initialised(void)
{
    if (!__atomic_load_n(&g_refcount, __ATOMIC_ACQUIRE))
        return NULL;
    return __atomic_load_n(&g_state, __ATOMIC_ACQUIRE);
}

/* ---- the profile model ---------------------------------------------------------------- */

/* Python's float floor division (Objects/floatobject.c, _float_div_mod), so that the number of
 * whole cycles matches PowerProfile.energy_j's ``t_s // period`` bit for bit. */
static double py_floordiv(double vx, double wx)
{
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod) {
        if ((wx < 0) != (mod < 0)) {
            mod += wx;
            div -= 1.0;
        }
    }
    double floordiv;
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5)
            floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, vx / wx);
    }
    return floordiv;
}

/* E(t): energy in J from the epoch to t_s seconds after it; PowerProfile.energy_j with
 * repeat=True, operation for operation; before the epoch the power at 0 extends backwards. */
static double profile_energy_j(const struct fake_device *d, double t_s)
{
    int n = d->nseg;
    if (t_s < 0)
        return d->seg_power_w[0] * t_s;
    if (t_s <= 0)
        return 0.0;
    double period = d->starts_s[n], total = d->energy_at_start_j[n];
    long long cycles = (long long)py_floordiv(t_s, period);
    double base = (double)cycles * total;
    t_s -= (double)cycles * period;
    /* bisect_right(starts, t_s) - 1 */
    int lo = 0, hi = n + 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (t_s < d->starts_s[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    int i = lo - 1;
    if (i > n - 1)
        i = n - 1;
    /* Python's negative index, should rounding ever put t_s below 0 */
    int ie = i < 0 ? i + n + 1 : i;
    int is = i < 0 ? i + n : i;
    return base + d->energy_at_start_j[ie] + (t_s - d->starts_s[ie]) * d->seg_power_w[is];
}

static long long floordiv_ll(long long a, long long b)
{
    long long q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Last refresh instant, ns after the epoch. */
static long long refresh_q_ns(const struct fake_state *s, long long t_ns)
{
    return floordiv_ll(t_ns - s->epoch_ns, s->update_ns) * s->update_ns;
}

/* Average power in mW over the window_ns ending at q_ns (ns after the epoch), rounded down. */
static unsigned int window_power_mw(const struct fake_device *d, long long q_ns, long long window_ns)
{
    double e1 = profile_energy_j(d, (double)q_ns / 1e9);
    double e0 = profile_energy_j(d, (double)(q_ns - window_ns) / 1e9);
    double mw = floor((e1 - e0) / ((double)window_ns / 1e9) * 1000.0 + 1e-3);
    if (!(mw > 0))
        return 0;
    if (mw > 4294967295.0)
        return 0xFFFFFFFFu;
    return (unsigned int)mw;
}

static unsigned long long energy_counter_mj(const struct fake_device *d, long long q_ns)
{
    double mj = floor(profile_energy_j(d, (double)q_ns / 1e9) * 1000.0 + 1e-3);
    long long total = (long long)d->energy_start_mj + (long long)mj;
    return total < 0 ? 0 : (unsigned long long)total;
}

/* Checks the handle; on success stores the device's config in *out. */
static nvmlReturn_t lookup(nvmlDevice_t device, struct fake_state **st, struct fake_device **out)
{
    struct fake_state *s = state_if_initialised();
    if (!s)
        return NVML_ERROR_UNINITIALIZED;
    if (device < &g_handles[0] || device >= &g_handles[FAKE_MAX_DEVICES] ||
        device->index >= s->devices)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (st)
        *st = s;
    *out = &s->dev[device->index];
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *src, char *dst, unsigned int length)
{
    if (!dst)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(src);
    if (length < n + 1)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n + 1);
    return NVML_SUCCESS;
}

/* ---- init and shutdown ---------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    nvmlReturn_t ret = NVML_SUCCESS;
    pthread_mutex_lock(&g_init_lock);
    for (int i = 0; i < FAKE_MAX_DEVICES; i++)
        g_handles[i].index = (unsigned int)i;
    if (g_refcount == 0) {
        struct fake_state *s = load_state();
        if (!s) {
            ret = NVML_ERROR_UNKNOWN;
            goto out;
        }
        if (s->init_error) {
            ret = s->init_error;
            free_state(s);
            goto out;
        }
        if (g_first_init_ns < 0)
            g_first_init_ns = now_ns();
        if (s->epoch_ns < 0)
            s->epoch_ns = g_first_init_ns;
        __atomic_store_n(&g_state, s, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&g_refcount, g_refcount + 1, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&g_init_lock);
    return ret;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

/* The v1 name, which old code may dlsym directly. */
EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

EXPORT nvmlReturn_t nvmlShutdown(void)
{
    nvmlReturn_t ret = NVML_SUCCESS;
    pthread_mutex_lock(&g_init_lock);
    if (g_refcount == 0)
        ret = NVML_ERROR_UNINITIALIZED;
    else
        __atomic_store_n(&g_refcount, g_refcount - 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_init_lock);
    return ret;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_IRQ_ISSUE: return "Interrupt Request Issue";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
    case NVML_ERROR_OPERATING_SYSTEM: return "The operating system has blocked the request.";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_MEMORY: return "Insufficient Memory";
    case NVML_ERROR_NO_DATA: return "No data";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    default: return "Unknown Error";
    }
}

/* ---- system queries ------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (!state_if_initialised())
        return NVML_ERROR_UNINITIALIZED;
    return copy_string("580.159.00", version, length);
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    if (!state_if_initialised())
        return NVML_ERROR_UNINITIALIZED;
    return copy_string("13.580.159.00", version, length);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
    if (!cudaDriverVersion)
        return NVML_ERROR_INVALID_ARGUMENT;
    *cudaDriverVersion = 13000;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
    return nvmlSystemGetCudaDriverVersion(cudaDriverVersion);
}

/* ---- devices -------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    struct fake_state *s = state_if_initialised();
    if (!s)
        return NVML_ERROR_UNINITIALIZED;
    if (!deviceCount)
        return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = s->devices;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
    return nvmlDeviceGetCount_v2(deviceCount);
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    struct fake_state *s = state_if_initialised();
    if (!s)
        return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= s->devices)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &g_handles[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, NULL, &d);
    if (r)
        return r;
    if (!index)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, NULL, &d);
    return r ? r : copy_string(d->name, name, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, NULL, &d);
    if (r)
        return r;
    char buf[64];
    snprintf(buf, sizeof buf, "GPU-fa4e0000-0000-4000-8000-%012x", device->index);
    return copy_string(buf, uuid, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode,
                                         unsigned int *pendingMode)
{
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, NULL, &d);
    if (r)
        return r;
    if (!currentMode || !pendingMode)
        return NVML_ERROR_INVALID_ARGUMENT;
    *currentMode = d->mig;
    *pendingMode = d->mig;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit)
{
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, NULL, &d);
    if (r)
        return r;
    if (!limit)
        return NVML_ERROR_INVALID_ARGUMENT;
    *limit = d->power_limit_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device,
                                                             unsigned int *defaultLimit)
{
    return nvmlDeviceGetPowerManagementLimit(device, defaultLimit);
}

EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit)
{
    return nvmlDeviceGetPowerManagementLimit(device, limit);
}

/* Power in mW: the average over the last refresh window. */
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
    long long t = now_ns();
    __atomic_add_fetch(&g_calls[0], 1, __ATOMIC_RELAXED);
    struct fake_state *s;
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, &s, &d);
    if (r)
        return r;
    if (!power)
        return NVML_ERROR_INVALID_ARGUMENT;
    *power = window_power_mw(d, refresh_q_ns(s, t), s->update_ns);
    busy_wait_us(s->power_cost_us);
    sleep_us(d->power_stall_us);
    return NVML_SUCCESS;
}

/* Energy in mJ since the driver loaded (here: energy_start_mj at the epoch). */
EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                        unsigned long long *energy)
{
    long long t = now_ns();
    __atomic_add_fetch(&g_calls[1], 1, __ATOMIC_RELAXED);
    struct fake_state *s;
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, &s, &d);
    if (r)
        return r;
    if (!energy)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!s->energy)
        return NVML_ERROR_NOT_SUPPORTED;
    *energy = energy_counter_mj(d, refresh_q_ns(s, t));
    busy_wait_us(s->energy_cost_us);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount,
                                             nvmlFieldValue_t *values)
{
    long long t = now_ns();
    __atomic_add_fetch(&g_calls[2], 1, __ATOMIC_RELAXED);
    struct fake_state *s;
    struct fake_device *d;
    nvmlReturn_t r = lookup(device, &s, &d);
    if (r)
        return r;
    if (valuesCount < 0 || (valuesCount > 0 && !values))
        return NVML_ERROR_INVALID_ARGUMENT;
    long long q = refresh_q_ns(s, t);
    long long stamp_us = floordiv_ll(s->epoch_ns + q, 1000);
    for (int i = 0; i < valuesCount; i++) {
        nvmlFieldValue_t *v = &values[i];
        long long t0 = now_ns();
        memset(&v->value, 0, sizeof v->value);
        v->timestamp = 0;
        v->latencyUsec = 0;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
        if (v->fieldId == 0 || v->fieldId >= NVML_FI_MAX) {
            v->nvmlReturn = NVML_ERROR_INVALID_ARGUMENT;
            continue;
        }
        if (!s->fields ||
            (v->fieldId != NVML_FI_DEV_POWER_INSTANT && v->fieldId != NVML_FI_DEV_POWER_AVERAGE)) {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        long long window = v->fieldId == NVML_FI_DEV_POWER_INSTANT ? s->update_ns : 1000000000LL;
        v->value.uiVal = window_power_mw(d, q, window);
        v->timestamp = stamp_us;
        v->latencyUsec = (now_ns() - t0) / 1000;
        v->nvmlReturn = NVML_SUCCESS;
    }
    sleep_us(d->power_stall_us);
    return NVML_SUCCESS;
}

/* ---- test hooks, not part of NVML ----------------------------------------------------- */

/* CLOCK_MONOTONIC ns at which the current config's profiles start; -1 before the first init. */
EXPORT long long fakeNvmlEpochNs(void)
{
    struct fake_state *s = __atomic_load_n(&g_state, __ATOMIC_ACQUIRE);
    return s ? s->epoch_ns : -1;
}

/* Calls so far in this process: 0 power usage, 1 total energy, 2 field values; else 0. */
EXPORT unsigned long long fakeNvmlCallCount(int which)
{
    if (which < 0 || which > 2)
        return 0;
    return __atomic_load_n(&g_calls[which], __ATOMIC_RELAXED);
}
