# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled sampling core: lanes of channels read in a loop without the GIL.

A lane is one thread with its own period. Each tick it reads every channel of the lane and
appends ``(t_ns, raw)`` to that channel's single-producer / single-consumer ring buffer. Python
drains the rings into numpy arrays. This module knows channels only as reader specs and
buffers; what the numbers mean lives in ``greentop``.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

import numpy as np

cdef extern from "gt_support.h" nogil:
    int GT_NVML_ERR_BASE
    int GT_ERR_PARSE
    uint64_t gt_load_u64(const uint64_t *p)
    void gt_store_u64(uint64_t *p, uint64_t v)
    int64_t gt_load_i64(const int64_t *p)
    void gt_store_i64(int64_t *p, int64_t v)
    int gt_load_int(const int *p)
    void gt_store_int(int *p, int v)
    int64_t gt_now_ns()
    int64_t gt_thread_cpu_ns()
    void gt_sleep_until_ns(int64_t t_ns)
    void gt_set_timer_slack_ns(unsigned long ns)
    int gt_read_decimal(int fd, int64_t *out)
    int gt_read_msr(int fd, int64_t reg, uint64_t mask, int64_t *out)
    int gt_read_proc_stat_busy(int fd, int64_t *out)
    int gt_nvml_open(const char *path, char *err, size_t errlen)
    void gt_nvml_close()
    int gt_nvml_device(unsigned int index, void **dev)
    int gt_nvml_power_mw(void *dev, int64_t *out)
    int gt_nvml_energy_mj(void *dev, int64_t *out)
    int gt_nvml_field(void *dev, unsigned int field_id, int64_t *out)

# Reader kinds; greentop.sampler maps ReaderKind names onto these.
KIND_FILE_DECIMAL = 0
KIND_MSR = 1
KIND_NVML_POWER = 2
KIND_NVML_FIELD = 3
KIND_NVML_ENERGY = 4
KIND_PROC_STAT_BUSY = 5
NVML_ERR_BASE = GT_NVML_ERR_BASE
ERR_PARSE = GT_ERR_PARSE


cdef struct Ring:
    int64_t *t_ns
    int64_t *raw
    uint64_t capacity  # a power of two
    uint64_t head  # next slot to write; only the producer stores it
    uint64_t tail  # next slot to read; only the consumer stores it
    uint64_t overruns  # samples dropped because the ring was full


cdef struct Chan:
    int kind
    int fd
    int64_t reg
    uint64_t mask
    void *dev
    unsigned int field_id
    Ring ring
    uint64_t reads
    uint64_t errors
    int64_t last_error
    int64_t cost_ns_sum
    int64_t cost_ns_max


cdef struct LaneState:
    Chan **chans
    int n
    int64_t period_ns
    int stop
    uint64_t ticks
    uint64_t missed  # whole periods skipped because a tick ran past the next deadline
    uint64_t late  # wake-ups later than half a period
    int64_t lateness_max_ns
    int64_t cpu_ns
    int64_t started_ns
    int64_t stopped_ns


cdef inline int read_channel(Chan *ch, int64_t *out) noexcept nogil:
    if ch.kind == 0:
        return gt_read_decimal(ch.fd, out)
    if ch.kind == 1:
        return gt_read_msr(ch.fd, ch.reg, ch.mask, out)
    if ch.kind == 2:
        return gt_nvml_power_mw(ch.dev, out)
    if ch.kind == 3:
        return gt_nvml_field(ch.dev, ch.field_id, out)
    if ch.kind == 4:
        return gt_nvml_energy_mj(ch.dev, out)
    return gt_read_proc_stat_busy(ch.fd, out)


cdef inline void ring_push(Ring *r, int64_t t_ns, int64_t raw) noexcept nogil:
    cdef uint64_t head = r.head
    cdef uint64_t tail = gt_load_u64(&r.tail)
    if head - tail >= r.capacity:
        gt_store_u64(&r.overruns, r.overruns + 1)
        return
    cdef uint64_t i = head & (r.capacity - 1)
    r.t_ns[i] = t_ns
    r.raw[i] = raw
    gt_store_u64(&r.head, head + 1)


cdef void lane_loop(LaneState *lane) noexcept nogil:
    cdef int64_t period = lane.period_ns
    cdef int64_t cpu0 = gt_thread_cpu_ns()
    cdef int64_t deadline = gt_now_ns()
    cdef int64_t t, t_after, cost, now, lateness, behind
    cdef int64_t raw = 0
    cdef int i, rc
    cdef Chan *ch
    gt_set_timer_slack_ns(1)
    lane.started_ns = deadline
    while not gt_load_int(&lane.stop):
        # One clock read between consecutive channels: it ends one read and starts the next.
        t = gt_now_ns()
        for i in range(lane.n):
            ch = lane.chans[i]
            rc = read_channel(ch, &raw)
            t_after = gt_now_ns()
            cost = t_after - t
            gt_store_u64(&ch.reads, ch.reads + 1)
            gt_store_i64(&ch.cost_ns_sum, ch.cost_ns_sum + cost)
            if cost > ch.cost_ns_max:
                gt_store_i64(&ch.cost_ns_max, cost)
            if rc == 0:
                ring_push(&ch.ring, t + cost // 2, raw)
            else:
                gt_store_u64(&ch.errors, ch.errors + 1)
                gt_store_i64(&ch.last_error, rc)
            t = t_after
        gt_store_u64(&lane.ticks, lane.ticks + 1)
        deadline += period
        now = gt_now_ns()
        behind = now - deadline
        if behind >= period:
            # A stall (preemption, a slow read): skip the lost ticks rather than burst to catch up.
            gt_store_u64(&lane.missed, lane.missed + <uint64_t>(behind // period))
            deadline += (behind // period) * period
        if now < deadline:
            gt_sleep_until_ns(deadline)
            lateness = gt_now_ns() - deadline
            if lateness > lane.lateness_max_ns:
                gt_store_i64(&lane.lateness_max_ns, lateness)
            if lateness * 2 > period:
                gt_store_u64(&lane.late, lane.late + 1)
    lane.stopped_ns = gt_now_ns()
    gt_store_i64(&lane.cpu_ns, gt_thread_cpu_ns() - cpu0)


def nvml_open(str path=""):
    """Load libnvidia-ml (``path`` or the soname) and nvmlInit it for the compiled readers."""
    cdef char err[512]
    cdef bytes p = path.encode()
    if gt_nvml_open(p, err, sizeof(err)) != 0:
        raise OSError(err.decode(errors="replace"))


def nvml_close():
    gt_nvml_close()


def now_ns():
    """CLOCK_MONOTONIC in ns, the clock every timestamp of the sampler uses."""
    return gt_now_ns()


cdef class Core:
    """Rings and lanes for one run.

    ``lanes`` is a list of ``(period_ns, [spec, ...])``; a spec is
    ``(kind, fd, register, mask, gpu_index, field_id, capacity)``. Channels are numbered in the
    order given, across lanes. ``run_lane(i)`` runs lane i's loop in the calling thread with the
    GIL released until ``request_stop()``.
    """

    cdef LaneState *lanes
    cdef int n_lanes
    cdef Chan *chans
    cdef int n_chans
    cdef object _lock

    def __cinit__(self, list lanes):
        cdef int n = 0
        for _period, specs in lanes:
            n += len(specs)
        self.n_lanes = len(lanes)
        self.n_chans = n
        self.lanes = <LaneState *>calloc(max(self.n_lanes, 1), sizeof(LaneState))
        self.chans = <Chan *>calloc(max(n, 1), sizeof(Chan))
        if self.lanes == NULL or self.chans == NULL:
            raise MemoryError()
        cdef int li, ci = 0
        cdef Chan *ch
        cdef uint64_t cap
        cdef void *dev
        cdef int rc
        for li, (period_ns, specs) in enumerate(lanes):
            if period_ns <= 0:
                raise ValueError("a lane's period must be positive")
            self.lanes[li].period_ns = period_ns
            self.lanes[li].n = len(specs)
            self.lanes[li].chans = <Chan **>calloc(max(len(specs), 1), sizeof(Chan *))
            if self.lanes[li].chans == NULL:
                raise MemoryError()
            for j, (kind, fd, reg, mask, gpu, field_id, capacity) in enumerate(specs):
                ch = &self.chans[ci]
                self.lanes[li].chans[j] = ch
                ci += 1
                ch.kind = kind
                ch.fd = fd
                ch.reg = reg
                ch.mask = <uint64_t>mask
                ch.field_id = field_id
                cap = 1
                while cap < <uint64_t>capacity:
                    cap <<= 1
                ch.ring.capacity = cap
                ch.ring.t_ns = <int64_t *>calloc(cap, sizeof(int64_t))
                ch.ring.raw = <int64_t *>calloc(cap, sizeof(int64_t))
                if ch.ring.t_ns == NULL or ch.ring.raw == NULL:
                    raise MemoryError()
                if kind in (KIND_NVML_POWER, KIND_NVML_FIELD, KIND_NVML_ENERGY):
                    dev = NULL
                    rc = gt_nvml_device(gpu, &dev)
                    if rc != 0:
                        raise OSError(f"NVML device {gpu}: error {rc - GT_NVML_ERR_BASE}")
                    ch.dev = dev

    def __dealloc__(self):
        cdef int i
        if self.chans != NULL:
            for i in range(self.n_chans):
                free(self.chans[i].ring.t_ns)
                free(self.chans[i].ring.raw)
            free(self.chans)
        if self.lanes != NULL:
            for i in range(self.n_lanes):
                free(self.lanes[i].chans)
            free(self.lanes)

    @property
    def n_channels(self) -> int:
        return self.n_chans

    def run_lane(self, int i):
        """Run lane ``i`` until ``request_stop()``; call from a dedicated thread."""
        if i < 0 or i >= self.n_lanes:
            raise IndexError(i)
        cdef LaneState *lane = &self.lanes[i]
        with nogil:
            lane_loop(lane)

    def request_stop(self):
        cdef int i
        for i in range(self.n_lanes):
            gt_store_int(&self.lanes[i].stop, 1)

    def drain(self, int c):
        """Move channel ``c``'s pending samples out: ``(t_ns, raw)`` int64 arrays.

        Single consumer: the caller serialises drains of one channel.
        """
        if c < 0 or c >= self.n_chans:
            raise IndexError(c)
        cdef Ring *r = &self.chans[c].ring
        cdef uint64_t head = gt_load_u64(&r.head)
        cdef uint64_t tail = r.tail
        cdef uint64_t n = head - tail
        t_arr = np.empty(n, dtype=np.int64)
        raw_arr = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] tv = t_arr
        cdef int64_t[::1] rv = raw_arr
        cdef uint64_t start = tail & (r.capacity - 1)
        cdef uint64_t first = min(n, r.capacity - start)
        if n:
            with nogil:
                memcpy(&tv[0], &r.t_ns[start], first * sizeof(int64_t))
                memcpy(&rv[0], &r.raw[start], first * sizeof(int64_t))
                if n > first:
                    memcpy(&tv[first], &r.t_ns[0], (n - first) * sizeof(int64_t))
                    memcpy(&rv[first], &r.raw[0], (n - first) * sizeof(int64_t))
        gt_store_u64(&r.tail, head)
        return t_arr, raw_arr

    def channel_stats(self, int c) -> dict:
        if c < 0 or c >= self.n_chans:
            raise IndexError(c)
        cdef Chan *ch = &self.chans[c]
        return {
            "reads": gt_load_u64(&ch.reads),
            "errors": gt_load_u64(&ch.errors),
            "last_error": gt_load_i64(&ch.last_error),
            "overruns": gt_load_u64(&ch.ring.overruns),
            "cost_ns_sum": gt_load_i64(&ch.cost_ns_sum),
            "cost_ns_max": gt_load_i64(&ch.cost_ns_max),
            "capacity": ch.ring.capacity,
        }

    def lane_stats(self, int i) -> dict:
        if i < 0 or i >= self.n_lanes:
            raise IndexError(i)
        cdef LaneState *lane = &self.lanes[i]
        return {
            "period_ns": lane.period_ns,
            "ticks": gt_load_u64(&lane.ticks),
            "missed": gt_load_u64(&lane.missed),
            "late": gt_load_u64(&lane.late),
            "lateness_max_ns": gt_load_i64(&lane.lateness_max_ns),
            "cpu_ns": gt_load_i64(&lane.cpu_ns),
            "started_ns": gt_load_i64(&lane.started_ns),
            "stopped_ns": gt_load_i64(&lane.stopped_ns),
        }
