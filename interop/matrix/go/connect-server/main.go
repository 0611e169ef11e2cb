// The connect-go echo server of the matrix: `connect-server --port N` prints "listening on
// HOST:PORT" and serves echo.TestService with connect-go's handlers until killed. One port
// answers Connect, gRPC-Web and gRPC (connect-go's handlers take all three by content
// type), over HTTP/2 without TLS (h2c with prior knowledge, as the matrix's clients call)
// and over HTTP/1.1.
//
// The echo service's conventions, as every server of the matrix keeps them (see
// interop/matrix/README.md): a request with count < 0 ends the call with status -count and
// the payload as message; request metadata whose key starts with "echo-" comes back in the
// response headers and trailers, and with it the headers name the protocol the call came in
// on (echo.ProtocolHeader). No protoc: the messages and their codec are the echo
// package's (connect.WithCodec(echo.Codec{}), named "proto"), as connect-client's are.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	"rillrpc.dev/interop/matrix/go/echo"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (0 picks one)")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	flag.Parse()
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect-go echo server:", err)
		os.Exit(1)
	}
	opts := []connect.HandlerOption{connect.WithCodec(echo.Codec{})}
	mux := http.NewServeMux()
	mux.Handle(echo.PingPong, connect.NewUnaryHandler(echo.PingPong, pingPong, opts...))
	mux.Handle(echo.EchoServer, connect.NewServerStreamHandler(echo.EchoServer, echoServer, opts...))
	mux.Handle(echo.EchoClient, connect.NewClientStreamHandler(echo.EchoClient, echoClient, opts...))
	mux.Handle(echo.Echo, connect.NewBidiStreamHandler(echo.Echo, echoBidi, opts...))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	// h2c with prior knowledge: a connection that starts with the HTTP/2 preface.
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on %s\n", lis.Addr())
	os.Stdout.Sync()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "connect-go echo server:", err)
		os.Exit(1)
	}
}

// protocolNames maps connect-go's protocol names to rillrpc's, which echo.ProtocolHeader
// carries (connect-go spells gRPC-Web "grpcweb").
var protocolNames = map[string]string{
	connect.ProtocolGRPC:    "grpc",
	connect.ProtocolGRPCWeb: "grpc-web",
	connect.ProtocolConnect: "connect",
}

// start copies the request's echo-* metadata into the response headers and trailers (the
// call info of a handler's context holds both, for every call shape). -bin values stay as
// they came, base64, which is how each protocol carries them. With them, the headers name
// the protocol the call came in on (echo.ProtocolHeader), for the clients to hold to theirs.
func start(ctx context.Context) {
	info, ok := connect.CallInfoForHandlerContext(ctx)
	if !ok {
		return
	}
	echoed := false
	for k, vs := range info.RequestHeader() {
		if !strings.HasPrefix(strings.ToLower(k), "echo-") {
			continue
		}
		echoed = true
		for _, v := range vs {
			info.ResponseHeader().Add(k, v)
			info.ResponseTrailer().Add(k, v)
		}
	}
	if echoed {
		name, known := protocolNames[info.Peer().Protocol]
		if !known {
			// Passed on as it is: a client then fails with the name it got.
			name = info.Peer().Protocol
		}
		info.ResponseHeader().Set(echo.ProtocolHeader, name)
	}
}

// requested is the error a request asks for: count < 0 is status -count with the payload
// as message.
func requested(r *echo.Request) error {
	if r.Count < 0 {
		return connect.NewError(connect.Code(-r.Count), errors.New(string(r.Payload)))
	}
	return nil
}

func pingPong(ctx context.Context, req *connect.Request[echo.Request]) (*connect.Response[echo.Response], error) {
	start(ctx)
	if err := requested(req.Msg); err != nil {
		return nil, err
	}
	return connect.NewResponse(&echo.Response{Payload: req.Msg.Payload}), nil
}

func echoServer(ctx context.Context, req *connect.Request[echo.Request], s *connect.ServerStream[echo.Response]) error {
	start(ctx)
	if err := requested(req.Msg); err != nil {
		return err
	}
	for i := int32(0); i < req.Msg.Count; i++ {
		if err := s.Send(&echo.Response{Payload: req.Msg.Payload}); err != nil {
			return err
		}
	}
	return nil
}

func echoClient(ctx context.Context, s *connect.ClientStream[echo.Request]) (*connect.Response[echo.Response], error) {
	start(ctx)
	total := 0
	for s.Receive() {
		if err := requested(s.Msg()); err != nil {
			return nil, err
		}
		total += len(s.Msg().Payload)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&echo.Response{Payload: []byte(fmt.Sprint(total))}), nil
}

func echoBidi(ctx context.Context, s *connect.BidiStream[echo.Request, echo.Response]) error {
	start(ctx)
	for {
		req, err := s.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := requested(req); err != nil {
			return err
		}
		if err := s.Send(&echo.Response{Payload: req.Payload}); err != nil {
			return err
		}
	}
}
