package main

// The checks call the echo service through api, which either generated code implements:
// streamxAPI (kitex_gen/streamx, `kitex -streamx`: one Client for every method, streams
// with a ctx per call) or classicAPI (kitex_gen/classic, `kitex`: a Client for PingPong and
// a StreamClient for the streaming methods, gRPC only).

import (
	"context"
	"fmt"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/client/callopt"
	"github.com/cloudwego/kitex/client/streamclient"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2/metadata"
	"github.com/cloudwego/kitex/pkg/streaming"

	classic "rillrpc.dev/interop/kitex/kitex_gen/classic/echo"
	classicsvc "rillrpc.dev/interop/kitex/kitex_gen/classic/echo/testservice"
	sx "rillrpc.dev/interop/kitex/kitex_gen/streamx/echo"
	sxsvc "rillrpc.dev/interop/kitex/kitex_gen/streamx/echo/testservice"
)

// request is echo.Request of either package.
type request struct {
	payload []byte
	count   *int32
}

func count(n int32) *int32 { return &n }

type api interface {
	PingPong(ctx context.Context, req request) ([]byte, error)
	EchoServer(ctx context.Context, req request) (recvStream, error)
	EchoClient(ctx context.Context) (clientStream, error)
	Echo(ctx context.Context) (bidiStream, error)
}

// meta is what a check reads of the response metadata.
type meta interface {
	Header() (map[string]string, error)
	Trailer() (map[string]string, error)
}

type recvStream interface {
	meta
	Recv(ctx context.Context) ([]byte, error)
}

type clientStream interface {
	meta
	Send(ctx context.Context, req request) error
	CloseAndRecv(ctx context.Context) ([]byte, error)
}

type bidiStream interface {
	recvStream
	Send(ctx context.Context, req request) error
	CloseSend(ctx context.Context) error
}

// ---- streamx ----

type streamxAPI struct{ c sxsvc.Client }

func newStreamxAPI(opts []client.Option) (api, error) {
	c, err := sxsvc.NewClient("echo", opts...)
	if err != nil {
		return nil, err
	}
	return streamxAPI{c}, nil
}

func sxReq(r request) *sx.Request { return &sx.Request{Payload: r.payload, Count: r.count} }

func sxPayload(r *sx.Response, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("nil response")
	}
	return r.Payload, nil
}

func (a streamxAPI) PingPong(ctx context.Context, req request) ([]byte, error) {
	return sxPayload(a.c.PingPong(ctx, sxReq(req)))
}

type sxMeta struct{ s streaming.ClientStream }

func (m sxMeta) Header() (map[string]string, error) {
	h, err := m.s.Header()
	return map[string]string(h), err
}

func (m sxMeta) Trailer() (map[string]string, error) {
	t, err := m.s.Trailer()
	return map[string]string(t), err
}

type sxServer struct {
	sxMeta
	st sxsvc.TestService_EchoServerClient
}

func (s sxServer) Recv(ctx context.Context) ([]byte, error) { return sxPayload(s.st.Recv(ctx)) }

func (a streamxAPI) EchoServer(ctx context.Context, req request) (recvStream, error) {
	st, err := a.c.EchoServer(ctx, sxReq(req))
	if err != nil {
		return nil, err
	}
	return sxServer{sxMeta{st}, st}, nil
}

type sxClient struct {
	sxMeta
	st sxsvc.TestService_EchoClientClient
}

func (s sxClient) Send(ctx context.Context, req request) error { return s.st.Send(ctx, sxReq(req)) }
func (s sxClient) CloseAndRecv(ctx context.Context) ([]byte, error) {
	return sxPayload(s.st.CloseAndRecv(ctx))
}

func (a streamxAPI) EchoClient(ctx context.Context) (clientStream, error) {
	st, err := a.c.EchoClient(ctx)
	if err != nil {
		return nil, err
	}
	return sxClient{sxMeta{st}, st}, nil
}

type sxBidi struct {
	sxMeta
	st sxsvc.TestService_EchoClient
}

func (s sxBidi) Send(ctx context.Context, req request) error { return s.st.Send(ctx, sxReq(req)) }
func (s sxBidi) Recv(ctx context.Context) ([]byte, error)    { return sxPayload(s.st.Recv(ctx)) }
func (s sxBidi) CloseSend(ctx context.Context) error         { return s.st.CloseSend(ctx) }

func (a streamxAPI) Echo(ctx context.Context) (bidiStream, error) {
	st, err := a.c.Echo(ctx)
	if err != nil {
		return nil, err
	}
	return sxBidi{sxMeta{st}, st}, nil
}

// ---- classic ----

type classicAPI struct {
	c  classicsvc.Client
	sc classicsvc.StreamClient
}

func newClassicAPI(opts []client.Option) (api, error) {
	c, err := classicsvc.NewClient("echo", opts...)
	if err != nil {
		return nil, err
	}
	// NewStreamClient sets transport.GRPC itself: the classic code's streams are gRPC only.
	sc, err := classicsvc.NewStreamClient("echo", streamClientOptions(opts)...)
	if err != nil {
		return nil, err
	}
	return classicAPI{c, sc}, nil
}

func clReq(r request) *classic.Request { return &classic.Request{Payload: r.payload, Count: r.count} }

func clPayload(r *classic.Response, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("nil response")
	}
	return r.Payload, nil
}

func (a classicAPI) PingPong(ctx context.Context, req request) ([]byte, error) {
	return clPayload(a.c.PingPong(ctx, clReq(req), []callopt.Option{}...))
}

func firstValues(md metadata.MD) map[string]string {
	m := map[string]string{}
	for k, v := range md {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

type clMeta struct{ s streaming.Stream }

func (m clMeta) Header() (map[string]string, error) {
	h, err := m.s.Header()
	return firstValues(h), err
}

func (m clMeta) Trailer() (map[string]string, error) { return firstValues(m.s.Trailer()), nil }

type clServer struct {
	clMeta
	st classicsvc.TestService_EchoServerClient
}

func (s clServer) Recv(context.Context) ([]byte, error) { return clPayload(s.st.Recv()) }

func (a classicAPI) EchoServer(ctx context.Context, req request) (recvStream, error) {
	st, err := a.sc.EchoServer(ctx, clReq(req))
	if err != nil {
		return nil, err
	}
	return clServer{clMeta{st}, st}, nil
}

type clClient struct {
	clMeta
	st classicsvc.TestService_EchoClientClient
}

func (s clClient) Send(_ context.Context, req request) error { return s.st.Send(clReq(req)) }
func (s clClient) CloseAndRecv(context.Context) ([]byte, error) {
	return clPayload(s.st.CloseAndRecv())
}

func (a classicAPI) EchoClient(ctx context.Context) (clientStream, error) {
	st, err := a.sc.EchoClient(ctx)
	if err != nil {
		return nil, err
	}
	return clClient{clMeta{st}, st}, nil
}

type clBidi struct {
	clMeta
	st classicsvc.TestService_EchoClient
}

func (s clBidi) Send(_ context.Context, req request) error { return s.st.Send(clReq(req)) }
func (s clBidi) Recv(context.Context) ([]byte, error)      { return clPayload(s.st.Recv()) }
func (s clBidi) CloseSend(context.Context) error           { return s.st.Close() }

func (a classicAPI) Echo(ctx context.Context) (bidiStream, error) {
	st, err := a.sc.Echo(ctx)
	if err != nil {
		return nil, err
	}
	return clBidi{clMeta{st}, st}, nil
}

func streamClientOptions(opts []client.Option) []streamclient.Option {
	out := make([]streamclient.Option, 0, len(opts))
	for _, o := range opts {
		out = append(out, streamclient.ConvertOptionFrom(o))
	}
	return out
}
