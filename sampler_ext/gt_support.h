/* Low-level helpers for the Cython sampler: atomics, clocks, and the sensor protocols
 * (sysfs decimal files, MSR registers, /proc/stat, NVML through dlopen'd function pointers).
 * Everything here is callable without the GIL and never allocates. Read functions return 0 on
 * success, an errno value on an OS error, or GT_NVML_ERR_BASE + nvmlReturn_t for NVML. */
#ifndef GT_SUPPORT_H
#define GT_SUPPORT_H

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define GT_NVML_ERR_BASE 100000
#define GT_ERR_PARSE 99999 /* the file held no number */

static inline uint64_t gt_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gt_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int64_t gt_load_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void gt_store_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline int gt_load_int(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gt_store_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline int64_t gt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t gt_thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep to an absolute CLOCK_MONOTONIC deadline, so the loop never drifts. */
static inline void gt_sleep_until_ns(int64_t t_ns) {
    struct timespec ts;
    ts.tv_sec = t_ns / 1000000000LL;
    ts.tv_nsec = t_ns % 1000000000LL;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* The default 50 us timer slack would dominate a 100 us period; this thread wants 1 ns. */
static inline void gt_set_timer_slack_ns(unsigned long ns) { prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0); }

/* A sysfs/hwmon counter: leading blanks, then digits; stops at the first non-digit. */
static inline int gt_read_decimal(int fd, int64_t *out) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n < 0) return errno;
    ssize_t i = 0;
    while (i < n && (buf[i] == ' ' || buf[i] == '\t')) i++;
    if (i >= n || buf[i] < '0' || buf[i] > '9') return GT_ERR_PARSE;
    uint64_t v = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (uint64_t)(buf[i] - '0');
    *out = (int64_t)v;
    return 0;
}

static inline int gt_read_msr(int fd, int64_t reg, uint64_t mask, int64_t *out) {
    uint64_t v = 0;
    ssize_t n = pread(fd, &v, sizeof v, (off_t)reg);
    if (n < 0) return errno;
    if (n != (ssize_t)sizeof v) return EIO;
    *out = (int64_t)(v & mask);
    return 0;
}

/* Busy jiffies of the aggregate "cpu " line: user+nice+system+irq+softirq. Steal is left out
 * on purpose: it is time another guest ran, not energy this machine spent for us. */
static inline int gt_read_proc_stat_busy(int fd, int64_t *out) {
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) return errno;
    buf[n] = '\0';
    if (n < 5 || memcmp(buf, "cpu ", 4) != 0) return GT_ERR_PARSE;
    unsigned long long f[8] = {0};
    int got = sscanf(buf + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3],
                     &f[4], &f[5], &f[6], &f[7]);
    if (got < 7) return GT_ERR_PARSE;
    *out = (int64_t)(f[0] + f[1] + f[2] + f[5] + f[6]);
    return 0;
}

/* ---- NVML, resolved once with dlopen/dlsym so no Python runs per sample ---- */
typedef int gt_nvmlReturn_t;
typedef void *gt_nvmlDevice_t;
typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;
    int nvmlReturn;
    union {
        double dVal;
        unsigned int uiVal;
        unsigned long ulVal;
        unsigned long long ullVal;
        signed long long sllVal;
        signed int siVal;
        unsigned short usVal;
    } value;
} gt_nvmlFieldValue_t;

typedef struct {
    void *lib;
    int inited;
    gt_nvmlReturn_t (*init)(void);
    gt_nvmlReturn_t (*shutdown)(void);
    gt_nvmlReturn_t (*handle_by_index)(unsigned int, gt_nvmlDevice_t *);
    gt_nvmlReturn_t (*power_usage)(gt_nvmlDevice_t, unsigned int *);
    gt_nvmlReturn_t (*total_energy)(gt_nvmlDevice_t, unsigned long long *);
    gt_nvmlReturn_t (*field_values)(gt_nvmlDevice_t, int, gt_nvmlFieldValue_t *);
} gt_nvml_t;

static gt_nvml_t gt_nvml;

static void *gt_sym(void *lib, const char *a, const char *b) {
    void *p = dlsym(lib, a);
    if (!p && b) p = dlsym(lib, b);
    return p;
}

/* Load and initialise NVML (path NULL or "" = libnvidia-ml.so.1). Returns 0 or writes err.
 * Reference counted (``inited`` counts the opens): two samplers in one process (two Monitors, a
 * Monitor beside a recording) share the one library, and only the last close shuts it down.
 * Callers hold the GIL (Cython ``def`` functions), which serialises open and close. */
static int gt_nvml_open(const char *path, char *err, size_t errlen) {
    if (gt_nvml.inited > 0) {
        gt_nvml.inited++;
        return 0;
    }
    const char *name = (path && path[0]) ? path : "libnvidia-ml.so.1";
    void *lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(err, errlen, "cannot load %s: %s", name, dlerror());
        return -1;
    }
    gt_nvml.lib = lib;
    gt_nvml.init = (gt_nvmlReturn_t(*)(void))gt_sym(lib, "nvmlInit_v2", "nvmlInit");
    gt_nvml.shutdown = (gt_nvmlReturn_t(*)(void))gt_sym(lib, "nvmlShutdown", NULL);
    gt_nvml.handle_by_index = (gt_nvmlReturn_t(*)(unsigned int, gt_nvmlDevice_t *))gt_sym(
        lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    gt_nvml.power_usage = (gt_nvmlReturn_t(*)(gt_nvmlDevice_t, unsigned int *))gt_sym(
        lib, "nvmlDeviceGetPowerUsage", NULL);
    gt_nvml.total_energy = (gt_nvmlReturn_t(*)(gt_nvmlDevice_t, unsigned long long *))gt_sym(
        lib, "nvmlDeviceGetTotalEnergyConsumption", NULL);
    gt_nvml.field_values = (gt_nvmlReturn_t(*)(gt_nvmlDevice_t, int, gt_nvmlFieldValue_t *))gt_sym(
        lib, "nvmlDeviceGetFieldValues", NULL);
    if (!gt_nvml.init || !gt_nvml.shutdown || !gt_nvml.handle_by_index) {
        snprintf(err, errlen, "%s lacks nvmlInit/nvmlShutdown/nvmlDeviceGetHandleByIndex", name);
        return -1;
    }
    gt_nvmlReturn_t rc = gt_nvml.init();
    if (rc != 0) {
        snprintf(err, errlen, "nvmlInit failed with NVML error %d", rc);
        return -1;
    }
    gt_nvml.inited = 1;
    return 0;
}

static void gt_nvml_close(void) {
    if (gt_nvml.inited <= 0) return;
    if (--gt_nvml.inited == 0 && gt_nvml.shutdown) gt_nvml.shutdown();
}

static int gt_nvml_device(unsigned int index, void **dev) {
    if (!gt_nvml.inited) return GT_NVML_ERR_BASE + 1; /* NVML_ERROR_UNINITIALIZED */
    gt_nvmlReturn_t rc = gt_nvml.handle_by_index(index, (gt_nvmlDevice_t *)dev);
    return rc == 0 ? 0 : GT_NVML_ERR_BASE + rc;
}

static inline int gt_nvml_power_mw(void *dev, int64_t *out) {
    unsigned int mw = 0;
    if (!gt_nvml.power_usage) return GT_NVML_ERR_BASE + 3; /* NOT_SUPPORTED */
    gt_nvmlReturn_t rc = gt_nvml.power_usage((gt_nvmlDevice_t)dev, &mw);
    if (rc != 0) return GT_NVML_ERR_BASE + rc;
    *out = (int64_t)mw;
    return 0;
}

static inline int gt_nvml_energy_mj(void *dev, int64_t *out) {
    unsigned long long mj = 0;
    if (!gt_nvml.total_energy) return GT_NVML_ERR_BASE + 3;
    gt_nvmlReturn_t rc = gt_nvml.total_energy((gt_nvmlDevice_t)dev, &mj);
    if (rc != 0) return GT_NVML_ERR_BASE + rc;
    *out = (int64_t)mj;
    return 0;
}

static inline int gt_nvml_field(void *dev, unsigned int field_id, int64_t *out) {
    gt_nvmlFieldValue_t fv;
    if (!gt_nvml.field_values) return GT_NVML_ERR_BASE + 3;
    memset(&fv, 0, sizeof fv);
    fv.fieldId = field_id;
    gt_nvmlReturn_t rc = gt_nvml.field_values((gt_nvmlDevice_t)dev, 1, &fv);
    if (rc != 0) return GT_NVML_ERR_BASE + rc;
    if (fv.nvmlReturn != 0) return GT_NVML_ERR_BASE + fv.nvmlReturn;
    switch (fv.valueType) {
        case 0: *out = (int64_t)fv.value.dVal; break;
        case 1: *out = (int64_t)fv.value.uiVal; break;
        case 2: *out = (int64_t)fv.value.ulVal; break;
        case 3: *out = (int64_t)fv.value.ullVal; break;
        case 4: *out = (int64_t)fv.value.sllVal; break;
        case 5: *out = (int64_t)fv.value.siVal; break;
        case 6: *out = (int64_t)fv.value.usVal; break;
        default: return GT_ERR_PARSE;
    }
    return 0;
}

#endif
