from concurrent import futures

import grpc
import pytest

from localcsi.core.errors import NotFound
from localcsi.csi import csi_pb2, csi_pb2_grpc, services
from localcsi.plugin.errors import MAX_MESSAGE_WIRE_BYTES, bounded_message, translate_errors

pytestmark = pytest.mark.unit


def wire_bytes(message: str) -> int:
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode())


@pytest.mark.parametrize("message", ["short", "x" * 4096, "x" * 1_000_000, "卷" * 5000, "%" * 3000, "🙂a" * 2000])
def test_a_message_fits_the_trailer_whatever_it_echoes(message: str) -> None:
    bounded = bounded_message(message)
    assert wire_bytes(bounded) <= MAX_MESSAGE_WIRE_BYTES
    if wire_bytes(message) <= MAX_MESSAGE_WIRE_BYTES:
        assert bounded == message
    else:
        kept = bounded.partition("... (")[0]
        assert message.startswith(kept) and wire_bytes(kept) > MAX_MESSAGE_WIRE_BYTES // 2
        assert bounded.endswith(f"({len(message) - len(kept)} more characters not shown)")


class Volumes(csi_pb2_grpc.ControllerServicer):
    @translate_errors
    def DeleteVolume(self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext) -> None:
        raise NotFound(f"volume {request.volume_id!r} does not exist")


def test_an_error_echoing_a_1_mb_id_reaches_the_client_with_its_own_code() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services.add_controller(Volumes(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as raised:
            services.controller_stub(channel).DeleteVolume(
                csi_pb2.DeleteVolumeRequest(volume_id="x" * 1_000_000), timeout=30
            )
    finally:
        server.stop(None)
    error = raised.value
    details = error.details() or ""
    assert error.code() is grpc.StatusCode.NOT_FOUND, details
    assert details.startswith("volume 'xxxx")
    assert details.endswith("more characters not shown)")
