"""Graceful shutdown: SIGTERM or SIGINT sets ``should_exit``; a second one forces the process out.

Long-running commands wrap their serving loop in ``with Lifecycle() as lifecycle:``, start their
servers, call ``lifecycle.wait()``, then stop the servers gracefully. If shutdown hangs, a second
signal (Ctrl-C again, or a repeated SIGTERM) exits at once with status 128 + signal number.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Final, Self

from localcsi.logs import fields

log = logging.getLogger(__name__)

HANDLED_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
SignalHandler = Callable[[int, FrameType | None], object] | int | None
_STOP_WATCHER: Final = 0  # no signal has number 0
POLL_SECONDS: Final = 0.1  # how often a sleep checks a stop flag that is not an Event


def stop_sleeper(should_exit: Callable[[], bool]) -> Callable[[float], bool]:
    """A sleep that ends as soon as ``should_exit()`` turns True; it returns ``should_exit()``.

    Given an Event's own ``is_set`` (as ``lifecycle.should_exit.is_set``), the sleep is that Event's
    ``wait``, so it wakes the instant the Event is set; any other flag is polled every POLL_SECONDS.
    """
    event = getattr(should_exit, "__self__", None)
    if isinstance(event, threading.Event) and should_exit == event.is_set:
        return event.wait

    def sleep(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not should_exit() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, POLL_SECONDS))
        return should_exit()

    return sleep


def hard_exit(status: int) -> None:
    """Leave now, without waiting for threads or cleanup that may be what is stuck."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


class Lifecycle:
    """Turns termination signals into the ``should_exit`` event, as a context manager.

    Enter it from the main thread (Python runs signal handlers only there); leaving it restores the
    handlers that were installed before.
    """

    def __init__(
        self,
        signals: Iterable[signal.Signals] = HANDLED_SIGNALS,
        *,
        force_exit: Callable[[int], None] = hard_exit,
    ) -> None:
        self.should_exit = threading.Event()
        self.received_signal: signal.Signals | None = None
        self._signals = tuple(signals)
        self._force_exit = force_exit
        self._previous_handlers: dict[signal.Signals, SignalHandler] = {}
        self._wakeup_read = -1
        self._wakeup_write = -1
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> Self:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Lifecycle must be entered from the main thread: only it receives signals")
        if self._watcher is not None:
            raise RuntimeError("this Lifecycle is already in use")
        self._wakeup_read, self._wakeup_write = os.pipe()
        os.set_blocking(self._wakeup_write, False)
        self._watcher = threading.Thread(target=self._watch, name="localcsi-signals", daemon=True)
        self._watcher.start()
        try:
            for sig in self._signals:
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is requested; False if ``timeout`` seconds passed first."""
        return self.should_exit.wait(timeout)

    def request_exit(self, reason: str) -> None:
        """Start shutdown from code, e.g. when a server thread dies; any thread may call it."""
        log.info("shutting down: %s", reason, extra=fields(reason=reason))
        self.should_exit.set()

    def _close(self) -> None:
        for sig, previous in self._previous_handlers.items():
            # None: the old handler was installed outside Python, which we cannot reinstall.
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous_handlers.clear()
        if self._watcher is not None:
            os.write(self._wakeup_write, bytes([_STOP_WATCHER]))
            self._watcher.join()
            self._watcher = None
        for fd in (self._wakeup_read, self._wakeup_write):
            if fd >= 0:
                os.close(fd)
        self._wakeup_read = self._wakeup_write = -1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two arbitrary bytecodes, possibly while that thread holds
        # the lock of the event or of a log handler; so touch no locks here, only hand the number
        # to the watcher thread.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wakeup_write, bytes([signum]))

    def _watch(self) -> None:
        while data := os.read(self._wakeup_read, 1):
            if data[0] == _STOP_WATCHER:
                return
            self._handle(signal.Signals(data[0]))

    def _handle(self, sig: signal.Signals) -> None:
        if not self.should_exit.is_set():
            self.received_signal = sig
            log.info("received %s, shutting down gracefully", sig.name, extra=fields(signal=sig.name))
            self.should_exit.set()
            return
        log.warning("received %s during shutdown, forcing exit", sig.name, extra=fields(signal=sig.name))
        self._force_exit(128 + sig)
