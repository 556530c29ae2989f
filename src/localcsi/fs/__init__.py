"""The filesystem adapter: blkid, mkfs, mount and umount, findmnt, resize, statfs and block sizes.

Every command is an argv list run through a ``CommandRunner``, so in a container the same
``nsenter`` into PID 1 that lvm2 uses puts mounts, mount-table queries and path checks in the
host's mount namespace, where kubelet looks for them.
"""
