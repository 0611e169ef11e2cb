package main

// Thrift Binary protocol, annotated: a strict TMessage header when the bytes start with
// 0x8001 (VERSION_1), then a struct, each field named where the echo IDL says what it is.

import (
	"encoding/binary"
	"fmt"
	"math"
)

var tmessageTypes = map[uint32]string{1: "CALL", 2: "REPLY", 3: "EXCEPTION", 4: "ONEWAY"}

var ttypeNames = map[byte]string{
	0: "STOP", 2: "BOOL", 3: "BYTE", 4: "DOUBLE", 6: "I16", 8: "I32", 10: "I64",
	11: "STRING/BINARY", 12: "STRUCT", 13: "MAP", 14: "SET", 15: "LIST",
}

type fieldSpec struct{ name, schema string }

// The structs of echo.thrift, and of Kitex's wrappers of them (TestServicePingPongArgs
// and ...Result in kitex_gen, TApplicationException).
var schemas = map[string]map[int16]fieldSpec{
	"args":         {1: {"req", "Request"}},
	"result":       {0: {"success", "Response"}},
	"Request":      {1: {"payload", ""}, 2: {"count", ""}},
	"Response":     {1: {"payload", ""}},
	"AppException": {1: {"message", ""}, 2: {"type", ""}},
}

var appExceptionTypes = map[int32]string{
	0: "UNKNOWN", 1: "UNKNOWN_METHOD", 2: "INVALID_MESSAGE_TYPE", 3: "WRONG_METHOD_NAME",
	4: "BAD_SEQUENCE_ID", 5: "MISSING_RESULT", 6: "INTERNAL_ERROR", 7: "PROTOCOL_ERROR",
}

// decodeThrift prints b (at stream offset off) as a Thrift Binary message or struct, or
// as Kitex's Protobuf message when it starts with 0x9001.
func decodeThrift(off int, b []byte, schema string) {
	defer func() {
		if r := recover(); r != nil {
			logf("  (not Thrift Binary past this point: %v)\n", r)
			payloadField(off, b, "raw")
		}
	}()
	p := 0
	if len(b) >= 8 && int(binary.BigEndian.Uint32(b)) == len(b)-4 && (b[4] == 0x80 || b[4] == 0x90) && b[5] == 0x01 {
		// TTHeader with TransportType "framed" (transport.TTHeaderFramed): the payload is
		// itself a Framed message, a length before the TMessage.
		field(off, b[0:4], "FRAMED LENGTH %d (TransportType framed: a Framed message inside)", len(b)-4)
		off += 4
		b = b[4:]
	}
	if len(b) >= 8 && b[0] == 0x90 && b[1] == 0x01 {
		decodeKitexProtobuf(off, b)
		return
	}
	if len(b) >= 8 && b[0] == 0x80 && b[1] == 0x01 {
		vt := binary.BigEndian.Uint32(b)
		typ := vt & 0xff
		field(off, b[0:4], "TMessage VERSION_1 0x8001, type %d %s", typ, tmessageTypes[typ])
		nl := int(binary.BigEndian.Uint32(b[4:]))
		field(off+4, b[4:8+nl], "TMessage name len %d %q", nl, b[8:8+nl])
		p = 8 + nl
		field(off+p, b[p:p+4], "TMessage seq id %d", int32(binary.BigEndian.Uint32(b[p:])))
		p += 4
		switch typ {
		case 1, 4:
			schema = "args"
		case 2:
			schema = "result"
		case 3:
			schema = "AppException"
		}
	}
	if schema == "" {
		schema = "?"
	}
	logf("  %06x  struct %s {\n", off+p, schemaTitle(schema))
	n := readStruct(off, b, p, schema, "    ")
	if p+n < len(b) {
		payloadField(off+p+n, b[p+n:], "%d trailing bytes", len(b)-p-n)
	}
}

func schemaTitle(s string) string {
	switch s {
	case "args":
		return "args (TestService<Method>Args: the request wrapped in field 1)"
	case "result":
		return "result (TestService<Method>Result: field 0 success)"
	case "AppException":
		return "TApplicationException"
	}
	return s
}

// readStruct prints the fields from b[p:] to STOP, returns the bytes read.
func readStruct(off int, b []byte, p int, schema, indent string) int {
	start := p
	for {
		t := b[p]
		if t == 0 {
			field(off+p, b[p:p+1], "%sSTOP }", indent)
			return p + 1 - start
		}
		id := int16(binary.BigEndian.Uint16(b[p+1:]))
		spec := schemas[schema][id]
		name := spec.name
		if name == "" {
			name = "?"
		}
		hdr := b[p : p+3]
		p += 3
		vlen := valueLen(b, p, t)
		val := b[p : p+vlen]
		desc := fmt.Sprintf("%sfield %d %s: %s", indent, id, name, ttypeNames[t])
		switch t {
		case 11:
			l := int(binary.BigEndian.Uint32(val))
			field(off+p-3, append(append([]byte{}, hdr...), val[:4]...), "%s, len %d", desc, l)
			if l > 0 {
				payloadField(off+p+4, val[4:], "%s  %s", indent, quote(val[4:]))
			}
		case 12:
			field(off+p-3, hdr, "%s (%s) {", desc, spec.schema)
			readStruct(off, b, p, spec.schema, indent+"  ")
		case 8:
			v := int32(binary.BigEndian.Uint32(val))
			note := ""
			if schema == "AppException" && id == 2 {
				note = " " + appExceptionTypes[v]
			}
			field(off+p-3, append(append([]byte{}, hdr...), val...), "%s = %d%s", desc, v, note)
		case 2, 3:
			field(off+p-3, append(append([]byte{}, hdr...), val...), "%s = %d", desc, val[0])
		case 6:
			field(off+p-3, append(append([]byte{}, hdr...), val...), "%s = %d", desc, int16(binary.BigEndian.Uint16(val)))
		case 10:
			field(off+p-3, append(append([]byte{}, hdr...), val...), "%s = %d", desc, int64(binary.BigEndian.Uint64(val)))
		case 4:
			field(off+p-3, append(append([]byte{}, hdr...), val...), "%s = %g", desc, math.Float64frombits(binary.BigEndian.Uint64(val)))
		default:
			field(off+p-3, hdr, "%s (%d bytes)", desc, vlen)
			payloadField(off+p, val, "%s  value", indent)
		}
		p += vlen
	}
}

// valueLen is the encoded size of a value of type t at b[p:].
func valueLen(b []byte, p int, t byte) int {
	switch t {
	case 2, 3:
		return 1
	case 6:
		return 2
	case 8:
		return 4
	case 4, 10:
		return 8
	case 11:
		return 4 + int(binary.BigEndian.Uint32(b[p:]))
	case 12:
		q := p
		for {
			ft := b[q]
			if ft == 0 {
				return q + 1 - p
			}
			q += 3
			q += valueLen(b, q, ft)
		}
	case 13:
		kt, vt := b[p], b[p+1]
		n := int(binary.BigEndian.Uint32(b[p+2:]))
		q := p + 6
		for i := 0; i < n; i++ {
			q += valueLen(b, q, kt)
			q += valueLen(b, q, vt)
		}
		return q - p
	case 14, 15:
		et := b[p]
		n := int(binary.BigEndian.Uint32(b[p+1:]))
		q := p + 5
		for i := 0; i < n; i++ {
			q += valueLen(b, q, et)
		}
		return q - p
	}
	panic(fmt.Sprintf("unknown Thrift type %d", t))
}
