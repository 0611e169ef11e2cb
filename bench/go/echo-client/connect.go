package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"connectrpc.com/connect"

	"rillrpc.dev/interop/matrix/go/echo"
)

type stub = connect.Client[echo.Request, echo.Response]

// connectConn is one connect-go client connection: an http.Client of its own (one h2c
// connection, or HTTP/1.1 connections from its own pool) with a stub per method, since
// connect-go binds a client to a procedure's URL.
type connectConn struct {
	pingPong, echo, echoClient, echoServer *stub
}

func httpVersion(http1 bool) string {
	if http1 {
		return "1.1"
	}
	return "2"
}

// connectDial makes --connections connect-go clients speaking --protocol, each with one
// first call so connecting is outside the measurement.
func connectDial(a args) ([]conn, error) {
	opts := []connect.ClientOption{connect.WithCodec(echo.Codec{})}
	switch a.protocol {
	case "grpc":
		opts = append(opts, connect.WithGRPC())
	case "grpc-web":
		opts = append(opts, connect.WithGRPCWeb())
	}
	var conns []conn
	for i := 0; i < a.connections; i++ {
		var protocols http.Protocols
		if a.http1 {
			protocols.SetHTTP1(true)
		} else {
			// Only unencrypted HTTP/2: an http:// request starts with the HTTP/2 preface
			// (prior knowledge), as grpc-go's and rillrpc's clients do.
			protocols.SetUnencryptedHTTP2(true)
		}
		client := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
		base := "http://" + a.addr
		c := &connectConn{
			pingPong:   connect.NewClient[echo.Request, echo.Response](client, base+echo.PingPong, opts...),
			echo:       connect.NewClient[echo.Request, echo.Response](client, base+echo.Echo, opts...),
			echoClient: connect.NewClient[echo.Request, echo.Response](client, base+echo.EchoClient, opts...),
			echoServer: connect.NewClient[echo.Request, echo.Response](client, base+echo.EchoServer, opts...),
		}
		if _, err := c.pingPong.CallUnary(context.Background(), connect.NewRequest(&echo.Request{})); err != nil {
			return nil, fmt.Errorf("first call: %w", err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func (cc *connectConn) worker(workload string, payload []byte, c *counter) error {
	ctx := context.Background()
	switch workload {
	case "server-stream":
		s, err := cc.echoServer.CallServerStream(ctx, connect.NewRequest(&echo.Request{Payload: payload, Count: math.MaxInt32}))
		if err != nil {
			return err
		}
		defer s.Close()
		k := uint64(0)
		for s.Receive() {
			k++
			if k == checkEvery {
				c.n.Add(k)
				k = 0
				if c.stop.Load() {
					return nil
				}
			}
		}
		if err := s.Err(); err != nil {
			return err
		}
		return errors.New("server stream ended early")
	case "client-stream":
		s := cc.echoClient.CallClientStream(ctx)
		sent, k := uint64(0), uint64(0)
		for {
			// An error: the server ended the call; CloseAndReceive gives its status.
			if err := s.Send(&echo.Request{Payload: payload}); err != nil {
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
		resp, err := s.CloseAndReceive()
		if err != nil {
			return err
		}
		return checkTotal(resp.Msg.Payload, sent, len(payload))
	case "pingpong":
		s := cc.echo.CallBidiStream(ctx)
		for !c.stop.Load() {
			if err := s.Send(&echo.Request{Payload: payload}); err != nil {
				return err
			}
			if _, err := s.Receive(); err != nil {
				if errors.Is(err, io.EOF) {
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
			_, err := cc.pingPong.CallUnary(callCtx, connect.NewRequest(&echo.Request{Payload: payload}))
			cancel()
			if err != nil {
				return err
			}
			c.n.Add(1)
		}
		return nil
	case "cancel":
		for !c.stop.Load() {
			if err := cc.cancelAfterFirst(payload); err != nil {
				return err
			}
			c.n.Add(1)
		}
		return nil
	}
	return fmt.Errorf("unknown workload %s", workload)
}

// cancelAfterFirst opens a server stream that would never end, reads its first response
// and cancels it (RST_STREAM CANCEL over HTTP/2; over HTTP/1.1 the connection closes).
func (cc *connectConn) cancelAfterFirst(payload []byte) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := cc.echoServer.CallServerStream(ctx, connect.NewRequest(&echo.Request{Payload: payload, Count: math.MaxInt32}))
	if err != nil {
		return err
	}
	defer s.Close()
	if !s.Receive() {
		if err := s.Err(); err != nil {
			return err
		}
		return errors.New("server stream ended early")
	}
	return nil
}
