"""A background loop that runs one action every N seconds until stopped, and survives its failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from localcsi.core.errors import CoreError

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: float, action: Callable[[], object], *, run_at_start: bool = False) -> None:
        self.name = name
        self.interval = interval
        self.action = action
        self.run_at_start = run_at_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run(self) -> None:
        if self.run_at_start:
            self._run_once()
        while not self._stop.wait(self.interval):
            self._run_once()

    def _run_once(self) -> None:
        try:
            self.action()
        except CoreError as error:  # a known failure (a command failed, lvm2 is missing): its message says it
            log.warning("%s failed: %s", self.name, error.message)
        except Exception:  # a failed pass is logged and retried on the next one; the loop must live on
            log.exception("%s failed", self.name)
