"""Kubernetes adapter: the API client, our custom resources, informers, events and leader election."""
