"""Test substrate: the node VM harness (real LVM) and its pytest fixtures."""
