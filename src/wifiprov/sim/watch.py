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

A feed may care about some entries only: ``subscribe({("aps", None), ("networks", "home.json")})``
wakes for any file in the folder ``aps`` and for ``networks/home.json`` (a folder by its last
path component), so a thousand feeds each watching their own file cost one dictionary look-up per
event, not a thousand wakeups. Listeners (``listen(callback)``) hear every change by name —
``callback(folder, name)``, both None when the kernel lost events — which lets a reader keep an
index and re-read only what changed; ``poll()`` collects what the kernel queued, synchronously.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
import sys
from collections.abc import Callable, Collection, Iterable, Iterator

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
# What a filtered feed wakes for: (folder, file name), or (folder, None) for any file in it.
Key = tuple[str, str | None]
Listener = Callable[[str | None, str | None], None]
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
        self._feeds: set[ChangeFeed] = set()  # every feed, filtered or not
        self._unfiltered: set[ChangeFeed] = set()
        self._by_key: dict[Key, set[ChangeFeed]] = {}
        self._listeners: list[Listener] = []
        self._folders: dict[int, str] = {}  # watch descriptor -> the folder's last component
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            for folder in folders:
                wd = add_watch(fd, os.fsencode(folder), WATCH_MASK)
                if wd < 0:
                    code = ctypes.get_errno()
                    raise WatchUnavailable(code, f"cannot watch {folder}: {os.strerror(code)}")
                self._folders[wd] = os.path.basename(os.path.normpath(folder))
        except BaseException:
            os.close(fd)
            raise

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def subscribe(self, keys: Collection[Key] | None = None) -> ChangeFeed:
        """A new feed; changes from now on wake its next ``wait()`` — every change, or only
        those to ``keys`` (and lost events, which may have been anything)."""
        if self.closed:
            raise RuntimeError("the watcher is closed")
        feed = ChangeFeed(self, frozenset(keys) if keys is not None else None)
        self._feeds.add(feed)
        if feed.keys is None:
            self._unfiltered.add(feed)
        else:
            for key in feed.keys:
                self._by_key.setdefault(key, set()).add(feed)
        return feed

    def __del__(self) -> None:
        # An inotify instance is scarce (128 per user by default): one left behind by a watcher
        # nobody closed goes back with it, not at the end of the process.
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def listen(self, listener: Listener) -> None:
        """Call ``listener(folder, name)`` for every change from now on (see the module)."""
        self._listeners.append(listener)

    def poll(self) -> None:
        """Collect the changes the kernel has queued now (never blocks): feeds and listeners
        hear of every change made before this call."""
        self._read()

    def _forget(self, feed: ChangeFeed) -> None:
        self._feeds.discard(feed)
        self._unfiltered.discard(feed)
        for key in feed.keys or ():
            feeds = self._by_key.get(key)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._by_key[key]

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
        self._unfiltered.clear()
        self._by_key.clear()
        self._listeners.clear()

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
        """Drain the descriptor (never blocks); wake the feeds that care, tell the listeners."""
        woken: set[ChangeFeed] = set()
        while not self.closed:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            for wd, mask, name in _parse(data):
                folder = self._folders.get(wd)
                if mask & _ALWAYS:  # lost events, or a folder gone: anything may have changed
                    woken.update(self._feeds)
                    for listener in self._listeners:
                        listener(None, None)
                elif folder is not None and name and self._accept(name):
                    woken.update(self._unfiltered)
                    woken.update(self._by_key.get((folder, name), ()))
                    woken.update(self._by_key.get((folder, None), ()))
                    for listener in self._listeners:
                        listener(folder, name)
        for feed in woken:
            feed._wake(True)


class ChangeFeed:
    """One consumer's view of a ``FolderWatcher``: ``wait()`` for the next change."""

    def __init__(self, watcher: FolderWatcher, keys: frozenset[Key] | None = None) -> None:
        self._watcher = watcher
        self.keys = keys  # None: every change
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
        self._watcher._forget(self)
        self._wake(False)

    def _wake(self, changed: bool) -> None:
        self._pending = self._pending or changed
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(changed)


def _parse(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(watch descriptor, mask, file name) of each event in a buffer read from inotify."""
    offset = 0
    while offset + _EVENT.size <= len(data):
        wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        name = data[offset : offset + length].rstrip(b"\0")
        offset += length
        yield wd, mask, os.fsdecode(name)


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

