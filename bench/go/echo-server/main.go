// The Go echo servers of rill-bench, with echo-server's command line:
//
//	echo-server --impl grpc-go|connect-go [--port 50051] [--host 127.0.0.1] [--max-streams N]
//	            [--threads N]
//
// prints "listening on HOST:PORT" once it accepts connections and serves echo.TestService
// (the matrix's messages and codec, interop/matrix/go/echo) until killed:
//   - grpc-go: grpc-go's server with its default transport settings (gRPC over h2c);
//   - connect-go: connect-go's handlers on net/http, HTTP/1.1 and h2c on the one port,
//     answering Connect, gRPC and gRPC-Web as connect-go does (connect.go).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"

	"google.golang.org/grpc"

	"rillrpc.dev/interop/matrix/go/echo"
)

func main() {
	impl := flag.String("impl", "grpc-go", "implementation: grpc-go or connect-go")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 50051, "port to listen on (0 picks one)")
	maxStreams := flag.Uint("max-streams", 100000, "concurrent streams per connection")
	threads := flag.Int("threads", 0, "GOMAXPROCS (0: Go's default, one per core)")
	flag.Parse()
	if *impl != "grpc-go" && *impl != "connect-go" {
		fail(2, "--impl must be grpc-go or connect-go, not %s", *impl)
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fail(1, "%v", err)
	}
	if *impl == "connect-go" {
		srv := connectServer(uint32(*maxStreams))
		announce(lis)
		if err := srv.Serve(lis); err != nil {
			fail(1, "%v", err)
		}
		return
	}
	// The limit echo-server's tonic and rill servers advertise, so every client reads the
	// same SETTINGS from each server (grpc-go's default sends none).
	s := grpc.NewServer(grpc.MaxConcurrentStreams(uint32(*maxStreams)))
	s.RegisterService(&echo.ServiceDesc, echo.Server{})
	announce(lis)
	if err := s.Serve(lis); err != nil {
		fail(1, "%v", err)
	}
}

func announce(lis net.Listener) {
	fmt.Printf("listening on %s\n", lis.Addr())
	os.Stdout.Sync()
}

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "echo-server: "+format+"\n", a...)
	os.Exit(code)
}
