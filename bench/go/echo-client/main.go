// The Go echo clients of rill-bench, with echo-client's command line and result line:
//
//	echo-client --impl grpc-go|connect-go --addr 127.0.0.1:PORT --workload W
//	            [--protocol grpc|grpc-web|connect] [--http1] [--duration-secs S]
//	            [--warmup-secs S] [--size N] [--streams N] [--connections N] [--server-pid PID]
//
// grpc-go speaks gRPC over h2c. connect-go (connect.go) speaks --protocol (default connect)
// over h2c, or over HTTP/1.1 with --http1 (connect and grpc-web only).
//
// Workloads: server-stream, client-stream, pingpong, unary, cancel, rates over --duration-secs
// after a warm-up. Prints one line, `RESULT workload=W impl=grpc-go value=RATE unit=U ...`,
// with the fields echo-client prints (count, secs, client_cpu, and server_cpu with
// --server-pid), which the bench runner parses.
//
// The work per message is echo-client's: a fresh echo.Request built and encoded for every
// message sent, every echo.Response decoded into a fresh message (the matrix's protowire
// codec, interop/matrix/go/echo, as grpc-go's generated stubs would do with protoc's).
// grpc-go and connect-go run with their defaults (grpc-go: BDP-estimated windows, its write
// and read buffers; connect-go: net/http's transport), as a user's client would.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"rillrpc.dev/interop/matrix/go/echo"
)

// checkEvery is how many messages a streaming loop sends or reads between updates of the
// shared counter and looks at the stop flag, as echo-client's CHECK_EVERY.
const checkEvery = 256

type args struct {
	impl        string
	protocol    string
	http1       bool
	addr        string
	workload    string
	duration    time.Duration
	warmup      time.Duration
	size        int
	streams     int
	connections int
	serverPid   int
}

// counter sums the messages of every worker; workers end when stop is set.
type counter struct {
	n    atomic.Uint64
	stop atomic.Bool
}

func main() {
	a := parseArgs()
	r, err := run(a)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo-client:", err)
		os.Exit(1)
	}
	fmt.Println(r.line())
	// Streams still open (a server stream still being filled) go with the process.
	os.Exit(0)
}

func run(a args) (*report, error) {
	r := newReport()
	r.set("workload", a.workload).set("impl", a.impl).set("unit", unit(a.workload)).
		set("addr", a.addr).set("connections", a.connections).set("streams", a.streams).
		set("size", a.size)
	if a.impl == "connect-go" {
		r.set("protocol", a.protocol).set("http", httpVersion(a.http1))
	}
	var conns []conn
	var err error
	if a.impl == "connect-go" {
		conns, err = connectDial(a)
	} else {
		conns, err = grpcDial(a)
	}
	if err != nil {
		return nil, err
	}
	c := new(counter)
	payload := bytes.Repeat([]byte("x"), a.size)
	done := make(chan error, a.streams)
	var ended atomic.Int32
	for i := 0; i < a.streams; i++ {
		conn := conns[i%len(conns)]
		go func() {
			err := conn.worker(a.workload, payload, c)
			ended.Add(1)
			done <- err
		}()
	}
	// A worker that fails early (server gone, protocol error) fails the run.
	check := func() error {
		if int(ended.Load()) < a.streams {
			return nil
		}
		for i := 0; i < a.streams; i++ {
			if err := <-done; err != nil {
				return err
			}
		}
		return errors.New("every worker ended before the measurement did")
	}
	time.Sleep(a.warmup)
	if err := check(); err != nil {
		return nil, err
	}
	n0, t0 := c.n.Load(), time.Now()
	cpu0, scpu0 := selfCPU(), procCPU(a.serverPid)
	time.Sleep(a.duration)
	n1, t1 := c.n.Load(), time.Now()
	cpu1, scpu1 := selfCPU(), procCPU(a.serverPid)
	if err := check(); err != nil {
		return nil, err
	}
	c.stop.Store(true)
	secs := t1.Sub(t0).Seconds()
	count := n1 - n0
	r.set("value", fmt.Sprintf("%.0f", float64(count)/secs)).set("count", count).
		set("secs", fmt.Sprintf("%.3f", secs)).
		set("client_cpu", fmt.Sprintf("%.3f", (cpu1-cpu0)/secs))
	if scpu0 >= 0 && scpu1 >= 0 {
		r.set("server_cpu", fmt.Sprintf("%.3f", (scpu1-scpu0)/secs))
	}
	// Client streams end cleanly, and the server's byte count checks what was sent. The
	// rate is already taken; a slow server may still be draining the windows' worth.
	if a.workload == "client-stream" {
		limit := time.After(180 * time.Second)
		for i := 0; i < a.streams; i++ {
			select {
			case err := <-done:
				if err != nil {
					return nil, err
				}
			case <-limit:
				return nil, errors.New("client stream did not finish within 180 s")
			}
		}
	}
	return r, nil
}

// conn is one client connection of the implementation under test; each stream of a rate
// workload runs a worker on one.
type conn interface {
	worker(workload string, payload []byte, c *counter) error
}

// grpcConn is a grpc-go connection.
type grpcConn struct{ cc *grpc.ClientConn }

func (g grpcConn) worker(workload string, payload []byte, c *counter) error {
	return worker(g.cc, workload, payload, c)
}

// grpcDial opens --connections connections and makes one call on each, so connecting is
// outside the measurement (grpc.NewClient itself connects lazily).
func grpcDial(a args) ([]conn, error) {
	var conns []conn
	for i := 0; i < a.connections; i++ {
		// passthrough: the address as given, one connection per ClientConn, no resolver.
		conn, err := grpc.NewClient("passthrough:///"+a.addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		if err := conn.Invoke(context.Background(), echo.PingPong, &echo.Request{}, new(echo.Response)); err != nil {
			return nil, fmt.Errorf("first call: %w", err)
		}
		conns = append(conns, grpcConn{conn})
	}
	return conns, nil
}

// unaryDeadline is the deadline of each call of the unary-deadline workload: never
// reached, only set, as most callers set one (the Rust programs' UNARY_DEADLINE).
const unaryDeadline = 10 * time.Second

func worker(conn *grpc.ClientConn, workload string, payload []byte, c *counter) error {
	ctx := context.Background()
	switch workload {
	case "server-stream":
		s, err := openEndless(ctx, conn, payload)
		if err != nil {
			return err
		}
		k := uint64(0)
		for {
			if err := recvOne(s); err != nil {
				return err
			}
			k++
			if k == checkEvery {
				c.n.Add(k)
				k = 0
				if c.stop.Load() {
					return nil
				}
			}
		}
	case "client-stream":
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, echo.EchoClient)
		if err != nil {
			return err
		}
		sent, k := uint64(0), uint64(0)
		for {
			// io.EOF: the server ended the call; RecvMsg below gives its status.
			if err := s.SendMsg(&echo.Request{Payload: payload}); err != nil {
				break
			}
			sent++
			k++
			if k == checkEvery {
				c.n.Add(k)
				k = 0
				if c.stop.Load() {
					break
				}
			}
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		resp := new(echo.Response)
		if err := s.RecvMsg(resp); err != nil {
			return err
		}
		return checkTotal(resp.Payload, sent, len(payload))
	case "pingpong":
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, echo.Echo)
		if err != nil {
			return err
		}
		for !c.stop.Load() {
			if err := s.SendMsg(&echo.Request{Payload: payload}); err != nil {
				return err
			}
			if err := s.RecvMsg(new(echo.Response)); err != nil {
				if err == io.EOF {
					return errors.New("bidi stream ended early")
				}
				return err
			}
			c.n.Add(1)
		}
		return nil
	case "unary", "unary-deadline":
		for !c.stop.Load() {
			callCtx, cancel := ctx, context.CancelFunc(func() {})
			if workload == "unary-deadline" {
				callCtx, cancel = context.WithTimeout(ctx, unaryDeadline)
			}
			err := conn.Invoke(callCtx, echo.PingPong, &echo.Request{Payload: payload}, new(echo.Response))
			cancel()
			if err != nil {
				return err
			}
			c.n.Add(1)
		}
		return nil
	case "cancel":
		for !c.stop.Load() {
			if err := cancelAfterFirst(conn, payload); err != nil {
				return err
			}
			c.n.Add(1)
		}
		return nil
	}
	return fmt.Errorf("unknown workload %s", workload)
}

// cancelAfterFirst opens a server stream that would never end, reads its first response
// and cancels it (RST_STREAM CANCEL).
func cancelAfterFirst(conn *grpc.ClientConn, payload []byte) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := openEndless(ctx, conn, payload)
	if err != nil {
		return err
	}
	return recvOne(s)
}

// openEndless opens an EchoServer call whose server sends without end.
func openEndless(ctx context.Context, conn *grpc.ClientConn, payload []byte) (grpc.ClientStream, error) {
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, echo.EchoServer)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(&echo.Request{Payload: payload, Count: math.MaxInt32}); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return s, nil
}

// recvOne reads one response of an endless server stream: its end is an error.
func recvOne(s grpc.ClientStream) error {
	if err := s.RecvMsg(new(echo.Response)); err != nil {
		if err == io.EOF {
			return errors.New("server stream ended early")
		}
		return err
	}
	return nil
}

// checkTotal: the server counted at least what this client sent (it may have queued one
// more than it counted when it stopped).
func checkTotal(payload []byte, sent uint64, size int) error {
	got, err := strconv.ParseUint(string(payload), 10, 64)
	if err != nil {
		return errors.New("client stream response is not a decimal byte count")
	}
	if want := sent * uint64(size); got < want {
		return fmt.Errorf("server counted %d bytes, client sent at least %d", got, want)
	}
	return nil
}

func unit(workload string) string {
	switch workload {
	case "pingpong":
		return "roundtrips/s"
	case "unary", "unary-deadline", "cancel":
		return "calls/s"
	}
	return "msg/s"
}

// selfCPU is the CPU time (user + system) this process has used, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// procCPU is another process's CPU time in seconds from /proc/PID/stat, or -1. Its fields
// count USER_HZ ticks, which Linux fixes at 100 for user space.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces; count fields after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return float64(ut+st) / 100
}

// report is echo-client's RESULT line: the headline fields first, then the rest by name.
type report struct{ fields map[string]string }

func newReport() *report { return &report{fields: map[string]string{}} }

func (r *report) set(k string, v any) *report {
	r.fields[k] = fmt.Sprint(v)
	return r
}

func (r *report) line() string {
	head := []string{"workload", "impl", "value", "unit"}
	var b strings.Builder
	b.WriteString("RESULT")
	for _, k := range head {
		if v, ok := r.fields[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	var rest []string
	for k := range r.fields {
		if !contains(head, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		fmt.Fprintf(&b, " %s=%s", k, r.fields[k])
	}
	return b.String()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func parseArgs() args {
	impl := flag.String("impl", "grpc-go", "implementation: grpc-go or connect-go")
	protocol := flag.String("protocol", "", "connect-go: grpc, grpc-web or connect (default connect)")
	http1 := flag.Bool("http1", false, "connect-go: HTTP/1.1 instead of h2c (connect and grpc-web only)")
	addr := flag.String("addr", "", "HOST:PORT of the echo server")
	workload := flag.String("workload", "", "server-stream, client-stream, pingpong, unary or cancel")
	duration := flag.Float64("duration-secs", 3, "measured seconds")
	warmup := flag.Float64("warmup-secs", -1, "warm-up seconds (default min(duration/5, 0.5))")
	size := flag.Int("size", 16, "payload bytes per message")
	streams := flag.Int("streams", 1, "concurrent streams")
	connections := flag.Int("connections", 1, "connections the streams are spread over")
	serverPid := flag.Int("server-pid", 0, "the server's pid, to report its CPU use")
	flag.Parse()
	usage := func(msg string) {
		fmt.Fprintln(os.Stderr, "echo-client:", msg)
		flag.Usage()
		os.Exit(2)
	}
	switch *impl {
	case "grpc-go":
		if (*protocol != "" && *protocol != "grpc") || *http1 {
			usage("grpc-go speaks gRPC over HTTP/2 only; --protocol and --http1 are for connect-go")
		}
	case "connect-go":
		if *protocol == "" {
			*protocol = "connect"
		}
		switch *protocol {
		case "connect", "grpc-web":
		case "grpc":
			if *http1 {
				usage("gRPC needs HTTP/2; --http1 is for connect and grpc-web")
			}
		default:
			usage("--protocol must be grpc, grpc-web or connect, not " + *protocol)
		}
	default:
		usage("--impl must be grpc-go or connect-go, not " + *impl)
	}
	if *addr == "" || *workload == "" {
		usage("--addr and --workload are required")
	}
	switch *workload {
	case "server-stream", "client-stream", "pingpong", "unary", "unary-deadline", "cancel":
	default:
		usage("unknown workload " + *workload + " (the Go clients run the rate workloads only)")
	}
	if *streams < 1 || *connections < 1 {
		usage("--streams and --connections must be at least 1")
	}
	if !(*duration > 0) || *size < 0 {
		usage("--duration-secs must be positive and --size not negative")
	}
	if *warmup < 0 {
		*warmup = math.Min(*duration/5, 0.5)
	}
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return args{
		impl: *impl, protocol: *protocol, http1: *http1, addr: *addr, workload: *workload, duration: secs(*duration), warmup: secs(*warmup),
		size: *size, streams: *streams, connections: *connections, serverPid: *serverPid,
	}
}
