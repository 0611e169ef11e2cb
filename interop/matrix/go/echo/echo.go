// Package echo is the echo service of shared/idl/echo.proto for grpc-go without protoc:
// the two messages are encoded with protowire, a codec named "proto" replaces the default
// one (connect-go's client takes it too), and the service is described by a hand-written
// grpc.ServiceDesc.
package echo

import (
	"context"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	Service    = "echo.TestService"
	PingPong   = "/echo.TestService/PingPong"
	Echo       = "/echo.TestService/Echo"
	EchoClient = "/echo.TestService/EchoClient"
	EchoServer = "/echo.TestService/EchoServer"
)

// Request is echo.Request { bytes payload = 1; int32 count = 2; }.
type Request struct {
	Payload []byte
	Count   int32
}

// Response is echo.Response { bytes payload = 1; }.
type Response struct {
	Payload []byte
}

func (r *Request) marshal() []byte {
	var b []byte
	if len(r.Payload) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, r.Payload)
	}
	if r.Count != 0 {
		// int32 is sign-extended to 64 bits on the wire, as protoc does.
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(r.Count)))
	}
	return b
}

func (r *Response) marshal() []byte {
	var b []byte
	if len(r.Payload) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, r.Payload)
	}
	return b
}

// decode walks the fields of a message, handing known ones to set and skipping the rest.
func decode(b []byte, set func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := set(num, typ, v, 0); err != nil {
				return err
			}
			b = b[m:]
		case protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := set(num, typ, nil, x); err != nil {
				return err
			}
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
		}
	}
	return nil
}

func (r *Request) unmarshal(b []byte) error {
	*r = Request{}
	return decode(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			r.Payload = append([]byte(nil), v...)
		case num == 2 && typ == protowire.VarintType:
			r.Count = int32(x)
		case num == 1 || num == 2:
			return fmt.Errorf("echo.Request: field %d has wire type %d", num, typ)
		}
		return nil
	})
}

func (r *Response) unmarshal(b []byte) error {
	*r = Response{}
	return decode(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			r.Payload = append([]byte(nil), v...)
		case num == 1:
			return fmt.Errorf("echo.Response: field 1 has wire type %d", typ)
		}
		return nil
	})
}

// Codec handles only the two echo messages; it is named "proto" so that it replaces
// grpc-go's default codec and the content type stays application/grpc. connect-go takes
// the same one (connect.WithCodec): its Codec interface has these three methods, and the
// name "proto" keeps the content types application/proto, application/connect+proto and
// application/grpc-web+proto.
type Codec struct{}

func (Codec) Name() string { return "proto" }

func (Codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Request:
		return m.marshal(), nil
	case *Response:
		return m.marshal(), nil
	}
	return nil, fmt.Errorf("echo codec: cannot marshal %T", v)
}

func (Codec) Unmarshal(b []byte, v any) error {
	switch m := v.(type) {
	case *Request:
		return m.unmarshal(b)
	case *Response:
		return m.unmarshal(b)
	}
	return fmt.Errorf("echo codec: cannot unmarshal into %T", v)
}

func init() {
	encoding.RegisterCodec(Codec{})
}

// Server is the echo service with its conventions: a request with count < 0 fails with
// status code -count and the payload as message; request metadata whose key starts with
// "echo-" comes back in the response headers and trailers.
type Server struct{}

// Handler is what ServiceDesc.HandlerType names; Server implements it.
type Handler interface{ isEcho() }

func (Server) isEcho() {}

func echoMD(ctx context.Context) metadata.MD {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, vs := range in {
		if strings.HasPrefix(k, "echo-") {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}

// start sends the echoed metadata as headers now and sets it as trailers.
func start(ctx context.Context) error {
	md := echoMD(ctx)
	if len(md) == 0 {
		return nil
	}
	if err := grpc.SendHeader(ctx, md); err != nil {
		return err
	}
	return grpc.SetTrailer(ctx, md)
}

func requested(r *Request) error {
	if r.Count < 0 {
		return status.Error(codes.Code(-r.Count), string(r.Payload))
	}
	return nil
}

func pingPong(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	if err := start(ctx); err != nil {
		return nil, err
	}
	req := new(Request)
	if err := dec(req); err != nil {
		return nil, err
	}
	if err := requested(req); err != nil {
		return nil, err
	}
	return &Response{Payload: req.Payload}, nil
}

func echo(_ any, s grpc.ServerStream) error {
	if err := start(s.Context()); err != nil {
		return err
	}
	for {
		req := new(Request)
		if err := s.RecvMsg(req); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := requested(req); err != nil {
			return err
		}
		if err := s.SendMsg(&Response{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

func echoClient(_ any, s grpc.ServerStream) error {
	if err := start(s.Context()); err != nil {
		return err
	}
	total := 0
	for {
		req := new(Request)
		if err := s.RecvMsg(req); err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
		if err := requested(req); err != nil {
			return err
		}
		total += len(req.Payload)
	}
	return s.SendMsg(&Response{Payload: []byte(fmt.Sprint(total))})
}

func echoServer(_ any, s grpc.ServerStream) error {
	if err := start(s.Context()); err != nil {
		return err
	}
	req := new(Request)
	if err := s.RecvMsg(req); err != nil {
		return err
	}
	if err := requested(req); err != nil {
		return err
	}
	for i := int32(0); i < req.Count; i++ {
		if err := s.SendMsg(&Response{Payload: req.Payload}); err != nil {
			return err
		}
	}
	return nil
}

// ServiceDesc describes echo.TestService for grpc.Server.RegisterService.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: Service,
	HandlerType: (*Handler)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "PingPong", Handler: pingPong}},
	Streams: []grpc.StreamDesc{
		{StreamName: "Echo", Handler: echo, ServerStreams: true, ClientStreams: true},
		{StreamName: "EchoClient", Handler: echoClient, ClientStreams: true},
		{StreamName: "EchoServer", Handler: echoServer, ServerStreams: true},
	},
	Metadata: "echo.proto",
}
