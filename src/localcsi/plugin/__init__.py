"""The CSI plugin: thin gRPC servicers over the driver services (localcsi.driver)."""
