"""localcsi: local disks as easy to use as central storage."""

DRIVER_NAME = "localcsi.io"
TOPOLOGY_KEY = "topology.localcsi.io/node"
API_GROUP = "localcsi.io"
API_VERSION = "v1alpha1"

__version__ = "0.1.0"
