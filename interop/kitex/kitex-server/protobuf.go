package main

// kitex-server --idl protobuf: TestService of shared/idl/echo.proto (kitex_gen/protobuf)
// instead of echo.thrift's, for PingPong in Kitex's Protobuf payload (KitexProtobuf, over
// TTHeaderFramed: what a Kitex client of a protobuf service sends by default). PingPong
// has the semantics of the Thrift one (count < 0: a biz status error; "sleep:<ms>";
// metainfo back as backward values). The streaming methods are refused: Kitex streams
// protobuf over gRPC only, which the rest of the suites cover with gRPC's own peers.

import (
	"context"
	"errors"

	"github.com/bytedance/gopkg/cloud/metainfo"

	pb "rillrpc.dev/interop/kitex/kitex_gen/protobuf/echo"
)

type pbHandler struct{}

func (pbHandler) PingPong(ctx context.Context, req *pb.Request) (*pb.Response, error) {
	tt, _ := received(ctx)
	for k, v := range tt {
		metainfo.SendBackwardValue(ctx, k, v)
	}
	if err := bizError(req.Count, req.Payload); err != nil {
		return nil, err
	}
	slow(string(req.Payload))
	return &pb.Response{Payload: req.Payload}, nil
}

var errPingPongOnly = errors.New("kitex-server --idl protobuf serves PingPong only")

func (pbHandler) Echo(pb.TestService_EchoServer) error { return errPingPongOnly }

func (pbHandler) EchoClient(pb.TestService_EchoClientServer) error { return errPingPongOnly }

func (pbHandler) EchoServer(*pb.Request, pb.TestService_EchoServerServer) error {
	return errPingPongOnly
}
