"""The LVM adapter: lvm2's CLI (JSON reports, argv lists, names validated by the core first)."""
