"""Phase tagging, launcher side: receive the workload's events and turn them into phases.

``EventListener`` owns the Unix datagram socket whose path the workload finds in
``GREENTOP_EVENTS`` (protocol: ``greentop/phases.py``). A daemon thread only moves datagrams
out of the kernel queue (that queue is short, ``net.unix.max_dgram_qlen``, often 10, and a full
one makes the workload wait); parsing and validation happen in ``drain()``. ``build_phases``
hands them to ``greentop.events``, which parses them and pairs starts and ends into phases.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import stat
import tempfile
import threading
import weakref
from types import TracebackType
from typing import Iterable

from greentop.phases import ENV_VAR, MAX_DATAGRAM_BYTES as MAX_EVENT_BYTES
from greentop.events import Event, build_phases, parse_event, parse_lost

__all__ = ["Event", "EventListener", "build_phases", "parse_event", "parse_lost", "remove_stale_dirs"]

MAX_DATAGRAM_BYTES = 65536  # read size; the client keeps its datagrams under 8 KiB
MAX_PENDING_BYTES = 64 << 20  # datagrams held between drains (bytes) before new ones are counted as overflowed
_SOCKET_NAME = "ev"
_MAX_SUN_PATH = 100  # AF_UNIX paths must fit in 108 bytes; leave room


class EventListener:
    """The receiving end of the workload's phase events.

    ``start()`` makes a private directory (mode 0700) holding the socket (mode 0600), both owned by
    ``owner`` when given (the workload's user under ``--user``); ``env()``
    is what the child needs in its environment; ``drain()`` returns the events received since the
    last drain; ``stop()`` reads what is still queued, closes and removes everything (call
    ``drain()`` once more after it). ``dropped`` counts datagrams that were not valid events;
    ``overflowed`` those lost because nobody drained ``MAX_PENDING_BYTES`` of them; ``oversized``
    those over ``MAX_EVENT_BYTES`` (also in ``dropped``); ``client_lost`` what the workload reports
    it could not send; ``lost`` the sum of ``client_lost`` and ``overflowed``."""

    def __init__(self, owner: tuple[int, int] | None = None) -> None:
        # (uid, gid) the socket and its folder are given to (``--user``): that user and root, no
        # one else, can then send; None: the listener's own user.
        self.owner = owner
        self.dropped: int = 0
        self.overflowed: int = 0
        self.oversized: int = 0  # datagrams over MAX_EVENT_BYTES, refused unread
        self._client_lost: dict[int, int] = {}  # pid -> events it reports it could not send
        self._dir: str | None = None
        self._path: str | None = None
        self._sock: socket.socket | None = None
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._raw: list[bytes] = []
        self._raw_bytes = 0
        self._cleanup: weakref.finalize | None = None

    @property
    def path(self) -> str:
        """The socket's path (after ``start()``)."""
        if self._path is None:
            raise RuntimeError("EventListener not started")
        return self._path

    def env(self) -> dict[str, str]:
        """Environment variables for the workload."""
        return {ENV_VAR: self.path}

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("EventListener already started")
        remove_stale_dirs()
        d = tempfile.mkdtemp(prefix="greentop-")  # mode 0700: nobody else can reach the socket
        if len(d) + 1 + len(_SOCKET_NAME) > _MAX_SUN_PATH:  # a long $TMPDIR
            os.rmdir(d)
            d = tempfile.mkdtemp(prefix="greentop-", dir="/tmp")
        os.chmod(d, 0o700)
        path = os.path.join(d, _SOCKET_NAME)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            if self.owner is not None:
                _give(d, path, *self.owner)
            sock.setblocking(False)
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            sock.close()
            shutil.rmtree(d, ignore_errors=True)
            raise
        self._dir, self._path, self._sock = d, path, sock
        # If stop() is never reached (an exception on the way, a forgotten listener), the
        # directory still goes when the listener is collected or the interpreter exits.
        self._cleanup = weakref.finalize(self, _remove_dir, d, os.getpid())
        self._stopping = False
        self._thread = threading.Thread(target=self._receive, name="greentop-events", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        final = False
        while True:
            batch: list[bytes] = []
            # Empty the kernel queue before taking the lock: a full queue blocks the workload.
            while True:
                try:
                    batch.append(sock.recv(MAX_DATAGRAM_BYTES))
                except BlockingIOError:
                    break
                except OSError:
                    return  # closed under us: nothing more can come
            if batch:
                kept = [d for d in batch if len(d) <= MAX_EVENT_BYTES]
                with self._lock:
                    self.oversized += len(batch) - len(kept)
                    self.dropped += len(batch) - len(kept)  # refused: not an event a client can send
                    for d in kept:
                        # Bounded by bytes, not count: 60 KB marks at 2 kHz once held 2.5 GB here.
                        if self._raw_bytes + len(d) > MAX_PENDING_BYTES:
                            self.overflowed += 1
                            continue
                        self._raw.append(d)
                        self._raw_bytes += len(d)
            if final:
                return
            if self._stopping:
                # Everything sent before stop() is in the queue by now, but maybe not in this
                # batch (it can have arrived after the reads above): read once more, then leave.
                final = True
                continue
            poller.poll()

    def drain(self) -> list[Event]:
        """Events received since the last call, in arrival order (not sorted by time)."""
        with self._lock:
            raw, self._raw = self._raw, []
            self._raw_bytes = 0
        events: list[Event] = []
        bad = 0
        for data in raw:
            event = parse_event(data)
            if event is not None:
                events.append(event)
                continue
            lost = parse_lost(data)
            if lost is None:
                bad += 1
            else:
                pid, n = lost
                self._client_lost[pid] = max(self._client_lost.get(pid, 0), n)
        if bad:
            with self._lock:
                self.dropped += bad
        return events

    @property
    def client_lost(self) -> int:
        """Events the workload's processes report they could not send (``phases.send_failures``)."""
        return sum(self._client_lost.values())

    @property
    def lost(self) -> int:
        """Valid events known lost: not sent by a client, or not kept here for want of room
        (refused datagrams, oversized ones included, are counted in ``dropped``)."""
        return self.client_lost + self.overflowed

    def stop(self) -> None:
        """Read what is queued, then close the socket and remove its directory. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            thread.join(timeout=5.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._dir is not None:
            if self._cleanup is not None:
                self._cleanup()  # removes the directory, once
            self._dir = None

    def __enter__(self) -> EventListener:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def remove_stale_dirs(folders: Iterable[str] | None = None) -> list[str]:
    """Remove the socket folders of listeners that died without cleaning up (a recorder killed with
    SIGKILL): ours (same uid; root takes any owner's, as it gives its own away under --user),
    holding nothing but the socket, and nobody bound to it (a connect is refused). Returns the
    folders removed."""
    removed = []
    for top in folders if folders is not None else {tempfile.gettempdir(), "/tmp"}:
        try:
            names = [n for n in os.listdir(top) if n.startswith("greentop-")]
        except OSError:
            continue
        for name in names:
            d = os.path.join(top, name)
            try:
                st = os.lstat(d)
                # root's listeners give their folder to the workload's user (--user): root takes any.
                mine = st.st_uid == os.getuid() or os.getuid() == 0
                if not stat.S_ISDIR(st.st_mode) or not mine or os.listdir(d) != [_SOCKET_NAME]:
                    continue
                if not stat.S_ISSOCK(os.lstat(os.path.join(d, _SOCKET_NAME)).st_mode):
                    continue
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    probe.connect(os.path.join(d, _SOCKET_NAME))
                    continue  # a live listener
                except ConnectionRefusedError:
                    pass
                finally:
                    probe.close()
            except OSError:
                continue
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _give(folder: str, path: str, uid: int, gid: int) -> None:
    """Give the socket, then its folder, to ``uid``: modes stay 0600/0700, so exactly that user
    (and root) can reach it. The socket first, while the folder still shuts every other user out:
    once the folder is theirs, nothing is done inside it but removing it (``shutil.rmtree``, which
    follows no symlink)."""
    os.chown(path, uid, gid, follow_symlinks=False)
    os.chown(folder, uid, gid, follow_symlinks=False)


def _remove_dir(path: str, owner_pid: int) -> None:
    # Not from a forked copy of the launcher exiting: the launcher may still be listening.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)
