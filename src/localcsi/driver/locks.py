"""The driver's per-volume locks are ``localcsi.core.locks.OperationLocks``; this name stays only for
importers not yet moved to it (driver/controller.py)."""

from __future__ import annotations

from localcsi.core.locks import OperationLocks as VolumeLocks

__all__ = ["VolumeLocks"]
