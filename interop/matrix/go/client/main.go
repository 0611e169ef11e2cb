// The grpc-go client of the matrix: `client --target HOST:PORT` runs the six checks
// against an echo server, prints PASS/FAIL lines and exits 1 if any failed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"rillrpc.dev/interop/matrix/go/echo"
)

// The same inputs as every client of the matrix (see interop/matrix/README.md).
var (
	unaryPayload = []byte("matrix\x00\xffping")
	streamSizes  = []int{1, 10, 100, 70000}
	binValue     = []byte{0x00, 0xff, 0xfe, 0x80, 0x01}
)

const callTimeout = 20 * time.Second

// The client_streaming burst: burstMessages messages of burstSize bytes in one call. A
// sender that writes each in a DATA frame of its own (23 bytes) gets the connection closed
// by tonic's h2 server (0.4.20) when its handler falls behind: GOAWAY
// (ENHANCE_YOUR_CALM, "too_many_data_frames"), issue 17.
const (
	burstMessages = 30000
	burstSize     = 16
)

// Percent-encoded in grpc-message on the wire: '%' and the non-ASCII bytes must survive.
const errorMessage = "matrix error: 100% ünïcødé ✓"

func main() {
	target := flag.String("target", "", "HOST:PORT of the echo server")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "usage: client --target HOST:PORT")
		os.Exit(2)
	}
	conn, err := grpc.NewClient("passthrough:///"+*target,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go client:", err)
		os.Exit(2)
	}
	defer conn.Close()
	checks := []struct {
		name string
		run  func(*grpc.ClientConn) error
	}{
		{"unary", unary}, {"server_streaming", serverStreaming},
		{"client_streaming", clientStreaming}, {"bidi", bidi},
		{"error_status", errorStatus}, {"metadata", metadataRoundTrip},
	}
	failed := 0
	for _, c := range checks {
		if err := c.run(conn); err != nil {
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

func unary(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	// The empty request is a zero-length message, and so is its response.
	for _, p := range [][]byte{unaryPayload, {}} {
		resp := new(echo.Response)
		if err := conn.Invoke(c, echo.PingPong, &echo.Request{Payload: p}, resp); err != nil {
			return fmt.Errorf("payload %q: %w", p, err)
		}
		if !bytes.Equal(resp.Payload, p) {
			return fmt.Errorf("payload %q, want %q", resp.Payload, p)
		}
	}
	return nil
}

func serverStreaming(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	s, err := conn.NewStream(c, &grpc.StreamDesc{ServerStreams: true}, echo.EchoServer)
	if err != nil {
		return err
	}
	if err := s.SendMsg(&echo.Request{Payload: []byte("stream"), Count: 5}); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	n := 0
	for {
		resp := new(echo.Response)
		err := s.RecvMsg(resp)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d responses: %w", n, err)
		}
		if string(resp.Payload) != "stream" {
			return fmt.Errorf("response %d: payload %q", n, resp.Payload)
		}
		n++
	}
	if n != 5 {
		return fmt.Errorf("%d responses, want 5", n)
	}
	return nil
}

func clientStreaming(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	s, err := conn.NewStream(c, &grpc.StreamDesc{ClientStreams: true}, echo.EchoClient)
	if err != nil {
		return err
	}
	total := 0
	for _, n := range streamSizes {
		total += n
		if err := s.SendMsg(&echo.Request{Payload: bytes.Repeat([]byte("x"), n)}); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	resp := new(echo.Response)
	if err := s.RecvMsg(resp); err != nil {
		return err
	}
	if want := fmt.Sprint(total); string(resp.Payload) != want {
		return fmt.Errorf("total %q, want %q", resp.Payload, want)
	}
	if err := s.RecvMsg(new(echo.Response)); err != io.EOF {
		return fmt.Errorf("after the response: %v, want EOF", err)
	}
	if err := burst(conn); err != nil {
		return fmt.Errorf("burst of %d: %w", burstMessages, err)
	}
	return nil
}

func burst(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	s, err := conn.NewStream(c, &grpc.StreamDesc{ClientStreams: true}, echo.EchoClient)
	if err != nil {
		return err
	}
	req := &echo.Request{Payload: bytes.Repeat([]byte("x"), burstSize)}
	for i := 0; i < burstMessages; i++ {
		// io.EOF: the server ended the call; RecvMsg gives its status.
		if err := s.SendMsg(req); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	resp := new(echo.Response)
	if err := s.RecvMsg(resp); err != nil {
		return err
	}
	if want := fmt.Sprint(burstMessages * burstSize); string(resp.Payload) != want {
		return fmt.Errorf("total %q, want %q", resp.Payload, want)
	}
	if err := s.RecvMsg(new(echo.Response)); err != io.EOF {
		return fmt.Errorf("after the response: %v, want EOF", err)
	}
	return nil
}

func bidi(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	s, err := conn.NewStream(c, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, echo.Echo)
	if err != nil {
		return err
	}
	for i := 0; i < 5; i++ {
		p := []byte(fmt.Sprintf("bidi-%d", i))
		if err := s.SendMsg(&echo.Request{Payload: p}); err != nil {
			return err
		}
		resp := new(echo.Response)
		if err := s.RecvMsg(resp); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if !bytes.Equal(resp.Payload, p) {
			return fmt.Errorf("round %d: payload %q, want %q", i, resp.Payload, p)
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if err := s.RecvMsg(new(echo.Response)); err != io.EOF {
		return fmt.Errorf("after half-close: %v, want EOF", err)
	}
	return nil
}

// errorStatus asks for the error twice: on a unary call (the status comes alone,
// trailers-only) and on a bidi call after one answered message (status after data).
func errorStatus(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	err := conn.Invoke(c, echo.PingPong, &echo.Request{Payload: []byte(errorMessage), Count: -5}, new(echo.Response))
	if err := isWantedError(err); err != nil {
		return fmt.Errorf("unary: %w", err)
	}
	s, err := conn.NewStream(c, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, echo.Echo)
	if err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	resp := new(echo.Response)
	if err := s.SendMsg(&echo.Request{Payload: []byte("before")}); err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	if err := s.RecvMsg(resp); err != nil || string(resp.Payload) != "before" {
		return fmt.Errorf("bidi: first answer %q, %v", resp.Payload, err)
	}
	if err := s.SendMsg(&echo.Request{Payload: []byte(errorMessage), Count: -5}); err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	if err := isWantedError(s.RecvMsg(resp)); err != nil {
		return fmt.Errorf("bidi: %w", err)
	}
	return nil
}

func isWantedError(err error) error {
	if err == nil {
		return errors.New("no error, want NOT_FOUND")
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("not a status: %v", err)
	}
	if st.Code() != 5 || st.Message() != errorMessage {
		return fmt.Errorf("status %d %q, want 5 %q", st.Code(), st.Message(), errorMessage)
	}
	return nil
}

func metadataRoundTrip(conn *grpc.ClientConn) error {
	c, cancel := ctx()
	defer cancel()
	c = metadata.AppendToOutgoingContext(c, "echo-key", "value", "echo-bin-bin", string(binValue))
	var hdr, trl metadata.MD
	resp := new(echo.Response)
	if err := conn.Invoke(c, echo.PingPong, &echo.Request{Payload: []byte("md")}, resp,
		grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
		return err
	}
	var problems []string
	for _, p := range []struct {
		name string
		md   metadata.MD
	}{{"headers", hdr}, {"trailers", trl}} {
		if v := p.md.Get("echo-key"); len(v) != 1 || v[0] != "value" {
			problems = append(problems, fmt.Sprintf("%s echo-key = %q", p.name, v))
		}
		if v := p.md.Get("echo-bin-bin"); len(v) != 1 || v[0] != string(binValue) {
			problems = append(problems, fmt.Sprintf("%s echo-bin-bin = %q", p.name, v))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
