"""evloop: asyncio's event loop with a native core written in Rust.

Use it as asyncio's loop::

    import asyncio, evloop
    asyncio.run(main(), loop_factory=evloop.new_event_loop)   # Python 3.12+
    asyncio.set_event_loop_policy(evloop.EventLoopPolicy())    # any version (3.11)
    asyncio.run(main())

``evloop.Loop`` is ``class Loop(LoopCore, asyncio.BaseEventLoop)``. The native ``LoopCore``
gives scheduling (``call_soon``, ``call_later``, ``call_at``, ``call_soon_threadsafe``,
``time``), the run (``run_forever``, ``stop``, ``is_running``, ``close``), asyncio's
``Handle``/``TimerHandle``, fd watching (``add_reader``/``add_writer``/``remove_*``) and the
``sock_*`` methods (``sock_recv``, ``sock_sendall``, ``sock_accept``, ...: native coroutines).
This file adds signal handling (``signal.set_wakeup_fd`` on a self-pipe the loop watches) and
takes from asyncio's own selector loop the Python code that only needs fd watching: socket, SSL
and datagram transports, servers, Unix sockets and pipes.
``asyncio.BaseEventLoop`` gives the rest: futures, tasks, executors, name resolution,
``create_connection``/``create_server``, ``shutdown_asyncgens``.
"""

import asyncio
import errno
import inspect
import selectors
import signal
import socket
import sys
import threading
import weakref
from asyncio import base_events, coroutines, events, selector_events, unix_events

import os

from ._core import Handle, LoopCore, TimerHandle, forget_running_loop

__all__ = ("Loop", "EventLoopPolicy", "new_event_loop", "Handle", "TimerHandle")


def _noop_signal_handler(signum, frame):
    """A Python-level handler, so that the C handler writes the signal to the wakeup fd."""


class _WatchedFds:
    """What asyncio's selector-transport code reads of its loop's selector: ``get_key(fd)``,
    for ``repr(transport)`` (``read=polling``). A read-only view of the loop's fd watches."""

    def __init__(self, loop):
        self._loop = weakref.ref(loop)

    def get_key(self, fileobj):
        fd = selectors._fileobj_to_fd(fileobj)
        loop = self._loop()
        events = loop._core_watching(fd) if loop is not None and not loop.is_closed() else 0
        if not events:
            raise KeyError(f"{fileobj!r} is not registered")
        return selectors.SelectorKey(fileobj, fd, events, None)


class Loop(LoopCore, base_events.BaseEventLoop):
    """asyncio's event loop on evloop's native core (see the module docstring)."""

    def __init__(self):
        super().__init__()
        # asyncio's selector code (borrowed below) keeps its transports by fd here.
        self._transports = weakref.WeakValueDictionary()
        self._signal_handlers = {}
        self._ssock = self._csock = None
        self._old_wakeup_fd = None
        self._selector = _WatchedFds(self)
        # Listening Unix sockets whose path to remove when they stop serving (asyncio 3.13's
        # create_unix_server, taken below, records them here), with the inode they were bound to.
        self._unix_server_sockets = {}

    # ----- the run ------------------------------------------------------------------------

    def run_forever(self):
        """Runs until ``stop()`` is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        woken_by_signals = self._install_wakeup_fd()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            self._core_run()
        finally:
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)
            if woken_by_signals and not self._signal_handlers:
                self._restore_wakeup_fd()

    def close(self):
        """Closes the loop: signal handlers removed, pending callbacks dropped."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        super().close()
        self._close_self_pipe()
        self._core_close()
        # As asyncio's selector loop, whose closed selector is gone (transports' repr reads it).
        self._selector = None

    def set_debug(self, enabled):
        super().set_debug(enabled)
        self._core_set_debug(bool(enabled))

    def _stop_serving(self, sock):
        """Stops a server's listening socket; a Unix one's path is removed if it is still the
        one it bound (asyncio 3.13's cleanup of Unix servers)."""
        path = sock.getsockname() if sock in self._unix_server_sockets else None
        self._remove_reader(sock.fileno())
        sock.close()
        if path is not None:
            inode = self._unix_server_sockets.pop(sock)
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                asyncio.log.logger.error(
                    "Unable to clean up listening UNIX socket %r: %r", path, err)

    # ----- signals: signal.set_wakeup_fd on a self-pipe the loop watches -------------------

    def _make_self_pipe(self):
        if self._ssock is None:
            self._ssock, self._csock = socket.socketpair()
            self._ssock.setblocking(False)
            self._csock.setblocking(False)
            self._add_reader(self._ssock.fileno(), self._read_signals)

    def _close_self_pipe(self):
        if self._ssock is not None:
            self._restore_wakeup_fd()
            self._remove_reader(self._ssock.fileno())
            self._ssock.close()
            self._csock.close()
            self._ssock = self._csock = None

    def _install_wakeup_fd(self):
        """On the main thread, makes signals wake the loop: Python's own handlers (asyncio.run's
        SIGINT handler) then run as soon as the loop reads the self-pipe."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if self._old_wakeup_fd is not None:
            return True
        self._make_self_pipe()
        try:
            old = signal.set_wakeup_fd(self._csock.fileno(), warn_on_full_buffer=False)
        except ValueError:
            return False
        self._old_wakeup_fd = old
        return True

    def _restore_wakeup_fd(self):
        if self._old_wakeup_fd is not None:
            old, self._old_wakeup_fd = self._old_wakeup_fd, None
            try:
                signal.set_wakeup_fd(old)
            except ValueError:
                pass

    def _read_signals(self):
        # Reading runs Python code, so Python's pending signal handlers run here too.
        while True:
            try:
                data = self._ssock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signum in data:
                handle = self._signal_handlers.get(signum)
                if handle is None:
                    continue
                if handle._cancelled:
                    self.remove_signal_handler(signum)
                else:
                    self.call_soon_threadsafe(handle._run)

    def add_signal_handler(self, sig, callback, *args):
        """Runs ``callback(*args)`` on the loop when signal ``sig`` arrives."""
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        self._make_self_pipe()
        try:
            if self._old_wakeup_fd is None:
                self._old_wakeup_fd = signal.set_wakeup_fd(
                    self._csock.fileno(), warn_on_full_buffer=False
                )
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        self._signal_handlers[sig] = events.Handle(callback, args, self, None)
        try:
            signal.signal(sig, _noop_signal_handler)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers and not self.is_running():
                self._restore_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        """Removes the handler of ``sig``; True if there was one."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        if not self._signal_handlers and not self.is_running():
            self._restore_wakeup_fd()
        return True


# What asyncio's selector loop writes in Python on top of fd watching, taken as it is:
# transports, servers, Unix sockets and pipes. Methods that need the selector
# itself, the self-pipe or signals, and those using `super()` (bound to their own class), are
# left out; ours above or LoopCore's stand in for them.
_NOT_TAKEN = {
    "__init__", "close",
    "_make_self_pipe", "_close_self_pipe", "_read_from_self", "_write_to_self",
    "_process_self_data", "_process_events",
    "_add_reader", "_remove_reader", "_add_writer", "_remove_writer",
    "add_reader", "remove_reader", "add_writer", "remove_writer",
    "add_signal_handler", "remove_signal_handler", "_handle_signal",
    # Native in LoopCore (src/sock.rs).
    "sock_recv", "sock_recv_into", "sock_recvfrom", "sock_recvfrom_into",
    "sock_sendall", "sock_sendto", "sock_connect", "sock_accept",
}


def _take(cls):
    for name, value in vars(cls).items():
        if name in _NOT_TAKEN or name in vars(Loop) or not inspect.isfunction(value):
            continue
        if "__class__" in value.__code__.co_freevars:
            continue
        setattr(Loop, name, value)


_take(unix_events._UnixSelectorEventLoop)
_take(selector_events.BaseSelectorEventLoop)


# A child made by fork() inside a running loop's callback (multiprocessing) runs loops of its own.
os.register_at_fork(after_in_child=forget_running_loop)


def new_event_loop():
    """A new ``evloop.Loop``."""
    return Loop()


class EventLoopPolicy(unix_events.DefaultEventLoopPolicy):
    """asyncio's default policy, making ``evloop.Loop`` loops."""

    _loop_factory = Loop
