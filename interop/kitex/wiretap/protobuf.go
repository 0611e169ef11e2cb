package main

// Kitex's Protobuf payload (KitexProtobuf, codec/protobuf in Kitex): a TMessage's layout
// under the magic 0x9001 (ProtobufV1Magic), then the bare message in protobuf's wire
// format: the request on a CALL, the response on a REPLY, Kitex's ErrorProto
// {1: TypeID, 2: Message} on an EXCEPTION.

import (
	"encoding/binary"
	"fmt"
)

// The messages of echo.proto, and Kitex's ErrorProto (codec/protobuf/error.proto).
var pbSchemas = map[string]map[uint64]string{
	"Request":    {1: "payload", 2: "count"},
	"Response":   {1: "payload"},
	"ErrorProto": {1: "TypeID", 2: "Message"},
}

var pbWireTypes = map[uint64]string{0: "VARINT", 1: "I64", 2: "LEN", 5: "I32"}

// decodeKitexProtobuf prints b (at stream offset off), a KitexProtobuf message.
func decodeKitexProtobuf(off int, b []byte) {
	defer func() {
		if r := recover(); r != nil {
			logf("  (not Kitex's Protobuf past this point: %v)\n", r)
			payloadField(off, b, "raw")
		}
	}()
	typ := binary.BigEndian.Uint32(b) & 0xff
	field(off, b[0:4], "KitexProtobuf 0x9001, type %d %s", typ, tmessageTypes[typ])
	nl := int(binary.BigEndian.Uint32(b[4:]))
	field(off+4, b[4:8+nl], "name len %d %q", nl, b[8:8+nl])
	p := 8 + nl
	field(off+p, b[p:p+4], "seq id %d", int32(binary.BigEndian.Uint32(b[p:])))
	p += 4
	schema := map[uint32]string{1: "Request", 2: "Response", 3: "ErrorProto"}[typ]
	if schema == "" {
		schema = "?"
	}
	logf("  %06x  message %s (protobuf, %d bytes) {\n", off+p, schema, len(b)-p)
	for p < len(b) {
		key, n := uvarint(b[p:])
		id, wt := key>>3, key&7
		name := pbSchemas[schema][id]
		if name == "" {
			name = "?"
		}
		desc := fmt.Sprintf("    field %d %s: %s", id, name, pbWireTypes[wt])
		switch wt {
		case 0:
			v, m := uvarint(b[p+n:])
			// An int32 is read from the varint's low 32 bits; Kitex (prutal) writes a
			// negative one in 5 bytes, not the 10 of its int64 form.
			field(off+p, b[p:p+n+m], "%s = %d (int32 %d)", desc, v, int32(v))
			p += n + m
		case 1:
			field(off+p, b[p:p+n+8], "%s = %d", desc, binary.LittleEndian.Uint64(b[p+n:]))
			p += n + 8
		case 5:
			field(off+p, b[p:p+n+4], "%s = %d", desc, binary.LittleEndian.Uint32(b[p+n:]))
			p += n + 4
		case 2:
			l, m := uvarint(b[p+n:])
			field(off+p, b[p:p+n+m], "%s, len %d", desc, l)
			if l > 0 {
				v := b[p+n+m : p+n+m+int(l)]
				payloadField(off+p+n+m, v, "      %s", quote(v))
			}
			p += n + m + int(l)
		default:
			panic(fmt.Sprintf("wire type %d", wt))
		}
	}
	logf("  %06x  }\n", off+p)
}

// uvarint reads a protobuf varint: its value and length; it panics on a cut one (the
// caller's recover prints the rest raw).
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		panic("a varint cut short")
	}
	return v, n
}
