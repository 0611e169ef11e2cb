"""What the matrix's Python programs share: the generated echo_pb2 (the make fragment's
output in $RILL_PY_GEN, or generated here from $RILL_SHARED/idl/echo.proto) and the inputs of
the six checks, the same in every language."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
IDL = Path(os.environ.get("RILL_SHARED", HERE.parents[3] / "shared")) / "idl"


def _gen_dir() -> Path:
    d = os.environ.get("RILL_PY_GEN")
    if d and (Path(d) / "echo_pb2.py").exists():
        return Path(d)
    out = Path(tempfile.mkdtemp(prefix="rill-matrix-pb2-"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{IDL}", f"--python_out={out}",
         f"--grpc_python_out={out}", str(IDL / "echo.proto")],
        check=True,
    )
    return out


sys.path.insert(0, str(_gen_dir()))

import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["TestService"]

UNARY_PAYLOAD = b"matrix\x00\xffping"
STREAM_SIZES = (1, 10, 100, 70000)
# The client_streaming burst: BURST_MESSAGES messages of BURST_SIZE bytes in one call. A sender
# that writes each in a DATA frame of its own (23 bytes) gets the connection closed by tonic's
# h2 server (0.4.20) when its handler falls behind: GOAWAY(ENHANCE_YOUR_CALM,
# "too_many_data_frames"), issue 17.
BURST_MESSAGES = 30000
BURST_SIZE = 16
BIN_VALUE = bytes([0x00, 0xFF, 0xFE, 0x80, 0x01])
CALL_TIMEOUT = 20.0
# Percent-encoded in grpc-message on the wire: "%" and the non-ASCII bytes must survive.
ERROR_MESSAGE = "matrix error: 100% ünïcødé ✓"
# The response header in which a server names the protocol it saw the call come in on
# ("grpc", "grpc-web", "connect"): every server that can tell reports it on a call with echo-
# metadata, and the clients hold it to the protocol they were told to speak; the gRPC-only
# peers' servers (grpcio, grpc-js, grpc-go, tonic) cannot tell.
PROTOCOL_HEADER = "echo-protocol"

__all__ = ["echo_pb2", "echo_pb2_grpc", "SERVICE", "UNARY_PAYLOAD", "STREAM_SIZES", "BURST_MESSAGES",
           "BURST_SIZE", "BIN_VALUE", "CALL_TIMEOUT", "ERROR_MESSAGE", "PROTOCOL_HEADER"]
