module rillrpc.dev/bench/go

go 1.26.0

require (
	connectrpc.com/connect v1.19.1
	google.golang.org/grpc v1.85.0
	rillrpc.dev/interop/matrix/go v0.0.0
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// The echo service (protowire codec, hand-written ServiceDesc) is the matrix's: one copy.
replace rillrpc.dev/interop/matrix/go => ../../interop/matrix/go
