"""The kube-scheduler extender: capacity-aware filter and prioritize with reservations (docs/extender.md)."""
