//go:build tools

// Pins the kitex code generator to the module's kitex version: `go build` of
// github.com/cloudwego/kitex/tool/cmd/kitex from this module builds the same v0.16.3.
package tools

import _ "github.com/cloudwego/kitex/tool/cmd/kitex"
