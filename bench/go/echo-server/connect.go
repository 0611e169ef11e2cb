package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"rillrpc.dev/interop/matrix/go/echo"
)

// connectServer is echo.TestService on connect-go's handlers, as the echo service of every
// other echo-server: count < 0 fails with status code -count and the payload as message,
// and request headers starting with "echo-" come back as response headers and trailers.
//
// connect-go's handlers offer gzip by default and answer a client that accepts it (its own
// clients all do) with gzip-compressed messages, however small. The other servers answer
// uncompressed unless the client compressed its request, so gzip is removed here: every
// server does the same echo work.
func connectServer(maxStreams uint32) *http.Server {
	opts := []connect.HandlerOption{
		connect.WithCodec(echo.Codec{}),
		connect.WithCompression("gzip", nil, nil),
	}
	mux := http.NewServeMux()
	mux.Handle(echo.PingPong, connect.NewUnaryHandler(echo.PingPong, pingPong, opts...))
	mux.Handle(echo.Echo, connect.NewBidiStreamHandler(echo.Echo, bidi, opts...))
	mux.Handle(echo.EchoClient, connect.NewClientStreamHandler(echo.EchoClient, clientStream, opts...))
	mux.Handle(echo.EchoServer, connect.NewServerStreamHandler(echo.EchoServer, serverStream, opts...))
	// HTTP/1.1 and HTTP/2 without TLS (prior knowledge) on one port.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:   mux,
		Protocols: &protocols,
		// The limit the other servers advertise (net/http's default is 250).
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: int(maxStreams)},
	}
}

// echoHeaders copies the request's echo-* headers into the response's headers and
// trailers.
func echoHeaders(req, header, trailer http.Header) {
	for k, vs := range req {
		if strings.HasPrefix(strings.ToLower(k), "echo-") {
			header[k] = append([]string(nil), vs...)
			trailer[k] = append([]string(nil), vs...)
		}
	}
}

func requested(r *echo.Request) error {
	if r.Count < 0 {
		return connect.NewError(connect.Code(-r.Count), errors.New(string(r.Payload)))
	}
	return nil
}

func pingPong(_ context.Context, req *connect.Request[echo.Request]) (*connect.Response[echo.Response], error) {
	if err := requested(req.Msg); err != nil {
		return nil, err
	}
	res := connect.NewResponse(&echo.Response{Payload: req.Msg.Payload})
	echoHeaders(req.Header(), res.Header(), res.Trailer())
	return res, nil
}

func bidi(_ context.Context, s *connect.BidiStream[echo.Request, echo.Response]) error {
	echoHeaders(s.RequestHeader(), s.ResponseHeader(), s.ResponseTrailer())
	for {
		req, err := s.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
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

func clientStream(_ context.Context, s *connect.ClientStream[echo.Request]) (*connect.Response[echo.Response], error) {
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
	res := connect.NewResponse(&echo.Response{Payload: []byte(fmt.Sprint(total))})
	echoHeaders(s.RequestHeader(), res.Header(), res.Trailer())
	return res, nil
}

func serverStream(_ context.Context, req *connect.Request[echo.Request], s *connect.ServerStream[echo.Response]) error {
	if err := requested(req.Msg); err != nil {
		return err
	}
	echoHeaders(req.Header(), s.ResponseHeader(), s.ResponseTrailer())
	for i := int32(0); i < req.Msg.Count; i++ {
		if err := s.Send(&echo.Response{Payload: req.Msg.Payload}); err != nil {
			return err
		}
	}
	return nil
}
