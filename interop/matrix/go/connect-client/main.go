// The connect-go client of the matrix: `connect-client --target HOST:PORT --protocol
// connect|grpc-web|grpc [--http1]` runs the six checks of the grpc-go client (../client)
// against an echo server in the chosen protocol, prints PASS/FAIL lines and exits 1 if any
// failed. It proves that a rillrpc server answers all three protocols on one port with no
// change to its handlers.
//
// Every protocol goes over HTTP/2 without TLS (h2c, prior knowledge): bidi needs full
// duplex. --http1 uses HTTP/1.1 instead (connect and grpc-web only): bidi, which HTTP/1.1
// cannot carry, then prints SKIP, and error_status's second call, which needs the bidi
// Echo, asks EchoServer for the status instead (see streamStatus).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	"rillrpc.dev/interop/matrix/go/echo"
)

// The same inputs as every client of the matrix (see interop/matrix/README.md).
var (
	unaryPayload = []byte("matrix\x00\xffping")
	streamSizes  = []int{1, 10, 100, 70000}
	binValue     = []byte{0x00, 0xff, 0xfe, 0x80, 0x01}
)

const callTimeout = 20 * time.Second

// The client_streaming burst, as in the grpc-go client: many small messages, sent as fast
// as the call takes them, must not get the connection closed for too many DATA frames.
const (
	burstMessages = 30000
	burstSize     = 16
)

// Percent-encoded in grpc-message (gRPC, gRPC-Web), a JSON string in Connect's error body:
// '%' and the non-ASCII bytes must survive either way.
const errorMessage = "matrix error: 100% ünïcødé ✓"

type stub = connect.Client[echo.Request, echo.Response]

// service holds one connect-go client per method: connect-go binds a client to a
// procedure's URL.
type service struct {
	pingPong, echo, echoClient, echoServer *stub
	// protocol is the one every call speaks, in rillrpc's names (--protocol): the one the
	// server must report in echo.ProtocolHeader.
	protocol string
	http1    bool
}

func main() {
	target := flag.String("target", "", "HOST:PORT of the echo server")
	protocol := flag.String("protocol", "connect", "connect, grpc-web or grpc")
	http1 := flag.Bool("http1", false, "HTTP/1.1 instead of h2c (connect and grpc-web only; bidi is skipped)")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "usage: connect-client --target HOST:PORT [--protocol connect|grpc-web|grpc] [--http1]")
		os.Exit(2)
	}
	opts := []connect.ClientOption{connect.WithCodec(echo.Codec{})}
	switch *protocol {
	case "connect":
	case "grpc-web":
		opts = append(opts, connect.WithGRPCWeb())
	case "grpc":
		if *http1 {
			fmt.Fprintln(os.Stderr, "connect-client: gRPC needs HTTP/2; --http1 is for connect and grpc-web")
			os.Exit(2)
		}
		opts = append(opts, connect.WithGRPC())
	default:
		fmt.Fprintln(os.Stderr, "connect-client: unknown protocol", *protocol)
		os.Exit(2)
	}
	var protocols http.Protocols
	if *http1 {
		protocols.SetHTTP1(true)
	} else {
		// Only unencrypted HTTP/2 enabled: an http:// request then starts with the HTTP/2
		// preface (prior knowledge), no Upgrade dance, as grpc-go and rillrpc's clients do.
		protocols.SetUnencryptedHTTP2(true)
	}
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	base := "http://" + *target
	svc := &service{
		pingPong:   connect.NewClient[echo.Request, echo.Response](client, base+echo.PingPong, opts...),
		echo:       connect.NewClient[echo.Request, echo.Response](client, base+echo.Echo, opts...),
		echoClient: connect.NewClient[echo.Request, echo.Response](client, base+echo.EchoClient, opts...),
		echoServer: connect.NewClient[echo.Request, echo.Response](client, base+echo.EchoServer, opts...),
		protocol:   *protocol,
		http1:      *http1,
	}
	checks := []struct {
		name string
		run  func(*service) error
	}{
		{"unary", unary}, {"server_streaming", serverStreaming},
		{"client_streaming", clientStreaming}, {"bidi", bidi},
		{"error_status", errorStatus}, {"metadata", metadataRoundTrip},
	}
	failed := 0
	for _, c := range checks {
		if c.name == "bidi" && svc.http1 {
			fmt.Printf("SKIP %s: HTTP/1.1 has no full-duplex calls\n", c.name)
			continue
		}
		if err := c.run(svc); err != nil {
			failed++
			fmt.Printf("FAIL %s: %v\n", c.name, err)
		} else {
			fmt.Printf("PASS %s\n", c.name)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func unary(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	// The empty request is a zero-length message, and so is its response: in Connect's
	// unary protocol an empty body each way.
	for _, p := range [][]byte{unaryPayload, {}} {
		resp, err := svc.pingPong.CallUnary(c, connect.NewRequest(&echo.Request{Payload: p}))
		if err != nil {
			return fmt.Errorf("payload %q: %w", p, err)
		}
		if !bytes.Equal(resp.Msg.Payload, p) {
			return fmt.Errorf("payload %q, want %q", resp.Msg.Payload, p)
		}
	}
	return nil
}

func serverStreaming(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	s, err := svc.echoServer.CallServerStream(c, connect.NewRequest(&echo.Request{Payload: []byte("stream"), Count: 5}))
	if err != nil {
		return err
	}
	defer s.Close()
	n := 0
	for s.Receive() {
		if p := s.Msg().Payload; string(p) != "stream" {
			return fmt.Errorf("response %d: payload %q", n, p)
		}
		n++
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("after %d responses: %w", n, err)
	}
	if n != 5 {
		return fmt.Errorf("%d responses, want 5", n)
	}
	return nil
}

// clientStreaming relies on CloseAndReceive to hold the server to one response: connect-go
// fails the call when a second one follows, where the grpc-go client reads on for EOF.
func clientStreaming(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	s := svc.echoClient.CallClientStream(c)
	total := 0
	for _, n := range streamSizes {
		total += n
		if err := s.Send(&echo.Request{Payload: bytes.Repeat([]byte("x"), n)}); err != nil {
			// A send that wraps io.EOF: the server ended the call; CloseAndReceive has why.
			if !errors.Is(err, io.EOF) {
				return err
			}
			break
		}
	}
	resp, err := s.CloseAndReceive()
	if err != nil {
		return err
	}
	if want := fmt.Sprint(total); string(resp.Msg.Payload) != want {
		return fmt.Errorf("total %q, want %q", resp.Msg.Payload, want)
	}
	if err := burst(svc); err != nil {
		return fmt.Errorf("burst of %d: %w", burstMessages, err)
	}
	return nil
}

func burst(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	s := svc.echoClient.CallClientStream(c)
	req := &echo.Request{Payload: bytes.Repeat([]byte("x"), burstSize)}
	for i := 0; i < burstMessages; i++ {
		if err := s.Send(req); err != nil {
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("send %d: %w", i, err)
			}
			break
		}
	}
	resp, err := s.CloseAndReceive()
	if err != nil {
		return err
	}
	if want := fmt.Sprint(burstMessages * burstSize); string(resp.Msg.Payload) != want {
		return fmt.Errorf("total %q, want %q", resp.Msg.Payload, want)
	}
	return nil
}

func bidi(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	s := svc.echo.CallBidiStream(c)
	defer s.CloseResponse()
	for i := 0; i < 5; i++ {
		p := []byte(fmt.Sprintf("bidi-%d", i))
		if err := s.Send(&echo.Request{Payload: p}); err != nil {
			return fmt.Errorf("round %d: send: %w", i, receiveErr(s, err))
		}
		resp, err := s.Receive()
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if !bytes.Equal(resp.Payload, p) {
			return fmt.Errorf("round %d: payload %q, want %q", i, resp.Payload, p)
		}
	}
	if err := s.CloseRequest(); err != nil {
		return err
	}
	if _, err := s.Receive(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("after half-close: %v, want EOF", err)
	}
	return nil
}

// receiveErr turns a send's io.EOF (the server ended the call) into the call's status,
// which only Receive returns.
func receiveErr(s *connect.BidiStreamForClient[echo.Request, echo.Response], err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		if _, rerr := s.Receive(); rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return err
			}
			return rerr
		}
	}
}

// errorStatus asks for the error twice: on a unary call (the status alone: in gRPC a
// Trailers-Only response, in Connect an HTTP error status with a JSON body) and on Echo
// after one answered message (status after data: trailers, gRPC-Web's trailer frame,
// Connect's end-of-stream message), or over HTTP/1.1 on EchoServer.
func errorStatus(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	_, err := svc.pingPong.CallUnary(c, connect.NewRequest(&echo.Request{Payload: []byte(errorMessage), Count: -5}))
	if err := isWantedError(err); err != nil {
		return fmt.Errorf("unary: %w", err)
	}
	if svc.http1 {
		if err := streamStatus(c, svc); err != nil {
			return fmt.Errorf("server streaming: %w", err)
		}
		return nil
	}
	s := svc.echo.CallBidiStream(c)
	defer s.CloseResponse()
	if err := s.Send(&echo.Request{Payload: []byte("before")}); err != nil {
		return fmt.Errorf("bidi: send: %w", receiveErr(s, err))
	}
	resp, err := s.Receive()
	if err != nil || string(resp.Payload) != "before" {
		return fmt.Errorf("bidi: first answer %q, %v", payload(resp), err)
	}
	if err := s.Send(&echo.Request{Payload: []byte(errorMessage), Count: -5}); err != nil {
		return fmt.Errorf("bidi: send: %w", receiveErr(s, err))
	}
	_, err = s.Receive()
	if err := isWantedError(err); err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	return nil
}

// streamStatus asks for the error on EchoServer: the status ends a streaming response
// (Connect's end-of-stream message, gRPC-Web's trailers) with no message before it. Over
// HTTP/1.1 it stands in for the status after data, which only Echo answers: Echo is bidi,
// and a bidi method takes no HTTP/1.1 call (connect-go's own handler answers 505, as its
// client refuses such a response).
func streamStatus(c context.Context, svc *service) error {
	s, err := svc.echoServer.CallServerStream(c, connect.NewRequest(&echo.Request{Payload: []byte(errorMessage), Count: -5}))
	if err != nil {
		return isWantedError(err)
	}
	defer s.Close()
	n := 0
	for s.Receive() {
		n++
	}
	if n != 0 {
		return fmt.Errorf("%d responses before the status, want none", n)
	}
	return isWantedError(s.Err())
}

func payload(r *echo.Response) []byte {
	if r == nil {
		return nil
	}
	return r.Payload
}

func isWantedError(err error) error {
	if err == nil {
		return errors.New("no error, want NOT_FOUND")
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("not a status: %v", err)
	}
	if ce.Code() != connect.CodeNotFound || ce.Message() != errorMessage {
		return fmt.Errorf("status %d %q, want 5 %q", ce.Code(), ce.Message(), errorMessage)
	}
	return nil
}

func metadataRoundTrip(svc *service) error {
	c, cancel := ctx()
	defer cancel()
	req := connect.NewRequest(&echo.Request{Payload: []byte("md")})
	req.Header().Set("echo-key", "value")
	// connect-go leaves -bin values to the caller: base64, as gRPC and Connect both want.
	req.Header().Set("echo-bin-bin", connect.EncodeBinaryHeader(binValue))
	resp, err := svc.pingPong.CallUnary(c, req)
	if err != nil {
		return err
	}
	var problems []string
	for _, p := range []struct {
		name string
		md   http.Header
	}{{"headers", resp.Header()}, {"trailers", resp.Trailer()}} {
		if v := p.md.Values("echo-key"); len(v) != 1 || v[0] != "value" {
			problems = append(problems, fmt.Sprintf("%s echo-key = %q", p.name, v))
		}
		v := p.md.Values("echo-bin-bin")
		if len(v) != 1 {
			problems = append(problems, fmt.Sprintf("%s echo-bin-bin = %q", p.name, v))
			continue
		}
		if b, err := connect.DecodeBinaryHeader(v[0]); err != nil || !bytes.Equal(b, binValue) {
			problems = append(problems, fmt.Sprintf("%s echo-bin-bin = %q (decoded %q, %v)", p.name, v[0], b, err))
		}
	}
	if err := echo.SpokeProtocol(svc.protocol, resp.Header().Values(echo.ProtocolHeader)); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
