"""Change notification for folders: Linux inotify (through ctypes) driven by the event loop.

``FolderWatcher`` opens one inotify instance watching some folders for files being created,
deleted, renamed in or out, or closed after writing. Its descriptor is registered with the running
loop (``loop.add_reader``), so nothing polls on a timer: the kernel wakes the loop.

Each consumer takes its own ``ChangeFeed`` (``watcher.subscribe()``). A feed remembers that
something changed until its next ``wait()`` returns, so a check-then-wait loop loses nothing:

    feed = watcher.subscribe()
    while not condition():        # read the state ...
        await feed.wait(timeout)  # ... then wait; a change made in between still wakes this

A wakeup only says "something may have changed": re-read the state. Events the kernel queued
before the first ``wait()`` (or while no loop was attached) are delivered at that first wait.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator

IN_CLOSE_WRITE = 0x0000_0008
IN_MOVED_FROM = 0x0000_0040
IN_MOVED_TO = 0x0000_0080
IN_CREATE = 0x0000_0100
IN_DELETE = 0x0000_0200
IN_DELETE_SELF = 0x0000_0400
IN_MOVE_SELF = 0x0000_0800
IN_Q_OVERFLOW = 0x0000_4000
IN_IGNORED = 0x0000_8000
IN_ONLYDIR = 0x0100_0000

WATCH_MASK = (
    IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE
    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)
# Events about the watch itself, or lost events: always reported as a change.
_ALWAYS = IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_READ_SIZE = 64 * 1024


class WatchUnavailable(OSError):
    """This system cannot watch folders for changes (not Linux, or out of inotify instances)."""


class FolderWatcher:
    """Watch folders for changes to the files whose names ``accept`` (default: all of them)."""

    def __init__(
        self, folders: Iterable[str | os.PathLike[str]], accept: Callable[[str], bool] | None = None
    ) -> None:
        init1, add_watch = _inotify()
        fd = init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            hint = (
                " (raise fs.inotify.max_user_instances, or close unused watchers)"
                if code == errno.EMFILE else ""
            )
            raise WatchUnavailable(code, f"inotify_init1 failed: {os.strerror(code)}{hint}")
        self._fd = fd
        self._accept = accept or (lambda name: True)
        self._feeds: set[ChangeFeed] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            for folder in folders:
                if add_watch(fd, os.fsencode(folder), WATCH_MASK) < 0:
                    code = ctypes.get_errno()
                    raise WatchUnavailable(code, f"cannot watch {folder}: {os.strerror(code)}")
        except BaseException:
            os.close(fd)
            raise

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def subscribe(self) -> ChangeFeed:
        """A new feed; changes from now on wake its next ``wait()``."""
        if self.closed:
            raise RuntimeError("the watcher is closed")
        feed = ChangeFeed(self)
        self._feeds.add(feed)
        return feed

    def close(self) -> None:
        """Stop watching; feeds waiting now return False, later waits raise RuntimeError."""
        if self.closed:
            return
        self._detach()
        os.close(self._fd)
        self._fd = -1
        for feed in list(self._feeds):
            feed._wake(False)
        self._feeds.clear()

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._detach()
        loop.add_reader(self._fd, self._read)
        self._loop = loop

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None

    def _read(self) -> None:
        """Drain the descriptor (never blocks) and wake every feed if a watched file changed."""
        changed = False
        while not self.closed:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            for mask, name in _parse(data):
                if mask & _ALWAYS or (name and self._accept(name)):
                    changed = True
        if changed:
            for feed in list(self._feeds):
                feed._wake(True)


class ChangeFeed:
    """One consumer's view of a ``FolderWatcher``: ``wait()`` for the next change."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = watcher
        self._pending = False
        self._waiter: asyncio.Future[bool] | None = None

    async def wait(self, timeout: float | None = None) -> bool:
        """True when a change happened since the previous ``wait()`` returned True (or since this
        feed was made); False after ``timeout`` seconds without one, or when the watcher closes."""
        watcher = self._watcher
        if watcher.closed or self not in watcher._feeds:
            raise RuntimeError("this change feed is closed")
        watcher._attach()
        watcher._read()  # collect what the kernel already queued
        if not self._pending:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if not await asyncio.wait_for(self._waiter, timeout):
                    return False  # the watcher closed
            except TimeoutError:
                return False
            finally:
                self._waiter = None
        self._pending = False
        return True

    def close(self) -> None:
        """Stop receiving changes (the watcher keeps running for its other feeds)."""
        self._watcher._feeds.discard(self)
        self._wake(False)

    def _wake(self, changed: bool) -> None:
        self._pending = self._pending or changed
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(changed)


def _parse(data: bytes) -> Iterator[tuple[int, str]]:
    """(mask, file name) of each event in a buffer read from an inotify descriptor."""
    offset = 0
    while offset + _EVENT.size <= len(data):
        _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        name = data[offset : offset + length].rstrip(b"\0")
        offset += length
        yield mask, os.fsdecode(name)


_InotifyInit1 = Callable[[int], int]
_InotifyAddWatch = Callable[[int, bytes, int], int]


def _inotify() -> tuple[_InotifyInit1, _InotifyAddWatch]:
    if not sys.platform.startswith("linux"):
        raise WatchUnavailable(
            errno.ENOSYS,
            f"watching folders for changes needs Linux inotify, and this is {sys.platform}: "
            "the sim air runs on Linux only",
        )
    libc = ctypes.CDLL(None, use_errno=True)
    init1 = libc.inotify_init1
    init1.argtypes = [ctypes.c_int]
    init1.restype = ctypes.c_int
    add_watch = libc.inotify_add_watch
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    return init1, add_watch

