// Command grpc-testing writes the descriptors of gRPC's interop protos (grpc/testing/empty,
// messages and test.proto, package grpc.testing) as one FileDescriptorSet, taken from the
// generated code of grpc-go's module at the version go.mod pins: the repository keeps no
// copy of the protos, and the interop server, client and Python client are generated from
// what grpc-go's own interop programs are built from.
//
//	go run . OUT.fds
package main

import (
	"fmt"
	"os"

	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: grpc-testing OUT.fds")
		os.Exit(2)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	// Imports before the files that import them, as protoc's --include_imports writes them.
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(grpc_testing.File_grpc_testing_test_proto)
	b, err := proto.Marshal(set)
	if err == nil {
		err = os.WriteFile(os.Args[1], b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-testing:", err)
		os.Exit(1)
	}
}
