"""The CSI services' logic, over the pure core and an injected storage backend.

``ControllerDriver`` validates requests, holds per-volume locks, checks idempotency and places
volumes; a ``Backend`` (see ``backend``) carries out the plans it makes. Nothing here imports gRPC
or protobuf: ``localcsi.plugin`` translates between those and this package.
"""
