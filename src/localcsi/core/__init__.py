"""The pure core: volume model, sizes and rounding, names and tags, placement and capacity math,
request validation. It imports nothing from adapters, subprocess, gRPC or Kubernetes."""
