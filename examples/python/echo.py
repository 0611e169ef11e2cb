"""echo.proto's messages and service, built with the protobuf runtime alone (no protoc).
With protoc's output instead: `python -m grpc_tools.protoc -I.. --python_out=. echo.proto`,
then `from echo_pb2 import Request, Response` and
`SERVICE = echo_pb2.DESCRIPTOR.services_by_name["TestService"]`."""

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

F = descriptor_pb2.FieldDescriptorProto
file = descriptor_pb2.FileDescriptorProto(name="echo.proto", package="echo", syntax="proto3")
request = file.message_type.add(name="Request")
request.field.add(name="payload", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
request.field.add(name="count", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
response = file.message_type.add(name="Response")
response.field.add(name="payload", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
service = file.service.add(name="TestService")
for name, client_streaming, server_streaming in [
    ("PingPong", False, False),
    ("Echo", True, True),
    ("EchoClient", True, False),
    ("EchoServer", False, True),
]:
    service.method.add(
        name=name,
        input_type=".echo.Request",
        output_type=".echo.Response",
        client_streaming=client_streaming,
        server_streaming=server_streaming,
    )

DESCRIPTOR = descriptor_pool.DescriptorPool().Add(file)
Request = GetMessageClass(DESCRIPTOR.message_types_by_name["Request"])
Response = GetMessageClass(DESCRIPTOR.message_types_by_name["Response"])
SERVICE = DESCRIPTOR.services_by_name["TestService"]
