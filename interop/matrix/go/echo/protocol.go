package echo

import "fmt"

// ProtocolHeader is the response header in which a server names the protocol it saw a call
// come in on, in rillrpc's names: "grpc", "grpc-web" or "connect". Every server of the
// matrix that can tell (the rillrpc ones, connect-server, connect-node's) reports it on a
// call with echo- metadata, and the clients hold it to the protocol they were told to
// speak. The gRPC-only peers' servers, grpc-go's (this package's Server) among them,
// cannot tell and send none.
const ProtocolHeader = "echo-protocol"

// SpokeProtocol says what is wrong, if anything, with the ProtocolHeader values a server
// sent back to a client told to speak protocol. Present, the header must name it; absent,
// the client must speak gRPC: only the gRPC-only peers' servers omit it, and they answer
// nothing else. So a row that speaks another protocol than its own fails against every
// server that answers it.
func SpokeProtocol(protocol string, got []string) error {
	switch {
	case len(got) == 1 && got[0] == protocol, len(got) == 0 && protocol == "grpc":
		return nil
	case len(got) == 0:
		return fmt.Errorf("the server sent no %s header, but this client was told to speak %s "+
			"(only the gRPC-only peers' servers send none, and they answer gRPC alone)", ProtocolHeader, protocol)
	}
	return fmt.Errorf("the server saw %s %q, but this client was told to speak %s", ProtocolHeader, got, protocol)
}
