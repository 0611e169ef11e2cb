package echo

import "google.golang.org/grpc"

// The rules service: unary methods (for the client) whose server breaks the single-response
// rule, so that a client's own enforcement of it can be seen (shape_rules in the README).
// A client must report UNIMPLEMENTED for Zero and Two; One is their well-behaved twin, so
// that a server lacking this service (also UNIMPLEMENTED, "unknown service") cannot pass
// for one that breaks the rule.
const (
	RulesService = "matrix.Rules"
	RulesZero    = "/matrix.Rules/Zero"
	RulesOne     = "/matrix.Rules/One"
	RulesTwo     = "/matrix.Rules/Two"
)

// answer returns a handler that reads the one request and sends its payload back n times,
// then OK. grpc-go's unary handlers cannot send other than one response, so the methods are
// declared server streaming: grpc-go then still checks the single request (RecvMsg waits
// for the half-close), and nothing on the wire tells the client the difference.
func answer(n int) grpc.StreamHandler {
	return func(_ any, s grpc.ServerStream) error {
		req := new(Request)
		if err := s.RecvMsg(req); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := s.SendMsg(&Response{Payload: req.Payload}); err != nil {
				return err
			}
		}
		return nil
	}
}

// RulesDesc describes matrix.Rules for grpc.Server.RegisterService (with Server).
var RulesDesc = grpc.ServiceDesc{
	ServiceName: RulesService,
	HandlerType: (*Handler)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Zero", Handler: answer(0), ServerStreams: true},
		{StreamName: "One", Handler: answer(1), ServerStreams: true},
		{StreamName: "Two", Handler: answer(2), ServerStreams: true},
	},
	Metadata: "matrix_rules",
}
