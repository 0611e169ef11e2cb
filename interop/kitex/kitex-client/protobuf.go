package main

// protobufAPI (kitex_gen/protobuf, `kitex -type protobuf` of shared/idl/echo.proto) calls
// PingPong as a Kitex client of a protobuf service sends it by default: Kitex's Protobuf
// payload (KitexProtobuf) in TTHeaderFramed (client.initTransportProtocol sets that for
// protobuf unless transport.GRPC is set). echo.proto's service has streaming methods too,
// for which the generated NewClient sets transport.GRPC; main starts from PurePayload
// (dropping it), so PingPong goes as it would from a service of unary methods only. The
// streaming methods are not called through it: Kitex streams protobuf over gRPC only.

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudwego/kitex/client"

	pb "rillrpc.dev/interop/kitex/kitex_gen/protobuf/echo"
	pbsvc "rillrpc.dev/interop/kitex/kitex_gen/protobuf/echo/testservice"
)

type protobufAPI struct{ c pbsvc.Client }

func newProtobufAPI(opts []client.Option) (api, error) {
	c, err := pbsvc.NewClient("echo", opts...)
	if err != nil {
		return nil, err
	}
	return protobufAPI{c}, nil
}

func (a protobufAPI) PingPong(ctx context.Context, req request) ([]byte, error) {
	r := &pb.Request{Payload: req.payload}
	if req.count != nil {
		r.Count = *req.count
	}
	resp, err := a.c.PingPong(ctx, r)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, fmt.Errorf("nil response")
	}
	return resp.Payload, nil
}

var errPingPongOnly = errors.New("--api protobuf calls PingPong only")

func (protobufAPI) EchoServer(context.Context, request) (recvStream, error) {
	return nil, errPingPongOnly
}

func (protobufAPI) EchoClient(context.Context) (clientStream, error) { return nil, errPingPongOnly }

func (protobufAPI) Echo(context.Context) (bidiStream, error) { return nil, errPingPongOnly }
