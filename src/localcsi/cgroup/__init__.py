"""The cgroup adapter: pod cgroups and their IO limits."""
