"""Prometheus metrics of every localcsi process: one naming scheme, bounded labels, no work at scrape time.

Every metric is named ``localcsi_<component>_<what>_<unit>`` (``localcsi_agent_vg_free_bytes``,
``localcsi_csi_request_duration_seconds``); counters end in ``_total``. Labels only take values from a
bounded set: a node, VG, thin pool or LV name, a CSI method, a gRPC code, a command's program name, a
phase. Never a path, an error message or an argv.

- ``http``: one HTTP server per address, ``GET /metrics`` and ``GET /healthz`` side by side.
- ``commands``: duration and failures of every command ``SubprocessRunner`` runs, by program name.
- ``rpc``: a gRPC server interceptor: latency and count by gRPC code of every CSI call.
- ``agent``: what the agent's last cycle saw (VGs, thin pools, snapshots, devices), read at scrape time
  from the cycle's own snapshot, so a scrape runs no command; LogicalVolume phases and provisioning.
- ``controller``: the storage controller's leadership and reconciles.

Event-driven metrics (counters, histograms) live in prometheus_client's default registry, as its
idiom goes; collectors of a process's state are registered by that process's ``main``. The list of
metrics, the dashboard and the alert rules: docs/observability.md.
"""
