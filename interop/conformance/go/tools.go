//go:build tools

// Package tools pins the Connect conformance runner: `go build` of its command from this
// module uses exactly the versions in go.mod and go.sum.
package tools

import _ "connectrpc.com/conformance/cmd/connectconformance"
