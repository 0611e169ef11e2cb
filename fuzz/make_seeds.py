#!/usr/bin/env python3
"""Writes the seed corpora (corpus/<target>/): small inputs holding the bytes of real frames
and header values, one file each, named for what it is. Rerun after changing a seed here:
    python3 fuzz/make_seeds.py
"""
import base64
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(flags, msg):
    """An envelope: a flags byte, a big-endian u32 length, the message."""
    return bytes([flags]) + struct.pack(">I", len(msg)) + msg


def gz(b):
    return gzip.compress(b, mtime=0)


def mode(gzip_=False, end=0, chunk=0):
    """The envelope target's first byte: bit 0 gzip, bits 1-2 the end flag (1 gRPC-Web,
    2 Connect), bits 3-7 the chunk size (0 counts as 1)."""
    return bytes([int(gzip_) | end << 1 | chunk << 3])


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def field(n, b):
    return varint(n << 3 | 2) + varint(len(b)) + b


HI = b"\x0a\x02hi"  # echo.Message{text: "hi"}
ANY = field(1, b"a.B") + field(2, field(1, b"why"))  # google.protobuf.Any
STATUS = b"\x08\x05" + field(2, b"x") + field(3, ANY)  # google.rpc.Status{5, "x", [ANY]}
WEB_TRAILERS = b"grpc-status: 0\r\n"
WEB_ERROR = (
    b"grpc-status: 5\r\ngrpc-message: not%20found\r\n"
    b"grpc-status-details-bin: " + base64.b64encode(STATUS).rstrip(b"=") + b"\r\n"
)
CONNECT_ERROR = (
    b'{"error":{"code":"not_found","message":"x","details":[{"type":"a.B","value":"CgN3aHk"}]},'
    b'"metadata":{"k":["v"]}}'
)

SEEDS = {
    "envelope": {
        # gRPC: one message, pushed a byte at a time.
        "grpc-frame": mode() + frame(0, b"\x0a\x00"),
        "grpc-empty-frame": mode(chunk=31) + frame(0, b""),
        # Two messages in 3-byte chunks: each straddles chunks.
        "grpc-two-frames-chunk3": mode(chunk=3) + frame(0, HI) + frame(0, b"\x0a\x00"),
        "grpc-gzip-frame": mode(gzip_=True, chunk=8) + frame(1, gz(HI)),
        # gRPC-Web: a message, then the trailers frame (flag 0x80).
        "grpc-web-trailers": mode(end=1, chunk=31)
        + frame(0, HI)
        + frame(0x80, WEB_TRAILERS),
        "grpc-web-gzip-trailers": mode(gzip_=True, end=1, chunk=5)
        + frame(1, gz(HI))
        + frame(0x80, WEB_TRAILERS),
        # Connect: a message, then the end-stream message (flag 0x02).
        "connect-end-stream": mode(end=2) + frame(2, b"{}"),
        "connect-message-end-stream": mode(end=2, chunk=31) + frame(0, HI) + frame(2, b"{}"),
        "connect-gzip-end-stream": mode(gzip_=True, end=2, chunk=16)
        + frame(1, gz(HI))
        + frame(3, gz(b"{}")),
    },
    "grpc_headers": {
        "timeout-1S": b"1S",
        "timeout-100m": b"100m",
        "timeout-max-H": b"99999999H",
        "timeout-5n": b"5n",
        "message-percent": b"%41b%zz",
        "message-utf8": b"caf%C3%A9 %25",
        "bin-padded": b"AAE=",
        "bin-unpadded": b"AAE",
        "bin-status": base64.b64encode(STATUS),
    },
    "grpc_web": {
        "trailers-ok": WEB_TRAILERS,
        "trailers-error": WEB_ERROR,
        "trailers-mixed-case": b"Grpc-Status:3\nGRPC-MESSAGE: bad\r\nx-k: v\r\n",
        # Text mode: base64 of frame(0, HI).
        "text-frame": b"AAAAAAQKAmhp",
        "text-padded-pieces": b"aGk=YWJjZA==eHl6",
        "text-trailers": base64.b64encode(frame(0x80, WEB_TRAILERS)),
    },
    "connect": {
        "end-stream-error": CONNECT_ERROR,
        "end-stream-ok": b'{"metadata":{"k":["v","w"]}}',
        "end-stream-empty": b"{}",
        "unary-error": b'{"code":"not_found","message":"x","details":[{"type":"a.B","value":"CgN3aHk"}]}',
        "unary-error-unknown-code": b'{"code":"nope"}',
        "status-proto": STATUS,
        # Connect GET queries: base64 with compression, and percent-encoding with a bad escape.
        "get-query": b"connect=v1&base64=1&compression=gzip&encoding=proto&message=CgJoaQ",
        "get-query-percent": b"encoding=json&message=%7B%22a%22%3A1%7D+x%zz%4",
    },
    # Kitex v0.16.3's packets (interop/kitex/WIRE.md), after the chunk-size byte.
    "ttheader": {
        "streaming-header-and-data": bytes([7]) + bytes.fromhex(
            "0000003a10000002000000010 00c1000"
            "010001000369736e000b5465737453657276696365"
            "100002001b00013200090 00a4563686f536572766572000000"
            "0000003710000002000000010 0061000"
            "10000200090 00a4563686f536572766572001b000133"
            "08000200000005 0b0001000000067374726561 6d00".replace(" ", "")
        ),
        "pingpong-reply": bytes([64]) + bytes.fromhex(
            "000000461000000000000001000300001000010016000132 0000"
            "0000002c80010002000000085069 6e67506f6e6700000001"
            "0c00000b0001000000 0c6d6174726978 00ff70696e670000".replace(" ", "")
        ),
        # Buffered PingPong (WIRE.md §1.5): Kitex's request, then one holding every Thrift
        # type; both bare TMessages (the first byte, 0x80, is also the frame reader's cut).
        "pingpong-buffered": bytes.fromhex(
            "800100010000000850696e67506f6e6700000001"
            "0c00010b00010000000c6d617472697800ff70696e670000"
            "8001000100000001 6d00000007"
            "02000101 0300027f 04000300000000000000 00 0600040001 08000500000001"
            "0a00060000000000000001 1000070001020304050607080 90a0b0c0d0e0f"
            "0f0008080000000200000001 00000002 0e00090b0000000200000001610000 0000"
            "0d000a080c000000010000000708000100000001 00 0f000b0f00000001030000000 20102"
            "00".replace(" ", "")
        ),
    },
}

for target, seeds in SEEDS.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
