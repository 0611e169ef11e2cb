// kitex-client: the echo checks of interop/matrix/README.md, on a Kitex v0.16.3 client of
// shared/idl/echo.thrift, in one of Kitex's Thrift transports.
//
//	kitex-client --target host:port --transport grpc|ttheader|pingpong [--check NAME[,NAME]]
//	             [--api streamx|classic|protobuf] [--timeout 20s]
//
// Prints `PASS <check>`, `FAIL <check>: <why>` or `SKIP <check>: <why>` per check, exits 1
// if any failed. The transports (client.WithTransportProtocol):
//
//	grpc      transport.GRPC: every call, PingPong included, is a gRPC call over HTTP/2
//	          (h2c, content-type application/grpc+thrift)
//	ttheader  transport.TTHeaderFramed on top of the code's TTHeaderStreaming: streaming
//	          methods over TTHeader Streaming (ttstream), PingPong over TTHeader (framed)
//	pingpong  the same client; only the checks that need no stream run (the others SKIP)
//
// --api picks the generated code: streamx (kitex_gen/streamx, default) or classic
// (kitex_gen/classic, whose StreamClient is gRPC only, so --api classic takes --transport
// grpc or pingpong), or protobuf (kitex_gen/protobuf, of shared/idl/echo.proto: PingPong
// as KitexProtobuf, so --api protobuf takes --transport pingpong; protobuf.go).
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

	"github.com/bytedance/gopkg/cloud/metainfo"
	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/kerrors"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2/metadata"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
	"github.com/cloudwego/kitex/pkg/transmeta"
	"github.com/cloudwego/kitex/transport"
)

var (
	timeout      time.Duration
	transName    string
	pingpongName string
)

// PingPong's framings (the netpoll codec, pkg/remote/codec/default_codec.go): TTHeader,
// around a Framed message (TTHeaderFramed, our default) or a bare one; Framed (a length
// before the TMessage: what a Kitex client speaks when given no transport protocol, since
// v0.13.0); Buffered (a bare TMessage, transport.PurePayload).
var pingpongProtocols = map[string]transport.Protocol{
	"ttheader-framed": transport.TTHeaderFramed,
	"ttheader":        transport.TTHeader,
	"framed":          transport.Framed,
	"buffered":        transport.PurePayload,
}

// hasHeader: the framing carries TTHeader's key-values (metainfo, biz status).
func hasHeader() bool { return pingpongProtocols[pingpongName]&transport.TTHeader != 0 }

// The checks, in order. `cancel` is ours (not the matrix's): it opens Echo, cancels it
// after one round (an RST frame in ttstream, RST_STREAM in HTTP/2), then checks that a new
// call on the same client still works.
// `deadline` is ours too (faults.go). The `killed_*` checks (faults.go) run only when
// named, under a script that kills the server.
var allChecks = []string{"unary", "server_streaming", "client_streaming", "bidi", "error_status", "metadata", "cancel", "deadline"}

// streamChecks need a streaming transport.
var streamChecks = map[string]bool{"server_streaming": true, "client_streaming": true, "bidi": true, "cancel": true,
	"killed_server_streaming": true, "killed_bidi": true}

const errorMessage = "matrix error: 100% ünïcødé ✓"

func main() {
	target := flag.String("target", "", "host:port of the server")
	flag.StringVar(&transName, "transport", "ttheader", "grpc | ttheader | pingpong")
	checkList := flag.String("check", "", "checks to run, comma separated (default: all): "+strings.Join(allChecks, ","))
	apiName := flag.String("api", "streamx", "generated code: streamx | classic | protobuf")
	flag.StringVar(&pingpongName, "pingpong", "ttheader-framed",
		"PingPong's framing (transports ttheader, pingpong): ttheader-framed | ttheader | framed | buffered")
	flag.DurationVar(&timeout, "timeout", 20*time.Second, "deadline of every call")
	verbose := flag.Bool("v", false, "Kitex's info logs")
	bench := flag.String("bench", "", "instead of the checks, measure a workload: server-stream | pingpong | unary")
	benchSecs := flag.Float64("duration-secs", 3, "--bench: how long")
	benchSize := flag.Int("size", 16, "--bench: payload bytes")
	flag.Parse()
	if !*verbose {
		klog.SetLevel(klog.LevelFatal)
	}
	if *target == "" {
		fmt.Fprintln(os.Stderr, "kitex-client: --target is required")
		os.Exit(2)
	}
	opts := []client.Option{
		client.WithHostPorts(*target),
		// Biz status errors of a TTHeader PingPong response ("biz-status" string info) are
		// only read with this handler (pkg/transmeta/ttheader.go); it also writes the int
		// keys (from/to service and method, transport type) into the request's header.
		client.WithMetaHandler(transmeta.ClientTTHeaderHandler),
		// Our own service name: TTHeader's FromService, and the cancel path ("ttscp") of
		// a TTHeader Streaming RST frame.
		client.WithClientBasicInfo(&rpcinfo.EndpointBasicInfo{ServiceName: "kitex-client"}),
	}
	switch transName {
	case "grpc":
		opts = append(opts, client.WithTransportProtocol(transport.GRPC))
	case "ttheader", "pingpong":
		tp, ok := pingpongProtocols[pingpongName]
		if !ok {
			fmt.Fprintf(os.Stderr, "kitex-client: unknown --pingpong %q\n", pingpongName)
			os.Exit(2)
		}
		// WithTransportProtocol ORs its bits into the config, but PurePayload clears them:
		// start from nothing (a Kitex client starts from Framed, internal/client/option.go,
		// "since v0.13.0"; the StreamX NewClient adds TTHeaderStreaming), then set the
		// streaming protocol and the framing.
		opts = append(opts, client.WithTransportProtocol(transport.PurePayload),
			client.WithTransportProtocol(transport.TTHeaderStreaming))
		if tp != transport.PurePayload {
			opts = append(opts, client.WithTransportProtocol(tp))
		}
	default:
		fmt.Fprintf(os.Stderr, "kitex-client: unknown --transport %q\n", transName)
		os.Exit(2)
	}
	var c api
	var err error
	switch *apiName {
	case "streamx":
		c, err = newStreamxAPI(opts)
	case "protobuf":
		if transName != "pingpong" || pingpongName != "ttheader-framed" {
			fmt.Fprintln(os.Stderr, "kitex-client: --api protobuf takes --transport pingpong --pingpong ttheader-framed (Kitex sends KitexProtobuf in TTHeaderFramed only)")
			os.Exit(2)
		}
		c, err = newProtobufAPI(opts)
	case "classic":
		if transName == "ttheader" {
			fmt.Fprintln(os.Stderr, "kitex-client: --api classic streams over gRPC only (NewStreamClient sets transport.GRPC)")
			os.Exit(2)
		}
		c, err = newClassicAPI(opts)
	default:
		fmt.Fprintf(os.Stderr, "kitex-client: unknown --api %q\n", *apiName)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kitex-client:", err)
		os.Exit(1)
	}

	if *bench != "" {
		if err := runBench(c, *bench, *benchSize, *benchSecs); err != nil {
			fmt.Fprintln(os.Stderr, "kitex-client --bench:", err)
			os.Exit(1)
		}
		return
	}

	checks := allChecks
	if *checkList != "" {
		checks = strings.Split(*checkList, ",")
	}
	funcs := map[string]func(api) error{
		"unary":            checkUnary,
		"server_streaming": checkServerStreaming,
		"client_streaming": checkClientStreaming,
		"bidi":             checkBidi,
		"error_status":     checkErrorStatus,
		"metadata":         checkMetadata,
		"cancel":           checkCancel,
		"deadline":         checkDeadline,
		// Under a script that kills the server on `READY kill` (scripts/rill.sh).
		"killed_server_streaming": checkKilledServerStreaming,
		"killed_bidi":             checkKilledBidi,
	}
	failed := false
	for _, name := range checks {
		f, ok := funcs[name]
		if !ok {
			fmt.Printf("FAIL %s: no such check\n", name)
			failed = true
			continue
		}
		if transName == "pingpong" && streamChecks[name] {
			fmt.Printf("SKIP %s: PingPong transport has no streams\n", name)
			continue
		}
		if transName == "pingpong" && !hasHeader() && (name == "metadata" || name == "error_status") {
			fmt.Printf("SKIP %s: %s framing has no header for metainfo or a biz status\n", name, pingpongName)
			continue
		}
		if err := f(c); err != nil {
			fmt.Printf("FAIL %s: %v\n", name, err)
			failed = true
		} else {
			fmt.Printf("PASS %s\n", name)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func streams() bool { return transName != "pingpong" }

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

func checkUnary(c api) error {
	for _, p := range [][]byte{[]byte("matrix\x00\xffping"), {}} {
		ctx, cancel := callCtx()
		got, err := c.PingPong(ctx, request{payload: p})
		cancel()
		if err != nil {
			return fmt.Errorf("PingPong(%q): %v", p, err)
		}
		if !bytes.Equal(got, p) {
			return fmt.Errorf("PingPong(%q) = %q", p, got)
		}
	}
	return nil
}

// recvAll reads a stream to its end: the payloads, and the error that ended it (nil for EOF).
func recvAll(ctx context.Context, st recvStream) ([][]byte, error) {
	var got [][]byte
	for {
		p, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, p)
	}
}

func checkServerStreaming(c api) error {
	ctx, cancel := callCtx()
	defer cancel()
	st, err := c.EchoServer(ctx, request{payload: []byte("stream"), count: count(5)})
	if err != nil {
		return fmt.Errorf("EchoServer: %v", err)
	}
	got, err := recvAll(ctx, st)
	if err != nil {
		return fmt.Errorf("EchoServer after %d responses: %v", len(got), err)
	}
	if len(got) != 5 {
		return fmt.Errorf("EchoServer: %d responses, want 5", len(got))
	}
	for i, p := range got {
		if string(p) != "stream" {
			return fmt.Errorf("EchoServer response %d = %q", i, p)
		}
	}
	return nil
}

func checkClientStreaming(c api) error {
	ctx, cancel := callCtx()
	defer cancel()
	st, err := c.EchoClient(ctx)
	if err != nil {
		return fmt.Errorf("EchoClient: %v", err)
	}
	for _, n := range []int{1, 10, 100, 70000} {
		if err := st.Send(ctx, request{payload: bytes.Repeat([]byte{'c'}, n)}); err != nil {
			return fmt.Errorf("EchoClient send %d bytes: %v", n, err)
		}
	}
	got, err := st.CloseAndRecv(ctx)
	if err != nil {
		return fmt.Errorf("EchoClient: %v", err)
	}
	if string(got) != "70111" {
		return fmt.Errorf("EchoClient = %q, want 70111", got)
	}
	return nil
}

func checkBidi(c api) error {
	ctx, cancel := callCtx()
	defer cancel()
	st, err := c.Echo(ctx)
	if err != nil {
		return fmt.Errorf("Echo: %v", err)
	}
	for i := 0; i < 5; i++ {
		want := fmt.Sprintf("bidi-%d", i)
		if err := st.Send(ctx, request{payload: []byte(want)}); err != nil {
			return fmt.Errorf("Echo send %d: %v", i, err)
		}
		got, err := st.Recv(ctx)
		if err != nil {
			return fmt.Errorf("Echo recv %d: %v", i, err)
		}
		if string(got) != want {
			return fmt.Errorf("Echo recv %d = %q, want %q", i, got, want)
		}
	}
	if err := st.CloseSend(ctx); err != nil {
		return fmt.Errorf("Echo CloseSend: %v", err)
	}
	if p, err := st.Recv(ctx); !errors.Is(err, io.EOF) {
		return fmt.Errorf("Echo after CloseSend: %q, %v; want EOF", p, err)
	}
	return nil
}

// wantBiz checks that err is the biz status error of a request with count -5.
func wantBiz(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s: no error", what)
	}
	be, ok := kerrors.FromBizStatusError(err)
	if !ok {
		return fmt.Errorf("%s: %v (%T), not a biz status error", what, err, err)
	}
	if be.BizStatusCode() != 5 || be.BizMessage() != errorMessage {
		return fmt.Errorf("%s: biz status %d %q, want 5 %q", what, be.BizStatusCode(), be.BizMessage(), errorMessage)
	}
	if v := be.BizExtra()["echo-count"]; v != "-5" {
		return fmt.Errorf("%s: biz extra %v, want echo-count=-5", what, be.BizExtra())
	}
	return nil
}

var errorRequest = request{payload: []byte(errorMessage), count: count(-5)}

func checkErrorStatus(c api) error {
	// The error alone, on PingPong.
	ctx, cancel := callCtx()
	defer cancel()
	if p, err := c.PingPong(ctx, errorRequest); wantBiz("PingPong", err) != nil {
		return fmt.Errorf("%v (response %q)", wantBiz("PingPong", err), p)
	}
	if !streams() {
		return nil
	}
	// The error after an answered message, on Echo.
	st, err := c.Echo(ctx)
	if err != nil {
		return fmt.Errorf("Echo: %v", err)
	}
	if err := st.Send(ctx, request{payload: []byte("bidi-0")}); err != nil {
		return fmt.Errorf("Echo send: %v", err)
	}
	if p, err := st.Recv(ctx); err != nil || string(p) != "bidi-0" {
		return fmt.Errorf("Echo recv: %q, %v", p, err)
	}
	if err := st.Send(ctx, errorRequest); err != nil {
		return fmt.Errorf("Echo send error request: %v", err)
	}
	p, err := st.Recv(ctx)
	if err := wantBiz("Echo", err); err != nil {
		return fmt.Errorf("%v (response %q)", err, p)
	}
	// The error ending a server stream with no message before it, on EchoServer.
	ss, err := c.EchoServer(ctx, errorRequest)
	if err != nil {
		return wantBiz("EchoServer (open)", err)
	}
	got, err := recvAll(ctx, ss)
	if err := wantBiz("EchoServer", err); err != nil {
		return fmt.Errorf("%v (%d responses)", err, len(got))
	}
	return nil
}

// The metainfo sent: a transient value (RPC_TRANSIT_ECHO_KEY on TTHeader and ttstream,
// rpc-transit-echo-key on gRPC) and a persistent one (RPC_PERSIST_ECHO_PERSIST_KEY, ...).
func withMetainfo(ctx context.Context) context.Context {
	ctx = metainfo.WithValue(ctx, "ECHO_KEY", "value")
	return metainfo.WithPersistentValue(ctx, "ECHO_PERSIST_KEY", "persist value")
}

// The keys the server echoes them under, in a header or trailer (gRPC, ttstream).
var metaWant = map[string]string{
	"rpc-transit-echo-key":         "value",
	"rpc-persist-echo-persist-key": "persist value",
}

func checkMeta(what string, m map[string]string) error {
	for k, v := range metaWant {
		if m[k] != v {
			return fmt.Errorf("%s: %s = %q, want %q (got %v)", what, k, m[k], v, m)
		}
	}
	return nil
}

func checkMetadata(c api) error {
	ctx, cancel := callCtx()
	defer cancel()
	mctx := withMetainfo(ctx)
	if transName == "grpc" {
		var hd, tr metadata.MD
		uctx := nphttp2.GRPCTrailer(nphttp2.GRPCHeader(mctx, &hd), &tr)
		if _, err := c.PingPong(uctx, request{payload: []byte("meta")}); err != nil {
			return fmt.Errorf("PingPong: %v", err)
		}
		if err := checkMeta("PingPong headers", firstValues(hd)); err != nil {
			return err
		}
		if err := checkMeta("PingPong trailers", firstValues(tr)); err != nil {
			return err
		}
	} else {
		// TTHeader: the server's backward values, in the response's string info.
		uctx := metainfo.WithBackwardValues(mctx)
		if _, err := c.PingPong(uctx, request{payload: []byte("meta")}); err != nil {
			return fmt.Errorf("PingPong: %v", err)
		}
		got := metainfo.RecvAllBackwardValues(uctx)
		for k, v := range map[string]string{
			"RPC_TRANSIT_ECHO_KEY":         "value",
			"RPC_PERSIST_ECHO_PERSIST_KEY": "persist value",
		} {
			if got[k] != v {
				return fmt.Errorf("PingPong backward value %s = %q, want %q (got %v)", k, got[k], v, got)
			}
		}
	}
	if !streams() {
		return nil
	}
	st, err := c.EchoServer(mctx, request{payload: []byte("meta"), count: count(1)})
	if err != nil {
		return fmt.Errorf("EchoServer: %v", err)
	}
	hd, err := st.Header()
	if err != nil {
		return fmt.Errorf("EchoServer header: %v", err)
	}
	if err := checkMeta("EchoServer header", hd); err != nil {
		return err
	}
	if got, err := recvAll(mctx, st); err != nil || len(got) != 1 {
		return fmt.Errorf("EchoServer: %d responses, %v", len(got), err)
	}
	tr, err := st.Trailer()
	if err != nil {
		return fmt.Errorf("EchoServer trailer: %v", err)
	}
	return checkMeta("EchoServer trailer", tr)
}

func checkCancel(c api) error {
	ctx, cancel := callCtx()
	defer cancel()
	sctx, scancel := context.WithCancel(ctx)
	st, err := c.Echo(sctx)
	if err != nil {
		scancel()
		return fmt.Errorf("Echo: %v", err)
	}
	if err := st.Send(sctx, request{payload: []byte("cancel-0")}); err != nil {
		scancel()
		return fmt.Errorf("Echo send: %v", err)
	}
	if p, err := st.Recv(sctx); err != nil || string(p) != "cancel-0" {
		scancel()
		return fmt.Errorf("Echo recv: %q, %v", p, err)
	}
	scancel()
	p, err := st.Recv(sctx)
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("Echo after cancel: %q, %v; want a cancellation error", p, err)
	}
	// Give the RST time to reach the server before the next call, so a capture shows it
	// on its own; then the same client must still work.
	time.Sleep(100 * time.Millisecond)
	ss, err := c.EchoServer(ctx, request{payload: []byte("after-cancel"), count: count(1)})
	if err != nil {
		return fmt.Errorf("EchoServer after cancel: %v", err)
	}
	if got, err := recvAll(ctx, ss); err != nil || len(got) != 1 {
		return fmt.Errorf("EchoServer after cancel: %d responses, %v", len(got), err)
	}
	return nil
}
