"""The mutating admission webhook: marks pods that use localcsi volumes with an extended resource, so
that kube-scheduler asks the extender about those pods only (docs/webhook.md)."""

from typing import Final

# The extended resource the webhook requests and kube-scheduler's extender config manages
# (managedResources, ignoredByScheduler: true).
CAPACITY_RESOURCE: Final = "localcsi.io/capacity"
# How much of it a marked pod requests: a marker, not an amount (docs/webhook.md#the-request).
CAPACITY_QUANTITY: Final = "1"
