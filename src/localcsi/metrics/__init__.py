"""Prometheus metrics of every localcsi process: one naming scheme, bounded labels, no work at scrape time.

Every metric is named ``localcsi_<subject>_<what>_<unit>`` (``localcsi_vg_free_bytes``,
``localcsi_csi_request_duration_seconds``, ``localcsi_agent_cycle_commands``); counters end in ``_total``.
Labels only take values from a bounded set: a node, VG, thin pool or LV name, a device or mount point the
spec selects, a CSI method, a gRPC code, a command's program name, a phase. Never an error message or an
argv.

- ``http``: one HTTP server per address, ``GET /metrics`` and ``GET /healthz`` side by side.
- ``commands``: duration and failures of every command ``SubprocessRunner`` runs, by program name.
- ``agent``: what the agent's last cycle saw (VGs, thin pools, snapshots, devices), read at scrape time
  from the cycle's own snapshot, so a scrape runs no command.
- ``volumes``: LogicalVolume phases, provisioning time and failures, kept by the agent.
- ``controller``: the storage controller's leadership and reconciles.

The CSI calls are timed by a gRPC interceptor in ``localcsi.plugin.rpc_metrics``: the plugin stays the
only package that knows gRPC. This package imports prometheus_client, the standard library and the core.

Event-driven metrics (counters, histograms) live in prometheus_client's default registry, as its
idiom goes; collectors of a process's state are registered by that process's ``main``. The list of
metrics, the dashboard and the alert rules: docs/observability.md.
"""
