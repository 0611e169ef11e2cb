// kitex-server: the echo service of shared/idl/echo.thrift on a Kitex v0.16.3 server, one
// port for all three of Kitex's Thrift transports. Kitex's server detects the protocol of
// each connection (pkg/remote/trans/detection): TTHeader Streaming (ttstream, a TTHeader
// frame with the streaming flag), gRPC (the HTTP/2 preface, application/grpc+thrift) and
// otherwise the netpoll PingPong codec (TTHeader, Framed or Buffered Thrift Binary).
//
//	kitex-server --port N     prints "listening on HOST:PORT" and serves until killed
//	             [--idl protobuf]   echo.proto's service instead (PingPong only, protobuf.go)
//
// The handlers are those of the StreamX code (kitex_gen/streamx, `kitex -streamx`): one
// service registration answers PingPong and the three streaming methods in every transport.
// Semantics (echo.proto's, README.md):
//   - PingPong echoes the payload.
//   - Echo answers every request with a response carrying its payload.
//   - EchoClient answers the total payload bytes received, as decimal text.
//   - EchoServer sends `count` responses, each carrying the request's payload.
//   - A request with count < 0 ends the call with a biz status error: code -count, message
//     the payload, extra {"echo-count": "<count>"} (kerrors.NewBizStatusErrorWithExtra).
//   - The slow path, for deadline checks: a request whose payload starts with "sleep:<ms>"
//     (e.g. "sleep:3000") makes the handler wait that long before it answers (whatever its
//     context says, see slow): PingPong before its answer, EchoServer before its first
//     response, Echo before the answer to that request.
//
// Metadata: the metainfo values received (RPC_TRANSIT_* and RPC_PERSIST_* on TTHeader and
// ttstream, rpc-transit-* and rpc-persist-* headers on gRPC) are sent back:
//   - PingPong over TTHeader: as backward values (metainfo.SendBackwardValue), keyed by the
//     wire key received, e.g. "RPC_TRANSIT_ECHO_KEY", which Kitex writes into the response's
//     TTHeader string info; the client reads them with metainfo.RecvBackwardValue.
//   - PingPong over gRPC and every streaming call: in the response headers and trailers
//     (nphttp2.SetHeader/SetTrailer for unary gRPC, ServerStream.SetHeader/SetTrailer for
//     streams), keyed "rpc-transit-<key>" and "rpc-persist-<key>" (metainfo's HTTP form: lower
//     case, '_' as '-'), since a gRPC header name must be lower case.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bytedance/gopkg/cloud/metainfo"
	"github.com/cloudwego/kitex/pkg/kerrors"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2/metadata"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
	"github.com/cloudwego/kitex/pkg/streaming"
	"github.com/cloudwego/kitex/pkg/transmeta"
	"github.com/cloudwego/kitex/server"

	pbsvc "rillrpc.dev/interop/kitex/kitex_gen/protobuf/echo/testservice"
	echo "rillrpc.dev/interop/kitex/kitex_gen/streamx/echo"
	"rillrpc.dev/interop/kitex/kitex_gen/streamx/echo/testservice"
)

type handler struct{}

// bizError is the answer to a request with a negative count (echo.thrift's count is
// optional: nil for none; echo.proto's is 0 then).
func bizError(count int32, payload []byte) error {
	if count >= 0 {
		return nil
	}
	return kerrors.NewBizStatusErrorWithExtra(-count, string(payload),
		map[string]string{"echo-count": strconv.Itoa(int(count))})
}

// countOf is a Thrift request's count, 0 when unset.
func countOf(req *echo.Request) int32 {
	if req.Count == nil {
		return 0
	}
	return *req.Count
}

// received returns the metainfo the call carried, by the wire key of a TTHeader or ttstream
// request (RPC_TRANSIT_K, RPC_PERSIST_K) and by that of a gRPC one (rpc-transit-k, ...).
func received(ctx context.Context) (ttheader, http map[string]string) {
	ttheader, http = map[string]string{}, map[string]string{}
	for k, v := range metainfo.GetAllValues(ctx) {
		ttheader[metainfo.PrefixTransient+k] = v
		http[metainfo.HTTPPrefixTransient+metainfo.CGIVariableToHTTPHeader(k)] = v
	}
	for k, v := range metainfo.GetAllPersistentValues(ctx) {
		ttheader[metainfo.PrefixPersistent+k] = v
		http[metainfo.HTTPPrefixPersistent+metainfo.CGIVariableToHTTPHeader(k)] = v
	}
	return ttheader, http
}

// sleepPrefix starts the payload of a request the handler answers slowly.
const sleepPrefix = "sleep:"

// slow waits for the time a "sleep:<ms>" payload asks, whatever the call's context says:
// were it to return when the server's copy of the deadline passes, Kitex would answer the
// handler's error (gRPC: INTERNAL "context deadline exceeded [biz error]") at the same
// moment as the client's own deadline fires, and which one the client reports would be a
// race. A deadline check wants the client's deadline to end the call.
func slow(p string) {
	if !strings.HasPrefix(p, sleepPrefix) {
		return
	}
	if ms, err := strconv.Atoi(strings.TrimPrefix(p, sleepPrefix)); err == nil && ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
}

func (handler) PingPong(ctx context.Context, req *echo.Request) (*echo.Response, error) {
	// Both, whatever the transport: a backward value is a no-op on gRPC, and nphttp2's
	// SetHeader/SetTrailer fail (ignored) on a call that is not an HTTP/2 stream.
	tt, http := received(ctx)
	for k, v := range tt {
		metainfo.SendBackwardValue(ctx, k, v)
	}
	if len(http) > 0 {
		md := metadata.New(http)
		_ = nphttp2.SetHeader(ctx, md)
		_ = nphttp2.SetTrailer(ctx, md)
	}
	if err := bizError(countOf(req), req.Payload); err != nil {
		return nil, err
	}
	slow(string(req.Payload))
	return &echo.Response{Payload: req.Payload}, nil
}

// echoStreamMeta puts the received metainfo into the stream's header and trailer.
func echoStreamMeta(ctx context.Context, st streaming.ServerStream) {
	_, http := received(ctx)
	if len(http) == 0 {
		return
	}
	_ = st.SetHeader(streaming.Header(http))
	_ = st.SetTrailer(streaming.Trailer(http))
}

func (handler) Echo(ctx context.Context, stream echo.TestService_EchoServer) error {
	echoStreamMeta(ctx, stream)
	for {
		req, err := stream.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := bizError(countOf(req), req.Payload); err != nil {
			return err
		}
		slow(string(req.Payload))
		if err := stream.Send(ctx, &echo.Response{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

func (handler) EchoClient(ctx context.Context, stream echo.TestService_EchoClientServer) error {
	echoStreamMeta(ctx, stream)
	total := 0
	for {
		req, err := stream.Recv(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := bizError(countOf(req), req.Payload); err != nil {
			return err
		}
		total += len(req.Payload)
	}
	return stream.SendAndClose(ctx, &echo.Response{Payload: []byte(strconv.Itoa(total))})
}

func (handler) EchoServer(ctx context.Context, req *echo.Request, stream echo.TestService_EchoServerServer) error {
	echoStreamMeta(ctx, stream)
	if err := bizError(countOf(req), req.Payload); err != nil {
		return err
	}
	slow(string(req.Payload))
	for i := int32(0); i < req.GetCount(); i++ {
		if err := stream.Send(ctx, &echo.Response{Payload: req.Payload}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on (0: any free port)")
	verbose := flag.Bool("v", false, "Kitex's info logs")
	idl := flag.String("idl", "thrift", "the service's IDL: thrift (echo.thrift) | protobuf (echo.proto, PingPong only: protobuf.go)")
	flag.Parse()
	if !*verbose {
		klog.SetLevel(klog.LevelWarn)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kitex-server:", err)
		os.Exit(1)
	}
	opts := []server.Option{
		server.WithListener(ln),
		// Biz status errors and the TTHeader int keys of a PingPong response: Kitex only
		// writes "biz-status"/"biz-message"/"biz-extra" into a TTHeader response with this
		// handler (pkg/transmeta/ttheader.go); ttstream and gRPC carry them without it.
		server.WithMetaHandler(transmeta.ServerTTHeaderHandler),
		server.WithServerBasicInfo(&rpcinfo.EndpointBasicInfo{ServiceName: "kitex-server"}),
	}
	var svr server.Server
	switch *idl {
	case "thrift":
		svr = testservice.NewServer(&handler{}, opts...)
	case "protobuf":
		svr = pbsvc.NewServer(&pbHandler{}, opts...)
	default:
		fmt.Fprintf(os.Stderr, "kitex-server: unknown --idl %q\n", *idl)
		os.Exit(2)
	}
	addr := ln.Addr().String()
	fmt.Printf("listening on %s\n", strings.TrimPrefix(addr, "[::]"))
	os.Stdout.Sync()
	if err := svr.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "kitex-server:", err)
		os.Exit(1)
	}
}
