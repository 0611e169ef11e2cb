package main

// TTHeader, as github.com/cloudwego/gopkg@v0.2.0/protocol/ttheader/encode.go writes it
// (Kitex v0.16.3's PingPong codec, pkg/remote/codec/header_codec.go, and its TTHeader
// Streaming frames, pkg/remote/trans/ttstream/frame.go, both use it):
//
//	LENGTH u32 (bytes after this field) | MAGIC u16 0x1000 | FLAGS u16 | SEQ ID u32 |
//	HEADER SIZE u16 (in 4-byte words, from offset 14) | PROTOCOL ID u8 | NUM TRANSFORMS u8 |
//	TRANSFORM IDs u8... | INFO blocks... | zero padding to 4 bytes | PAYLOAD
//
// Also Framed (LENGTH u32 then a strict TMessage) and Buffered (a bare strict TMessage).

import (
	"encoding/binary"
	"fmt"
)

// Integer keys of the INFO_INTKEYVALUE block (gopkg protocol/ttheader/metakey.go).
var intKeyNames = []string{
	"MeshVersion", "TransportType", "LogID", "FromService", "FromCluster", "FromIDC",
	"ToService", "ToCluster", "ToIDC", "ToMethod", "Env", "DestAddress", "RPCTimeout",
	"ReadTimeout", "RingHashKey", "DDPTag", "WithMeshHeader", "ConnectTimeout",
	"SpanContext", "ShortConnection", "FromMethod", "StressTag", "MsgType",
	"HTTPContentType", "RawRingHashKey", "LBType", "ClusterShardID", "FrameType",
}

// Frame types of TTHeader Streaming (the value of int key 27, FrameType, as a string).
var frameTypeNames = map[string]string{"1": "META", "2": "HEADER", "3": "DATA", "4": "TRAILER", "5": "RST"}

var protocolIDNames = map[byte]string{
	0x00: "ThriftBinary (payload: a TMessage; Kitex writes it for KitexProtobuf too)",
	0x02: "ThriftCompact",
	0x03: "ThriftCompactV2",
	0x04: "KitexProtobuf",
	0x10: "ThriftStruct (TTHeader Streaming: a bare Thrift Binary struct, no TMessage)",
	0x11: "ProtobufStruct (TTHeader Streaming)",
}

func flagNames(f uint16) string {
	var s []string
	for _, x := range []struct {
		bit  uint16
		name string
	}{{0x01, "SUPPORT_OUT_OF_ORDER"}, {0x02, "STREAMING"}, {0x08, "DUPLEX_REVERSE"}, {0x10, "SASL"}} {
		if f&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprint(s)
}

// decodeThriftFrame decodes one frame of d.buf; 0 if it is not complete yet.
func (d *direction) decodeThriftFrame() int {
	b := d.buf
	switch d.c.proto {
	case "buffered":
		// No length: decode as one message, whatever has arrived.
		if len(b) < 4 {
			return 0
		}
		d.n++
		logf("\n%s conn %d  #%d  Buffered Thrift Binary, %d bytes so far (t=%s)\n", d.name, d.c.id, d.n, len(b), since())
		decodeThrift(d.off, b, d.schema(false))
		return len(b)
	case "framed":
		if len(b) < 4 {
			return 0
		}
		n := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+n {
			return 0
		}
		d.n++
		logf("\n%s conn %d  #%d  Framed Thrift Binary, %d bytes (t=%s)\n", d.name, d.c.id, d.n, 4+n, since())
		field(0, b[:4], "FRAME LENGTH %d", n)
		decodeThrift(4, b[4:4+n], d.schema(false))
		return 4 + n
	}
	if len(b) < 14 {
		return 0
	}
	length := int(binary.BigEndian.Uint32(b))
	if len(b) < 4+length {
		return 0
	}
	fr := b[:4+length]
	magic := binary.BigEndian.Uint16(fr[4:])
	flags := binary.BigEndian.Uint16(fr[6:])
	seq := binary.BigEndian.Uint32(fr[8:])
	hsize := int(binary.BigEndian.Uint16(fr[12:]))
	streaming := flags&0x02 != 0
	d.n++

	// Collect the info first, to title the frame with its type.
	intInfo, strInfo := map[uint16]string{}, map[string]string{}
	hend := 14 + hsize*4
	if hend > len(fr) {
		hend = len(fr)
	}
	parseInfo(fr, hend, intInfo, strInfo)
	title := "TTHeader (PingPong)"
	if streaming {
		ft := intInfo[27]
		title = fmt.Sprintf("TTHeader Streaming %s frame, stream id %d", frameTypeNames[ft], seq)
	}
	logf("\n%s conn %d  #%d  %s, %d bytes (t=%s)\n", d.name, d.c.id, d.n, title, len(fr), since())
	field(0, fr[0:4], "LENGTH %d (bytes after this field)", length)
	field(4, fr[4:6], "MAGIC 0x%04x (TTHeaderMagic 0x10000000 >> 16)", magic)
	field(6, fr[6:8], "FLAGS 0x%04x %s", flags, flagNames(flags))
	if streaming {
		field(8, fr[8:12], "SEQ ID = STREAM ID %d", seq)
	} else {
		field(8, fr[8:12], "SEQ ID %d", seq)
	}
	field(12, fr[12:14], "HEADER SIZE %d words = %d bytes (offset 14 to %d)", hsize, hsize*4, 14+hsize*4)
	if len(fr) < 16 {
		return len(fr)
	}
	pid := fr[14]
	field(14, fr[14:15], "PROTOCOL ID 0x%02x %s", pid, protocolIDNames[pid])
	nt := int(fr[15])
	field(15, fr[15:16], "NUM TRANSFORMS %d", nt)
	p := 16
	for i := 0; i < nt && p < hend; i++ {
		field(p, fr[p:p+1], "TRANSFORM ID %d", fr[p])
		p++
	}
	for p < hend {
		id := fr[p]
		switch id {
		case 0x00:
			field(p, fr[p:hend], "PADDING (%d zero bytes, to a multiple of 4)", hend-p)
			p = hend
		case 0x01:
			cnt := int(binary.BigEndian.Uint16(fr[p+1:]))
			field(p, fr[p:p+3], "INFO_KEYVALUE (0x01): %d string pairs", cnt)
			p += 3
			for i := 0; i < cnt; i++ {
				kl := int(binary.BigEndian.Uint16(fr[p:]))
				k := fr[p+2 : p+2+kl]
				field(p, fr[p:p+2+kl], "  key   len %d %q", kl, k)
				p += 2 + kl
				vl := int(binary.BigEndian.Uint16(fr[p:]))
				v := fr[p+2 : p+2+vl]
				field(p, fr[p:p+2+vl], "  value len %d %q", vl, v)
				p += 2 + vl
			}
		case 0x10:
			cnt := int(binary.BigEndian.Uint16(fr[p+1:]))
			field(p, fr[p:p+3], "INFO_INTKEYVALUE (0x10): %d int-keyed pairs", cnt)
			p += 3
			for i := 0; i < cnt; i++ {
				k := binary.BigEndian.Uint16(fr[p:])
				vl := int(binary.BigEndian.Uint16(fr[p+2:]))
				v := string(fr[p+4 : p+4+vl])
				name := fmt.Sprintf("key %d", k)
				if int(k) < len(intKeyNames) {
					name = fmt.Sprintf("key %d %s", k, intKeyNames[k])
				}
				note := ""
				if k == 27 {
					note = " (" + frameTypeNames[v] + ")"
				}
				field(p, fr[p:p+4+vl], "  %s = %q%s", name, v, note)
				p += 4 + vl
			}
		case 0x11:
			l := int(binary.BigEndian.Uint16(fr[p+1:]))
			field(p, fr[p:p+3+l], "INFO_ACL_TOKEN (0x11) %q", fr[p+3:p+3+l])
			p += 3 + l
		default:
			field(p, fr[p:hend], "unknown INFO ID 0x%02x", id)
			p = hend
		}
	}
	payload := fr[hend:]
	if len(payload) == 0 {
		logf("  %06x  (no payload)\n", hend)
	} else {
		logf("  %06x  PAYLOAD %d bytes:\n", hend, len(payload))
		decodeThrift(hend, payload, d.schema(streaming))
	}
	return len(fr)
}

// parseInfo reads the INFO blocks of a TTHeader frame (without printing).
func parseInfo(fr []byte, hend int, intInfo map[uint16]string, strInfo map[string]string) {
	if len(fr) < 16 {
		return
	}
	p := 16 + int(fr[15])
	defer func() { _ = recover() }()
	for p < hend {
		switch fr[p] {
		case 0x01:
			cnt := int(binary.BigEndian.Uint16(fr[p+1:]))
			p += 3
			for i := 0; i < cnt; i++ {
				kl := int(binary.BigEndian.Uint16(fr[p:]))
				k := string(fr[p+2 : p+2+kl])
				p += 2 + kl
				vl := int(binary.BigEndian.Uint16(fr[p:]))
				strInfo[k] = string(fr[p+2 : p+2+vl])
				p += 2 + vl
			}
		case 0x10:
			cnt := int(binary.BigEndian.Uint16(fr[p+1:]))
			p += 3
			for i := 0; i < cnt; i++ {
				k := binary.BigEndian.Uint16(fr[p:])
				vl := int(binary.BigEndian.Uint16(fr[p+2:]))
				intInfo[k] = string(fr[p+4 : p+4+vl])
				p += 4 + vl
			}
		case 0x11:
			p += 3 + int(binary.BigEndian.Uint16(fr[p+1:]))
		default:
			return
		}
	}
}

// schema names the payload's struct when there is no TMessage to say: a client sends
// Requests, a server Responses.
func (d *direction) schema(bare bool) string {
	if !bare {
		return ""
	}
	if d.name == "C->S" {
		return "Request"
	}
	return "Response"
}
