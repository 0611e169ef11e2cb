// The grpc-go client of the matrix: `client --target HOST:PORT` runs the six checks
// against an echo server (or, with --shape-rules zero,two,two-requests, those sub-checks of
// the shape_rules check instead), prints PASS/FAIL lines and exits 1 if any failed.
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
	"google.golang.org/grpc/codes"
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

// rulesTimeout is shorter than the six checks' deadline: grpcio's and grpc-js's clients
// (information cells) wait for it on a unary call answered twice, and every one of them
// adds to the matrix's time. A call here ends in milliseconds.
const rulesTimeout = 3 * time.Second

// requestGap: the second request of two-requests comes this long after the first. A server
// that takes the first without waiting for the half-close (where a second one would show)
// has ended the call by then, so it fails every run, not only when both requests arrive
// together.
const requestGap = 50 * time.Millisecond

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
	rules := flag.String("shape-rules", "", "run these shape_rules sub-checks (comma-separated: "+
		"zero,two,two-requests) instead of the six checks")
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
	if *rules != "" {
		os.Exit(shapeRules(conn, strings.Split(*rules, ",")))
	}
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
	// grpc-go speaks gRPC only: a server that names another protocol saw something else.
	if err := echo.SpokeProtocol("grpc", hdr.Get(echo.ProtocolHeader)); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// outcome is a call's end as the shape_rules table shows it: the code, and the message or,
// for OK, how many responses came.
type outcome struct {
	code codes.Code
	text string
}

func (o outcome) String() string {
	if o.code == codes.OK {
		return fmt.Sprintf("code 0 (%s)", o.text)
	}
	return fmt.Sprintf("code %d %q", o.code, o.text)
}

func ended(err error, n int) outcome {
	if err == nil {
		return outcome{codes.OK, fmt.Sprintf("responses: %d", n)}
	}
	st := status.Convert(err)
	return outcome{st.Code(), st.Message()}
}

func shapeRules(conn *grpc.ClientConn, subs []string) int {
	failed := 0
	for _, sub := range subs {
		var o outcome
		var err error
		switch sub {
		case "zero":
			o, err = misbehaving(conn, echo.RulesZero)
		case "two":
			o, err = misbehaving(conn, echo.RulesTwo)
		case "two-requests":
			o = twoRequests(conn)
		default:
			fmt.Fprintln(os.Stderr, "unknown shape_rules sub-check", sub)
			return 2
		}
		switch {
		case err != nil:
			failed++
			fmt.Printf("FAIL shape_rules/%s: %v\n", sub, err)
		case o.code != codes.Unimplemented:
			failed++
			fmt.Printf("FAIL shape_rules/%s: %v, want code 12\n", sub, o)
		default:
			fmt.Printf("PASS shape_rules/%s: %v\n", sub, o)
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// misbehaving calls a Rules method whose server breaks the single-response rule. One,
// answered by the rule, must succeed first: a server without the Rules service answers
// UNIMPLEMENTED too, and must not pass for one that breaks the rule.
func misbehaving(conn *grpc.ClientConn, method string) (outcome, error) {
	c, cancel := context.WithTimeout(context.Background(), rulesTimeout)
	defer cancel()
	req := &echo.Request{Payload: []byte("rules")}
	if err := conn.Invoke(c, echo.RulesOne, req, new(echo.Response)); err != nil {
		return outcome{}, fmt.Errorf("the control call %s: %v", echo.RulesOne, ended(err, 0))
	}
	return ended(conn.Invoke(c, method, req, new(echo.Response)), 1), nil
}

// twoRequests sends two requests and the half-close on the single-request PingPong,
// through a stream declared bidi (Invoke would send one).
func twoRequests(conn *grpc.ClientConn) outcome {
	c, cancel := context.WithTimeout(context.Background(), rulesTimeout)
	defer cancel()
	s, err := conn.NewStream(c, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, echo.PingPong)
	if err != nil {
		return ended(err, 0)
	}
	req := &echo.Request{Payload: []byte("rules")}
	// io.EOF from a send: the server ended the call; RecvMsg gives its status.
	if s.SendMsg(req) == nil {
		time.Sleep(requestGap)
		if s.SendMsg(req) == nil {
			_ = s.CloseSend()
		}
	}
	n := 0
	for {
		err := s.RecvMsg(new(echo.Response))
		if err == io.EOF {
			return ended(nil, n)
		}
		if err != nil {
			return ended(err, n)
		}
		n++
	}
}
