"""Typed doors into the generated gRPC module, which grpcio-tools ships without type hints."""

from __future__ import annotations

from typing import Any

import grpc

from localcsi.csi import csi_pb2_grpc


def add_identity(servicer: object, server: grpc.Server) -> None:
    csi_pb2_grpc.add_IdentityServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def add_controller(servicer: object, server: grpc.Server) -> None:
    csi_pb2_grpc.add_ControllerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def add_node(servicer: object, server: grpc.Server) -> None:
    csi_pb2_grpc.add_NodeServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def identity_stub(channel: grpc.Channel) -> Any:
    return csi_pb2_grpc.IdentityStub(channel)  # type: ignore[no-untyped-call]


def controller_stub(channel: grpc.Channel) -> Any:
    return csi_pb2_grpc.ControllerStub(channel)  # type: ignore[no-untyped-call]


def node_stub(channel: grpc.Channel) -> Any:
    return csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
