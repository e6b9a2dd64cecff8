"""Phase tagging, workload side: ``greentop.phase``, ``greentop.mark``, ``greentop.count``.

Inside ``greentop run|record -- CMD`` the launcher puts the path of a Unix datagram socket in
``GREENTOP_EVENTS``; every call here sends one small JSON datagram to it, stamped with this
process's own ``time.monotonic_ns()`` (CLOCK_MONOTONIC, the sampler's clock), so the IPC delay
never moves a boundary. Outside a launcher every call is a no-op that costs about as much as an
empty ``with``: workloads can leave their tags in.

Protocol (version 1), one datagram per event, UTF-8 JSON object, under ``MAX_DATAGRAM_BYTES``::

    {"v": 1, "k": "start"|"end"|"mark"|"count", "t": t_ns, "p": pid, "n": name,
     "id": phase_id, "par": parent_phase_id, "a": {attrs}, "val": number}

``t`` is CLOCK_MONOTONIC in ns; ``id`` is ``"{pid}:{n}"``, unique across the processes of a run
(for mark/count it is the enclosing phase, "" at top level); ``par`` is the enclosing phase of a
start ("" at top level); ``val`` only on count. An end left by an exception has
``"a": {"exc": "ExceptionClassName"}``. Under a distributed launcher (torchrun, srun) every start's
``a`` also carries the process's ``rank``, ``local_rank`` and ``world_size`` (``rank_attrs``). Shell events (``shell_event``) carry the shell's
pid and an empty ``id``: the listener pairs them by (pid, name).

greentop must never break the workload: every failure to send is counted in ``send_failures``
and otherwise ignored.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from greentop import gpusync

if TYPE_CHECKING:
    import socket

ENV_VAR = "GREENTOP_EVENTS"
PROTOCOL_VERSION = 1
MAX_DATAGRAM_BYTES = 8192  # hard cap; messages are kept strictly below it
MAX_NAME_CHARS = 256  # the listener drops longer names
SEND_TIMEOUT_S = 0.5  # a busy listener gets this long to make room; a hung one costs it once
_MAX_ATTR_STR_CHARS = 256  # what a string attribute is cut to when a message would be too long

AttrValue = str | int | float | bool
F = TypeVar("F", bound=Callable[..., Any])

send_failures: int = 0
"""Events that could not be delivered (listener gone, hung, or queue full while degraded)."""

invalid_dropped: int = 0
"""Calls whose arguments could not make an event (e.g. ``count(x="abc")``); skipped, not raised."""

sync_failures: int = 0
"""Device synchronisations at phase edges (``phase(..., sync=...)``) that raised; skipped, not raised."""

SyncSpec = gpusync.Sync
"""What ``phase(..., sync=...)`` takes: ``"torch"``, a callable of no arguments, or None."""

# The id of the innermost open phase in this thread / asyncio task ("" at top level). A
# ContextVar gives every thread and task its own stack; a forked child copies the forking
# thread's context, so phases in data-loader workers nest under the phase open at fork time.
_current: contextvars.ContextVar[str] = contextvars.ContextVar("greentop_phase", default="")


class _Client:
    """The sending half of the channel: one process's connected datagram socket.

    Sends block for at most ``SEND_TIMEOUT_S`` so a briefly busy listener loses nothing. After a
    timeout the listener looks hung: later sends stop waiting (non-blocking) until one gets
    through, so a hung listener costs the workload one timeout, not one per event."""

    def __init__(self, path: str) -> None:
        from json.encoder import encode_basestring_ascii  # json only once a launcher is present

        self.path = path
        self.pid = os.getpid()
        self.json_str: Callable[[str], str] = encode_basestring_ascii  # str -> JSON string literal
        self._ids = itertools.count(1)  # next() on it is atomic under the GIL
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._fd = -1
        self._degraded = False  # True after a timeout, until a send succeeds again
        self.rank_attrs = rank_attrs()  # added to every phase this process starts (torchrun, srun)
        self._base = send_failures  # failures before this client (a forked child inherits its parent's count)
        self._reported = send_failures  # failures already reported to the recorder ("lost" messages)
        self._warned = False

    def new_id(self) -> str:
        return f"{self.pid}:{next(self._ids)}"

    def _connect(self) -> int:
        import socket  # only paid for inside a launcher

        with self._lock:
            if self._sock is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    # Connected, not sendto(): poll() then reports the listener's queue state,
                    # so waiting for room sleeps instead of spinning until the timeout.
                    s.connect(self.path)
                except OSError:
                    s.close()
                    raise
                s.settimeout(SEND_TIMEOUT_S)  # also makes CPython set O_NONBLOCK on the fd
                self._sock, self._fd = s, s.fileno()
            return self._fd

    def send(self, data: bytes) -> bool:
        """Deliver one datagram; False (and ``send_failures`` + 1) if it could not be."""
        global send_failures
        try:
            fd = self._fd if self._fd >= 0 else self._connect()
            try:
                # One syscall on the fast path: the fd is non-blocking, so this never waits.
                os.write(fd, data)
            except BlockingIOError:  # the listener's queue is full
                if self._degraded or self._sock is None:
                    raise
                self._sock.send(data)  # poll() for room, up to SEND_TIMEOUT_S, then send
            if self._degraded:
                self._degraded = False
            if send_failures > self._reported:
                self._report_lost()
            return True
        except TimeoutError:
            self._degraded = True
        except PermissionError as exc:
            self._warn_once(f"{exc.strerror}: the workload runs as another user than the recorder (a dropped "
                            "privilege?), and the recorder's socket admits its own user only: 'greentop record "
                            "--user NAME' runs the workload as NAME and admits its events")
        except Exception:  # noqa: BLE001 -- listener gone, queue full, anything: never raise
            pass
        # The socket stays open (a listener that is gone does not come back, and sends to it fail
        # at once); it is closed only in a single-threaded moment (_reset), never under another
        # thread's os.write, whose fd number could otherwise be reused by an unrelated file.
        send_failures += 1
        return False

    def _report_lost(self) -> None:
        """Tell the recorder how many of this process's events were lost so far (cumulative): it
        counts them in the trace and the summary. Best effort: a report that fails is itself lost,
        and the next successful send (or the process's exit) tries again."""
        lost = send_failures
        msg = (f'{{"v":{PROTOCOL_VERSION},"k":"lost","t":{time.monotonic_ns()},"p":{os.getpid()},"n":"lost",'
               f'"val":{lost - self._base}}}')
        try:
            os.write(self._fd, msg.encode())
        except OSError:
            return
        self._reported = lost

    def report_at_exit(self) -> None:
        if send_failures > self._reported and self._fd >= 0 and os.getpid() == self.pid:
            self._report_lost()

    def _warn_once(self, why: str) -> None:
        """The first event that cannot reach the recorder says why, once, on stderr: a silent loss
        of every phase is worse than one line in the workload's output."""
        if not self._warned:
            self._warned = True
            try:
                sys.stderr.write(f"greentop: phase events cannot reach the recorder ({why}); they are lost\n")
            except Exception:  # noqa: BLE001 -- never break the workload
                pass

    def close(self) -> None:
        """Only when no other thread can be sending (after fork, in tests)."""
        s, self._sock, self._fd = self._sock, None, -1
        if s is not None:
            s.close()


# Launchers of distributed jobs name each process's place in the job in its environment: torchrun
# sets RANK/LOCAL_RANK/WORLD_SIZE, Slurm's srun SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS.
_RANK_ENV = (("rank", ("RANK", "SLURM_PROCID")), ("local_rank", ("LOCAL_RANK", "SLURM_LOCALID")),
             ("world_size", ("WORLD_SIZE", "SLURM_NTASKS")))


def rank_attrs(environ: dict[str, str] | None = None) -> dict[str, int]:
    """``{"rank": .., "local_rank": .., "world_size": ..}`` from a distributed launcher's variables
    (only those set to an integer); empty outside torchrun/srun."""
    env = os.environ if environ is None else environ
    out: dict[str, int] = {}
    for key, names in _RANK_ENV:
        for name in names:
            text = env.get(name, "")
            if text.strip().isdigit():
                out[key] = int(text)
                break
    return out


# _UNDECIDED until the first call looks at the environment; then a _Client or None (no launcher).
_UNDECIDED: Any = object()
_client: _Client | None | Any = _UNDECIDED
_decide_lock = threading.Lock()


def _get_client() -> _Client | None:
    c = _client
    if c is _UNDECIDED:
        c = _decide()
    return c  # type: ignore[no-any-return]


def _decide() -> _Client | None:
    global _client
    with _decide_lock:
        if _client is _UNDECIDED:
            path = os.environ.get(ENV_VAR, "")
            _client = _Client(path) if path else None
            if _client is not None:
                import atexit

                atexit.register(_client.report_at_exit)
        return _client  # type: ignore[no-any-return]


def _reset() -> None:
    """Forget the decision and the socket (after fork, and for tests); the next call re-decides."""
    global _client, _decide_lock
    c = _client
    _client = _UNDECIDED
    _decide_lock = threading.Lock()  # a lock held by another thread at fork time stays held in the child
    if isinstance(c, _Client):
        c.close()


def _swap_client(client: Any) -> Any:
    """Make ``client`` this process's event sink; return the one it replaces (a launcher's
    ``_Client``, or None outside a launcher). ``greentop.api``'s in-process router installs itself
    here while a Monitor runs, so phases, marks and counts reach the Monitor (and the launcher
    too, when there is one), and puts the previous sink back when the last Monitor stops. It needs
    what ``_Client`` offers: ``pid``, ``new_id()``, ``json_str`` and ``send(bytes) -> bool``."""
    global _client
    previous = _get_client()
    with _decide_lock:
        _client = client
    return previous


if hasattr(os, "register_at_fork"):
    # The child has a new pid (ids must stay unique) and must not share the parent's socket state.
    os.register_at_fork(after_in_child=_reset)


# ---- message encoding --------------------------------------------------------------------------


def _utf8_safe(text: str) -> str:
    # Lone surrogates (e.g. a path decoded with surrogateescape) are valid JSON escapes but
    # cannot be written to the trace; the listener drops events that carry them.
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _clean_name(name: object) -> str:
    text = name if type(name) is str else str(name)
    return _utf8_safe(text[:MAX_NAME_CHARS]) or "?"  # the listener drops empty or over-long names


def _clean_attrs(attrs: dict[str, Any]) -> dict[str, AttrValue]:
    out: dict[str, AttrValue] = {}
    for key, value in attrs.items():
        if isinstance(value, bool | int):
            out[_utf8_safe(key)] = value
        elif isinstance(value, float):
            out[_utf8_safe(key)] = value if value - value == 0.0 else str(value)  # the listener drops NaN/inf
        else:
            out[_utf8_safe(key)] = _utf8_safe(value if isinstance(value, str) else str(value))
    return out


_compact_json: Callable[[object], str] | None = None  # built once: json.dumps(x, separators=...) builds an encoder per call


def _encode_attrs(attrs: dict[str, Any], budget_bytes: int) -> str:
    """``attrs`` as a JSON object of at most ``budget_bytes`` bytes: long strings are cut first,
    then attributes that still do not fit are left out."""
    global _compact_json
    if _compact_json is None:
        import json

        _compact_json = json.JSONEncoder(separators=(",", ":")).encode  # ensure_ascii: len() is bytes
    dumps = _compact_json
    clean = _clean_attrs(attrs)
    text = dumps(clean)
    if len(text) <= budget_bytes:
        return text
    cut = {k[:_MAX_ATTR_STR_CHARS]: (v[:_MAX_ATTR_STR_CHARS] if isinstance(v, str) else v) for k, v in clean.items()}
    kept: dict[str, AttrValue] = {}
    for key, value in cut.items():
        kept[key] = value
        if len(dumps(kept)) > budget_bytes:
            del kept[key]
    return dumps(kept)


# Room left for "a" once the fixed fields are in: kind, t, pid, ids, val, and a name of <= 256
# chars, each of which may be escaped to 12 bytes (a \ud83d\ude00 surrogate pair).
_ATTR_BUDGET_BYTES = MAX_DATAGRAM_BYTES - 12 * MAX_NAME_CHARS - 256


def _message(kind: str, t_ns: int, pid: int, name_json: str, phase_id: str, parent_id: str, attrs_json: str) -> bytes:
    # Hand-formatted: ids are "digits:digits" and name/attrs are already JSON, so this is valid
    # JSON at a fraction of json.dumps' cost on the hot path.
    return (
        f'{{"v":1,"k":"{kind}","t":{t_ns},"p":{pid},"n":{name_json},'
        f'"id":"{phase_id}","par":"{parent_id}","a":{attrs_json}}}'
    ).encode()


def _exc_name(exc_type: type[BaseException]) -> str:
    try:
        return str(exc_type.__qualname__)[:MAX_NAME_CHARS]
    except Exception:  # noqa: BLE001 -- a very odd exception class
        return "?"


# ---- device synchronisation at phase edges ----------------------------------------------------


def _run_sync(fn: Callable[[], object]) -> None:
    global sync_failures
    try:
        fn()
    except Exception:  # noqa: BLE001 -- a failing sync must not break the workload
        sync_failures += 1


# ---- phases ------------------------------------------------------------------------------------


class PhaseScope:
    """What ``phase()`` returns: a context manager and a decorator.

    This base class is the no-op used outside a launcher (one shared instance); as a decorator it
    returns the function itself, so a decorated function costs nothing extra per call."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def __call__(self, fn: F) -> F:
        return fn


_NOOP = PhaseScope()


class _LivePhase(PhaseScope):
    """A phase inside a launcher. One ``with`` at a time per object (the decorator makes a fresh
    one per call, so recursive and concurrent calls are fine)."""

    __slots__ = ("_name_json", "_attrs_json", "_sync", "_id", "_pid", "_token", "_parent")

    def __init__(self, name_json: str, attrs_json: str, sync: Callable[[], object] | None = None) -> None:
        self._name_json = name_json
        self._attrs_json = attrs_json
        self._sync = sync
        self._id = ""
        self._pid = 0
        self._parent = ""
        self._token: contextvars.Token[str] | None = None

    def __enter__(self) -> None:
        client = _get_client()
        if client is None:  # decorated inside a launcher, called in a child outside one
            return None
        if self._sync is not None:  # work queued before the phase finishes before it starts
            _run_sync(self._sync)
        parent = _current.get()
        self._parent = parent
        self._id = pid_id = client.new_id()
        self._pid = client.pid
        self._token = _current.set(pid_id)
        client.send(_message("start", time.monotonic_ns(), client.pid, self._name_json, pid_id, parent, self._attrs_json))
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._sync is not None and self._token is not None:  # the phase's queued work ends inside it
            _run_sync(self._sync)
        t_ns = time.monotonic_ns()  # before anything else: the boundary is when the block ended
        token, self._token = self._token, None
        if token is None:
            return None
        try:
            _current.reset(token)
        except ValueError:  # exited in another context (e.g. another task): fall back to the parent
            _current.set(self._parent)
        client = _get_client()
        # A forked child that unwinds through its parent's ``with`` (e.g. sys.exit in the child)
        # must not end the parent's phase.
        if client is not None and client.pid == self._pid:
            # An exception leaving the phase is named in the end event: if it is also what ended
            # the workload, the listener reports these phases as crashed (build_phases).
            attrs_json = "{}" if exc_type is None else f'{{"exc":{client.json_str(_exc_name(exc_type))}}}'
            client.send(_message("end", t_ns, client.pid, self._name_json, self._id, self._parent, attrs_json))
        return None

    def __call__(self, fn: F) -> F:
        import functools
        import inspect

        name_json, attrs_json, sync = self._name_json, self._attrs_json, self._sync
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _LivePhase(name_json, attrs_json, sync):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _LivePhase(name_json, attrs_json, sync):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def phase(name: str, /, *, sync: SyncSpec = None, **attrs: Any) -> PhaseScope:
    """A named, nestable interval of the workload: ``with greentop.phase("training", epoch=3):``
    or ``@greentop.phase("inference")`` (plain and ``async def`` functions; a generator
    function's phase covers only the call that creates the generator).

    ``attrs`` values are str, int, float or bool; anything else is sent as ``str(value)``.
    Outside a launcher this returns one shared no-op object.

    ``sync``: GPU work is asynchronous, so without it a phase ends when Python leaves the block,
    while kernels it queued may still run and be charged to the next phase. ``sync="torch"``
    calls ``torch.cuda.synchronize()`` (current device) at entry, before the start is stamped,
    and at exit, before the end is stamped, but only when torch is already imported and CUDA is
    initialised; a callable of no arguments is called instead (e.g. to synchronise several
    devices or another framework). Use it for phases shorter than a few hundred ms or whose
    boundaries matter (a step, a request); leave it off around long phases and in hot loops:
    each synchronisation drains the GPU's queue and can slow the workload. Only inside a launcher
    (outside one nothing is measured and nothing is synchronised); a sync that raises is counted
    in ``sync_failures`` and skipped. Raises ValueError for any other ``sync`` value."""
    global invalid_dropped
    sync_fn = gpusync.resolve(sync)
    client = _client  # inlined _get_client(): this is the whole cost outside a launcher
    if client is None:
        return _NOOP
    if client is _UNDECIDED:
        client = _decide()
        if client is None:
            return _NOOP
    if client.rank_attrs:  # a rank of a distributed job: its phases say which (the caller's attrs win)
        attrs = client.rank_attrs | attrs
    try:
        return _LivePhase(client.json_str(_clean_name(name)), _encode_attrs(attrs, _ATTR_BUDGET_BYTES) if attrs else "{}", sync_fn)
    except Exception:  # noqa: BLE001 -- odd attrs (e.g. a __str__ that raises) must not crash the workload
        invalid_dropped += 1
        return _NOOP


def mark(name: str, /, **attrs: Any) -> None:
    """An instant event (``greentop.mark("checkpoint", step=10)``), stamped now (CLOCK_MONOTONIC
    ns), inside the current phase. Outside a launcher: nothing."""
    global invalid_dropped
    client = _client  # inlined _get_client(), as in phase()
    if client is _UNDECIDED:
        client = _decide()
    if client is None:
        return
    t_ns = time.monotonic_ns()
    try:
        data = _message("mark", t_ns, client.pid, client.json_str(_clean_name(name)), _current.get(), "",
                        _encode_attrs(attrs, _ATTR_BUDGET_BYTES) if attrs else "{}")
    except Exception:  # noqa: BLE001 -- same
        invalid_dropped += 1
        return
    client.send(data)


def count(**amounts: int | float) -> None:
    """Work done, one event per keyword: ``greentop.count(samples=256, tokens=1024)``. Units are
    the caller's (samples, tokens, requests, ...); values must be finite int or float. The count is
    stamped now (CLOCK_MONOTONIC ns) and belongs to the current phase. Outside a launcher: nothing."""
    global invalid_dropped
    client = _client  # inlined _get_client(), as in phase()
    if client is _UNDECIDED:
        client = _decide()
    if client is None:
        return
    t_ns = time.monotonic_ns()
    phase_id = _current.get()
    for key, value in amounts.items():
        try:
            if isinstance(value, int):  # bools count as 0/1
                val = str(int(value))
            elif isinstance(value, str | bytes):  # float("256") would pass: a str is a mistake
                raise TypeError(key)
            else:
                number = float(value)  # numpy scalars, 0-d tensors, ...
                if number - number != 0.0:  # NaN or inf: the listener would drop the datagram
                    raise ValueError(key)
                val = repr(number)  # repr() of a finite float is valid JSON
            name_json = client.json_str(_clean_name(key))
        except Exception:  # noqa: BLE001 -- skip this one, keep the rest, never raise
            invalid_dropped += 1
            continue
        client.send(
            f'{{"v":1,"k":"count","t":{t_ns},"p":{client.pid},"n":{name_json},"id":"{phase_id}","par":"","a":{{}},"val":{val}}}'.encode()
        )


def shell_event(kind: str, name: str, t_ns: int | None = None) -> int:
    """Start or end a phase for a shell workload (``greentop phase start|end NAME``).

    The event carries the pid of our parent (the shell) and no id: the listener pairs an end with
    the most recent open start of the same name from the same pid. ``t_ns`` (CLOCK_MONOTONIC) is
    when the command began; pass it from the top of ``main`` so interpreter start-up does not
    shift the boundary; default: now.

    Returns an exit code: 0 sent, or no launcher (``GREENTOP_EVENTS`` unset: a no-op, as
    ``greentop.phase`` is outside a recording, so a tagged script runs the same without greentop);
    1 the launcher did not take it (gone or hung); 2 bad input, with one line on stderr."""
    t = time.monotonic_ns() if t_ns is None else t_ns
    if kind not in ("start", "end"):
        print(f"greentop: error: phase event must be 'start' or 'end', got {kind!r}", file=sys.stderr)
        return 2
    if not name or len(name) > MAX_NAME_CHARS:
        print(f"greentop: error: phase name must be 1-{MAX_NAME_CHARS} characters", file=sys.stderr)
        return 2
    path = os.environ.get(ENV_VAR, "")
    if not path:
        return 0
    client = _Client(path)
    try:
        ok = client.send(_message(kind, t, os.getppid(), client.json_str(name), "", "", "{}"))
    finally:
        client.close()
    if not ok:
        print(f"greentop: error: the greentop launcher did not take the event (socket {path})", file=sys.stderr)
        return 1
    return 0
