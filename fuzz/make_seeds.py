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


# The server target's input (fuzz_targets/server.rs): what one client connection sends.
def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def h2frame(kind, flags, stream, payload=b""):
    """An HTTP/2 frame: 24-bit length, type, flags, stream id."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + u32(stream) + payload


def hpack(*pairs):
    """Header fields as HPACK literals without indexing, new names, no Huffman."""
    out = b""
    for name, value in pairs:
        assert len(name) < 127 and len(value) < 127
        out += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return out


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2frame(4, 0, 0)


def h2_headers(stream, path, ctype, *extra, end=False):
    fields = hpack(
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/echo.TestService/" + path),
        (b":authority", b"localhost"),
        (b"content-type", ctype),
        *extra,
    )
    return h2frame(1, 0x4 | (0x1 if end else 0), stream, fields)


def h2_call(path, ctype, *bodies, extra=()):
    """A connection's preface, then one call on stream 1: HEADERS, DATA frames, the last
    one ending the stream."""
    out = PREFACE + h2_headers(1, path, ctype, *extra)
    for i, b in enumerate(bodies):
        out += h2frame(0, 0x1 if i == len(bodies) - 1 else 0, 1, b)
    return out


def http1(method, target, headers, body=b""):
    head = method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
    for k, v in headers:
        head += k + b": " + v + b"\r\n"
    return head + b"\r\n" + body


def post(path, ctype, body, *headers):
    return http1(
        b"POST",
        b"/echo.TestService/" + path,
        [(b"Content-Type", ctype), (b"Content-Length", str(len(body)).encode()), *headers],
        body,
    )


def tth(seq, kind, method=b"EchoServer", strs=(), payload=b"", flags=2, proto=0x10):
    """A TTHeader packet as Kitex's StreamX writes a frame (WIRE.md §2): string pairs, then
    the int keys FrameType (0x1b) and ToMethod (9); `kind=None` leaves the int keys out (a
    PingPong request's)."""
    info = b""
    if strs:
        info += b"\x01" + u16(len(strs))
        for k, v in strs:
            info += u16(len(k)) + k + u16(len(v)) + v
    if kind is not None:
        ints = [(0x1B, kind), (9, method)]
        info += b"\x10" + u16(len(ints))
        for k, v in ints:
            info += u16(k) + u16(len(v)) + v
    header = bytes([proto, 0]) + info
    header += b"\x00" * (-len(header) % 4)
    rest = u16(0x1000) + u16(flags) + struct.pack(">i", seq) + u16(len(header) // 4)
    rest += header + payload
    return u32(len(rest)) + rest


ISN = [(b"isn", b"TestService")]
# echo.thrift's Request{payload: "hi", count: 2} as Thrift Binary.
T_REQ = b"\x0b\x00\x01" + u32(2) + b"hi" + b"\x08\x00\x02" + u32(2) + b"\x00"


def t_call(name, seq=1):
    """A Thrift Binary CALL of `name` whose args struct holds T_REQ as field 1."""
    return u32(0x80010001) + u32(len(name)) + name + u32(seq) + b"\x0c\x00\x01" + T_REQ + b"\x00"


def stream(seq, method, *payloads, end=b"4"):
    out = tth(seq, b"2", method, ISN)
    for p in payloads:
        out += tth(seq, b"3", method, payload=p)
    return out + (tth(seq, end, method) if end else b"")


# The client target's input (fuzz_targets/client.rs): a protocol byte (0 gRPC, 1 gRPC-Web
# over HTTP/1.1, 2 over HTTP/2, 3 Connect over HTTP/1.1, 4 over HTTP/2, 5 TTHeader), a
# shape byte (0 unary, 1 client streaming, 2 server streaming, 3 bidi), then what the
# server sends.
def rounds(first, rest=b""):
    """The server's bytes in two rounds (the first `n` bytes, then the rest), after the
    protocol and shape bytes; `rest` empty: one round."""
    if not rest:
        return u16(0) + first
    return u16(len(first)) + first + rest


H2_SETTINGS = h2frame(4, 0, 0) + h2frame(4, 0x1, 0)


def h2_answer(ctype, *data, trailers=(), extra=()):
    """A server's side of stream 1 in two rounds: SETTINGS (with the ack of the
    client's), then the response's HEADERS, DATA frames and trailers (or END_STREAM on
    the last DATA frame if there are none)."""
    out = h2frame(1, 0x4, 1, hpack((b":status", b"200"), (b"content-type", ctype), *extra))
    for i, d in enumerate(data):
        last = i == len(data) - 1 and not trailers
        out += h2frame(0, 0x1 if last else 0, 1, d)
    if trailers:
        out += h2frame(1, 0x5, 1, hpack(*trailers))
    return rounds(H2_SETTINGS, out)


def http1_answer(status, headers, body=b"", chunked=False):
    """An HTTP/1.1 response, in one round."""
    head = b"HTTP/1.1 " + status + b"\r\n"
    for k, v in headers:
        head += k + b": " + v + b"\r\n"
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n"
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    else:
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return rounds(head + b"\r\n" + body)


def t_reply(name, seq=1):
    """A Thrift Binary REPLY whose result struct holds echo.thrift's Response as field 0."""
    resp = b"\x0b\x00\x01" + u32(2) + b"hi" + b"\x00"
    return u32(0x80010002) + u32(len(name)) + name + u32(seq) + b"\x0c\x00\x00" + resp + b"\x00"

CONNECT_UNARY_ERROR = b'{"code":"not_found","message":"x","details":[{"type":"a.B","value":"CgN3aHk"}]}'


# The c_abi target's input (fuzz_targets/c_abi.rs): operations, each an opcode byte and its
# arguments, in the order the target reads them.
OP = {
    name: i
    for i, name in enumerate(
        "channel_new channel_free call_open call_open_req call_send call_try_send "
        "call_send_batch call_close_send call_recv call_headers call_finish call_status "
        "call_cancel call_free server_new server_add_method server_listen server_start "
        "server_accept server_port server_shutdown server_free scall_info scall_recv "
        "scall_send scall_send_headers scall_finish scall_finish_biz scall_cancel "
        "scall_status scall_free md_new md_append md_read md_free poller_new poller_free "
        "set_poller poller_next misc".split()
    )
}
STATIC = 0xE0  # the process-wide server; for channels, + the protocol (0 gRPC .. 3 TTHeader)
ZERO = 0xF0  # handle 0
NULL = 0xFF  # a NULL string or payload


def op(name, *args):
    out = bytes([OP[name]])
    for a in args:
        out += a if isinstance(a, bytes) else bytes([a])
    return out


def ms(n):
    """A timeout byte: n ms (1..6)."""
    return n + 3


def pl(b):
    """A payload of up to 127 bytes."""
    return bytes([len(b)]) + b


def cs(b):
    """A C string of up to 127 bytes."""
    return bytes([len(b)]) + b


def other(kind_step, slot):
    """A slot of another kind's table: kind_step 0..4 picks which."""
    return bytes([0xE8 + kind_step, slot])


def rand_handle(v):
    return bytes([0xF8]) + struct.pack("<Q", v)


UNARY_M, CLIENT_M, SERVER_M, BIDI_M, GET_M = range(5)  # the static server's methods

C_ABI = {
    # A channel of its own to the static server, a unary call: send (which half-closes),
    # close_send again, accept, receive, answer, finish; the client receives and finishes;
    # the call freed, then used again.
    "unary-roundtrip": op("channel_new", 0, 0, 0)
    + op("call_open", 0, UNARY_M, 0, 0, 0)
    + op("call_send", 0, pl(b"\x0a\x02hi"), ms(6))
    + op("call_close_send", 0)
    + op("server_accept", STATIC, 1, 0, ms(6))
    + op("scall_info", 0, 0)
    + op("scall_recv", 0, 1, ms(6))
    + op("scall_recv", 0, 1, ms(4))
    + op("scall_send", 0, 0, pl(b"\x0a\x02ok"), ms(4))
    + op("scall_finish", 0, 0, NULL, pl(b""), ZERO)
    + op("call_recv", 0, 1, ms(6))
    + op("call_recv", 0, 1, ms(6))
    + op("call_status", 0, 0)
    + op("call_finish", 0, 1, ms(4))
    + op("call_free", 0)
    + op("call_recv", 0, 0),
    # Bidi on the static Connect channel: a batch of messages, echoed back in a batch.
    "bidi-connect-batches": op("call_open", STATIC + 2, BIDI_M, 3, 0, 1)
    + op("call_send_batch", 1, 3, pl(b"a"), pl(b"bb"), bytes([0x84, 0x00, 0x78]))
    + op("server_accept", STATIC, 1, 2, ms(6))
    + op("scall_recv", 2, 0x43, ms(6))
    + op("scall_send", 2, 2, 2, pl(b"x"), pl(b"yy"))
    + op("call_recv", 1, 0x83, ms(6))
    + op("call_close_send", 1)
    + op("scall_recv", 2, 1, ms(4))
    + op("scall_finish", 2, 0, cs(b"done"), pl(b""), ZERO)
    + op("call_recv", 1, 1, ms(6))
    + op("call_headers", 1, 0, 3)
    + op("md_read", 3, 0),
    # Server streaming over gRPC-Web, opened with its request; the server ends it with a biz
    # status, which the client reads.
    "server-stream-biz-grpc-web": op("call_open_req", STATIC + 1, SERVER_M, 2, 0, pl(b"q"), 2)
    + op("server_accept", STATIC, 1, 1, ms(6))
    + op("scall_recv", 1, 1, ms(4))
    + op("scall_send", 1, 1, pl(b"r1"))
    + op("scall_finish_biz", 1, struct.pack("<i", 7), cs(b"no"), 1, cs(b"k"), cs(b"v"))
    + op("call_recv", 2, 1, ms(6))
    + op("call_recv", 2, 1, ms(6))
    + op("call_status", 2, 0x02)
    + op("call_status", 2, 0x03, 0),
    # Stale, zero, random and wrong-kind handles; RILL_FOREVER on a freed call.
    "stale-handles": op("md_new", 0)
    + op("md_free", 0)
    + op("md_append", 0, 0, pl(b"v"))
    + op("md_free", 0)
    + op("call_free", ZERO)
    + op("channel_free", rand_handle(0x0200000100000001))
    + op("scall_finish", other(0, 0), 0, NULL, pl(b""), ZERO)
    + op("call_open", STATIC, UNARY_M, 0, 0, 5)
    + op("call_free", 5)
    + op("call_send", 5, pl(b"x"), ms(1))
    + op("call_finish", 5, 1, 3)
    + op("server_accept", ZERO, 0, 0),
    # A server of its own: the wrong order first, then listen, start, a call to it, its
    # metadata, shutdown and accept after it.
    "server-lifecycle": op("server_new", 0, 0)
    + op("server_start", 0)
    + op("server_add_method", 0, UNARY_M, 0, 0)
    + op("server_listen", 0, 0, 0)
    + op("server_listen", 0, 0, 0)
    + op("server_start", 0)
    + op("server_add_method", 0, BIDI_M, 3, 0)
    + op("server_port", 0, 0)
    + op("channel_new", 1, 1, 0)
    + op("md_new", 0)
    + op("md_append", 0, 0, pl(b"hello"))
    + op("md_append", 0, 2, pl(b"\x00\xff"))
    # Call options: two changes, the metadata list in slot 0 and a 1 s deadline.
    + op("call_open_req", 1, UNARY_M, 0, bytes([0x05, 2, 0, 0, 1, 5]), pl(b"z"), 0)
    + op("server_accept", 0, 1, 4, ms(6))
    + op("scall_info", 4, 4, 1)
    + op("md_read", 1, 0)
    + op("md_read", 1, 2, 0)
    + op("scall_finish", 4, 5, cs(b"missing"), pl(b"\x08\x05"), 0)
    + op("call_recv", 0, 1, ms(6))
    + op("server_shutdown", 0, 2)
    + op("server_accept", 0, 0, 6)
    + op("server_free", 0),
    # Options: bad sizes, timeouts and enums refused; a poller told about a call.
    "options-and-poller": op("channel_new", 2, 0, 0x05, 0, 4, 1, 0)
    + op("channel_new", 2, 2, 0x03, 1, 2)
    + op("server_new", 1, 0x05, 1, 0, 5, 1)
    + op("call_open", STATIC, UNARY_M, 0, bytes([0x03, 3, 2]), 0)
    + op("misc", 3, struct.pack("<I", 0))
    + op("misc", 4, struct.pack("<I", 1))
    + op("poller_new", 0)
    + op("call_open", STATIC, BIDI_M, 3, 0, 0)
    + op("set_poller", 0, 0, 0, 9)
    + op("poller_next", 0, 0, 4)
    + op("call_send", 0, pl(b"p"), ms(4))
    + op("poller_next", 0, 1, 4, ms(6)),
}

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
        "unary-error": CONNECT_UNARY_ERROR,
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
        # Kitex's Protobuf PingPong request (WIRE.md §1.6): protocol id 00, a Framed
        # KitexProtobuf message (`90 01`) inside. No chunk-size byte: the PingPong reader
        # takes the input whole.
        "pingpong-protobuf": bytes.fromhex(
            "00000084100000000000000100150000010001000369736e000b546573745365727669636510"
            "000600140000000600046563686f0009000850696e67506f6e670016000131000100066672616d"
            "65640003000c6b697465782d636c69656e7400000000000022900100010000000850696e67506f"
            "6e67000000010a0c6d617472697800ff70696e67"
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
    "server": {
        # HTTP/2 prior knowledge: each protocol's call.
        "h2-grpc-unary": h2_call(b"PingPong", b"application/grpc", frame(0, HI), extra=[(b"te", b"trailers")]),
        "h2-grpc-unary-timeout-gzip": h2_call(
            b"PingPong",
            b"application/grpc+proto",
            frame(1, gz(HI)),
            extra=[(b"grpc-encoding", b"gzip"), (b"grpc-timeout", b"1S")],
        ),
        "h2-grpc-bidi": h2_call(b"Echo", b"application/grpc", frame(0, HI), frame(0, b"err")),
        "h2-grpc-client-stream": h2_call(b"EchoClient", b"application/grpc", frame(0, HI) + frame(0, HI), b""),
        "h2-grpc-server-stream-error": h2_call(b"EchoServer", b"application/grpc", frame(0, b"\x03biz")),
        "h2-grpc-unknown-method": h2_call(b"Nope", b"application/grpc", frame(0, HI)),
        "h2-grpc-web": h2_call(b"PingPong", b"application/grpc-web+proto", frame(0, HI)),
        "h2-connect-stream": h2_call(b"EchoServer", b"application/connect+proto", frame(0, b"\x02hi")),
        "h2-connect-unary": h2_call(
            b"PingPong", b"application/proto", HI, extra=[(b"connect-protocol-version", b"1")]
        ),
        # Two streams, and the connection-level frames: PING, WINDOW_UPDATE, SETTINGS ack,
        # RST_STREAM.
        "h2-two-streams-control": PREFACE
        + h2frame(4, 0x1, 0)
        + h2frame(6, 0, 0, b"12345678")
        + h2frame(8, 0, 0, u32(1 << 20))
        + h2_headers(1, b"Echo", b"application/grpc")
        + h2_headers(3, b"PingPong", b"application/grpc")
        + h2frame(0, 0, 1, frame(0, HI))
        + h2frame(0, 0x1, 3, frame(0, HI))
        + h2frame(3, 0, 1, u32(8)),
        # HTTP/1.1: Connect unary (POST and GET), gRPC-Web and its text mode, Connect
        # streaming, a chunked body, a preflight, two requests on one connection.
        "http1-connect-unary": post(b"PingPong", b"application/proto", HI, (b"Connect-Protocol-Version", b"1")),
        "http1-connect-unary-gzip": post(b"PingPong", b"application/proto", gz(HI), (b"Content-Encoding", b"gzip")),
        "http1-connect-json-error": post(b"PingPong", b"application/json", b'"err"'),
        "http1-connect-get": http1(
            b"GET", b"/echo.TestService/Get?connect=v1&encoding=proto&base64=1&message=CgJoaQ", []
        ),
        "http1-grpc-web": post(b"PingPong", b"application/grpc-web+proto", frame(0, HI)),
        "http1-grpc-web-text": post(b"EchoServer", b"application/grpc-web-text", base64.b64encode(frame(0, b"\x02hi"))),
        "http1-connect-stream": post(
            b"EchoClient",
            b"application/connect+proto",
            frame(1, gz(HI)) + frame(0, HI),
            (b"Connect-Content-Encoding", b"gzip"),
        ),
        "http1-chunked": http1(
            b"POST",
            b"/echo.TestService/PingPong",
            [(b"Content-Type", b"application/proto"), (b"Transfer-Encoding", b"chunked")],
            b"4\r\n" + HI + b"\r\n0\r\n\r\n",
        ),
        "http1-preflight": http1(
            b"OPTIONS",
            b"/echo.TestService/PingPong",
            [
                (b"Origin", b"http://a.example"),
                (b"Access-Control-Request-Method", b"POST"),
                (b"Access-Control-Request-Headers", b"content-type,connect-protocol-version"),
            ],
        ),
        "http1-two-requests": post(b"PingPong", b"application/proto", HI)
        + post(b"PingPong", b"application/proto", b"biz"),
        # TTHeader Streaming (Kitex's StreamX): each shape, a reset, two streams at once.
        "ttheader-server-stream": stream(1, b"EchoServer", T_REQ),
        "ttheader-bidi": stream(1, b"Echo", T_REQ, T_REQ),
        "ttheader-client-stream": stream(1, b"EchoClient", T_REQ, T_REQ),
        "ttheader-reset": stream(1, b"Echo", T_REQ, end=b"5"),
        "ttheader-two-streams": tth(1, b"2", b"Echo", ISN)
        + tth(3, b"2", b"EchoServer", ISN)
        + tth(1, b"3", b"Echo", payload=T_REQ)
        + tth(3, b"3", b"EchoServer", payload=T_REQ)
        + tth(3, b"4", b"EchoServer")
        + tth(1, b"4", b"Echo"),
        # Thrift PingPong: TTHeader, Framed and Buffered, and Kitex's Protobuf.
        "pingpong-ttheader": tth(1, None, strs=ISN, payload=t_call(b"PingPong"), flags=0, proto=0),
        "pingpong-framed-two": u32(len(t_call(b"PingPong"))) + t_call(b"PingPong")
        + u32(len(t_call(b"Nope", 2))) + t_call(b"Nope", 2),
        "pingpong-buffered": t_call(b"PingPong") + t_call(b"PingPong", 2),
    },
    "client": {
        "grpc-unary": b"\x00\x00"
        + h2_answer(b"application/grpc", frame(0, HI), trailers=[(b"grpc-status", b"0")]),
        "grpc-server-stream-error": b"\x00\x02"
        + h2_answer(
            b"application/grpc+proto",
            frame(0, HI),
            frame(1, gz(HI)),
            extra=[(b"grpc-encoding", b"gzip")],
            trailers=[
                (b"grpc-status", b"5"),
                (b"grpc-message", b"not%20found"),
                (b"grpc-status-details-bin", base64.b64encode(STATUS).rstrip(b"=")),
            ],
        ),
        # A trailers-only answer, and a GOAWAY.
        "grpc-bidi-trailers-only-goaway": b"\x00\x03"
        + rounds(
            H2_SETTINGS,
            h2frame(1, 0x5, 1, hpack((b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"14")))
            + h2frame(7, 0, 0, u32(1) + u32(0)),
        ),
        "grpc-web-http1": b"\x01\x00"
        + http1_answer(
            b"200 OK",
            [(b"Content-Type", b"application/grpc-web+proto")],
            frame(0, HI) + frame(0x80, WEB_TRAILERS),
        ),
        "grpc-web-http1-chunked-error": b"\x01\x02"
        + http1_answer(
            b"200 OK",
            [(b"Content-Type", b"application/grpc-web+proto")],
            frame(0, HI) + frame(0x80, WEB_ERROR),
            chunked=True,
        ),
        "grpc-web-h2": b"\x02\x00"
        + h2_answer(b"application/grpc-web+proto", frame(0, HI) + frame(0x80, WEB_TRAILERS)),
        "connect-unary-http1": b"\x03\x00"
        + http1_answer(b"200 OK", [(b"Content-Type", b"application/proto")], HI),
        "connect-unary-http1-error": b"\x03\x00"
        + http1_answer(b"404 Not Found", [(b"Content-Type", b"application/json")], CONNECT_UNARY_ERROR),
        "connect-stream-http1": b"\x03\x02"
        + http1_answer(
            b"200 OK",
            [(b"Content-Type", b"application/connect+proto")],
            frame(0, HI) + frame(2, CONNECT_ERROR),
            chunked=True,
        ),
        "connect-unary-h2-gzip": b"\x04\x00"
        + h2_answer(b"application/proto", gz(HI), extra=[(b"content-encoding", b"gzip")]),
        "connect-bidi-h2": b"\x04\x03"
        + h2_answer(b"application/connect+proto", frame(0, HI) + frame(2, b'{"metadata":{"k":["v"]}}')),
        # TTHeader: a stream's HEADER, DATA and TRAILER frames; a PingPong reply.
        "ttheader-server-stream": b"\x05\x02"
        + rounds(
            tth(1, b"2", b"EchoServer")
            + tth(1, b"3", b"EchoServer", payload=T_REQ)
            + tth(1, b"4", b"EchoServer")
        ),
        "ttheader-bidi-biz-error": b"\x05\x03"
        + rounds(
            tth(1, b"2", b"Echo")
            + tth(1, b"4", b"Echo", strs=[(b"biz-status", b"7"), (b"biz-message", b"no"), (b"biz-extra", b'{"k":"v"}')])
        ),
        "ttheader-pingpong": b"\x05\x00"
        + rounds(tth(1, None, strs=[(b"biz-status", b"0")], payload=t_reply(b"PingPong"), flags=0, proto=0)),
    },
    "c_abi": C_ABI,
}
# Kitex's Protobuf PingPong request is a whole connection's bytes as it is.
SEEDS["server"]["pingpong-protobuf"] = SEEDS["ttheader"]["pingpong-protobuf"]

for target, seeds in SEEDS.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
