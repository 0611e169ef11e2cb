package main

// The bench mode (`--bench WORKLOAD`): one workload on one transport for a while, its rate
// printed as a RESULT line, so that Kitex's client can drive Kitex's server and rillrpc's
// on the same work in the same run (interop/kitex/scripts/bench.sh).

import (
	"context"
	"fmt"
	"time"
)

// runBench runs `workload` for `secs` seconds: server-stream (messages of one EchoServer
// call), pingpong (Echo round trips, one message each way at a time) or unary (PingPong
// calls, one after another).
func runBench(c api, workload string, size int, secs float64) error {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	d := time.Duration(secs * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	var n int64
	var unit string
	start := time.Now()
	end := start.Add(d)
	switch workload {
	case "server-stream":
		unit = "msg/s"
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		st, err := c.EchoServer(sctx, request{payload: payload, count: count(1 << 30)})
		if err != nil {
			return err
		}
		for time.Now().Before(end) {
			for i := 0; i < 256; i++ {
				if _, err := st.Recv(sctx); err != nil {
					return err
				}
			}
			n += 256
		}
	case "pingpong":
		unit = "roundtrips/s"
		st, err := c.Echo(ctx)
		if err != nil {
			return err
		}
		for time.Now().Before(end) {
			if err := st.Send(ctx, request{payload: payload}); err != nil {
				return err
			}
			if _, err := st.Recv(ctx); err != nil {
				return err
			}
			n++
		}
		_ = st.CloseSend(ctx)
	case "unary":
		unit = "calls/s"
		for time.Now().Before(end) {
			if _, err := c.PingPong(ctx, request{payload: payload}); err != nil {
				return err
			}
			n++
		}
	default:
		return fmt.Errorf("unknown workload %q: server-stream, pingpong or unary", workload)
	}
	secsTaken := time.Since(start).Seconds()
	fmt.Printf("RESULT workload=%s transport=%s value=%d unit=%s secs=%.3f size=%d\n",
		workload, transName, int64(float64(n)/secsTaken), unit, secsTaken, size)
	return nil
}
