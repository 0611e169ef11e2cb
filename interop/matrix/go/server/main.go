// The grpc-go echo server of the matrix: `server --port N` prints "listening on HOST:PORT"
// and serves echo.TestService, and matrix.Rules (the server that breaks the single-response
// rule for the shape_rules check), until killed.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"

	"rillrpc.dev/interop/matrix/go/echo"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (0 picks one)")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	flag.Parse()
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go echo server:", err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	s.RegisterService(&echo.ServiceDesc, echo.Server{})
	s.RegisterService(&echo.RulesDesc, echo.Server{})
	fmt.Printf("listening on %s\n", lis.Addr())
	os.Stdout.Sync()
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go echo server:", err)
		os.Exit(1)
	}
}
