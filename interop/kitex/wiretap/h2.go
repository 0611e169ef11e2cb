package main

// HTTP/2 (RFC 9113) frames, HEADERS decoded with HPACK (golang.org/x/net/http2/hpack; one
// decoder per direction, as each side has its own dynamic table), DATA reassembled per
// stream into gRPC length-prefixed messages (flag u8, length u32, message) whose message
// is decoded as Thrift Binary.

import (
	"encoding/binary"
	"fmt"

	"strings"

	"golang.org/x/net/http2/hpack"
)

type h2state struct {
	prefaceDone bool
	dec         *hpack.Decoder
	block       []byte // HEADERS + CONTINUATION fragments until END_HEADERS
	blockStream uint32
	data        map[uint32][]byte // gRPC bytes received per stream, not yet a whole message
	msgOff      map[uint32]int    // offset of data[stream][0] in the stream's gRPC body
}

var h2FrameTypes = []string{"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"}

var h2Settings = map[uint16]string{
	1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
	4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE",
}

var h2Errors = []string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
	"COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}

func h2ErrName(c uint32) string {
	if int(c) < len(h2Errors) {
		return h2Errors[c]
	}
	return fmt.Sprintf("0x%x", c)
}

func h2Flags(t byte, f byte) string {
	var s []string
	switch t {
	case 0:
		if f&0x1 != 0 {
			s = append(s, "END_STREAM")
		}
		if f&0x8 != 0 {
			s = append(s, "PADDED")
		}
	case 1:
		if f&0x1 != 0 {
			s = append(s, "END_STREAM")
		}
		if f&0x4 != 0 {
			s = append(s, "END_HEADERS")
		}
		if f&0x8 != 0 {
			s = append(s, "PADDED")
		}
		if f&0x20 != 0 {
			s = append(s, "PRIORITY")
		}
	case 4, 6:
		if f&0x1 != 0 {
			s = append(s, "ACK")
		}
	case 9:
		if f&0x4 != 0 {
			s = append(s, "END_HEADERS")
		}
	}
	return fmt.Sprint(s)
}

// decodeH2 decodes one frame (or the client preface) of d.buf; 0 if not complete.
func (d *direction) decodeH2() int {
	if d.h2 == nil {
		d.h2 = &h2state{dec: hpack.NewDecoder(4096, nil), data: map[uint32][]byte{}, msgOff: map[uint32]int{}}
		if d.name != "C->S" {
			d.h2.prefaceDone = true
		}
	}
	h := d.h2
	b := d.buf
	if !h.prefaceDone {
		if len(b) < len(h2Preface) {
			return 0
		}
		d.n++
		logf("\n%s conn %d  #%d  HTTP/2 client connection preface (t=%s)\n", d.name, d.c.id, d.n, since())
		field(d.off, b[:len(h2Preface)], "%q", h2Preface)
		h.prefaceDone = true
		return len(h2Preface)
	}
	if len(b) < 9 {
		return 0
	}
	length := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	if len(b) < 9+length {
		return 0
	}
	t, flags := b[3], b[4]
	sid := binary.BigEndian.Uint32(b[5:]) & 0x7fffffff
	pl := b[9 : 9+length]
	tname := fmt.Sprintf("type 0x%x", t)
	if int(t) < len(h2FrameTypes) {
		tname = h2FrameTypes[t]
	}
	d.n++
	logf("\n%s conn %d  #%d  HTTP/2 %s, stream %d, %d bytes payload (t=%s)\n", d.name, d.c.id, d.n, tname, sid, length, since())
	off := d.off
	field(off, b[0:3], "LENGTH %d", length)
	field(off+3, b[3:4], "TYPE %d %s", t, tname)
	field(off+4, b[4:5], "FLAGS 0x%02x %s", flags, h2Flags(t, flags))
	field(off+5, b[5:9], "STREAM ID %d", sid)
	off += 9
	switch t {
	case 0: // DATA
		body := pl
		if flags&0x8 != 0 {
			pad := int(body[0])
			body = body[1 : len(body)-pad]
		}
		d.grpcData(sid, body, off)
	case 1, 9: // HEADERS, CONTINUATION
		frag := pl
		if t == 1 {
			if flags&0x8 != 0 {
				pad := int(frag[0])
				frag = frag[1 : len(frag)-pad]
			}
			if flags&0x20 != 0 {
				frag = frag[5:]
			}
			h.block = nil
			h.blockStream = sid
		}
		payloadField(off, frag, "HPACK header block fragment")
		h.block = append(h.block, frag...)
		if flags&0x4 != 0 {
			hf, err := h.dec.DecodeFull(h.block)
			if err != nil {
				logf("  HPACK error: %v\n", err)
			}
			for _, f := range hf {
				logf("            %s: %s\n", f.Name, f.Value)
				if f.Name == ":path" {
					d.c.methods[h.blockStream] = f.Value[strings.LastIndexByte(f.Value, '/')+1:]
				}
			}
			h.block = nil
		}
	case 3: // RST_STREAM
		c := binary.BigEndian.Uint32(pl)
		field(off, pl, "ERROR CODE %d %s", c, h2ErrName(c))
	case 4: // SETTINGS
		for i := 0; i+6 <= len(pl); i += 6 {
			id := binary.BigEndian.Uint16(pl[i:])
			v := binary.BigEndian.Uint32(pl[i+2:])
			field(off+i, pl[i:i+6], "%s (0x%x) = %d", h2Settings[id], id, v)
		}
	case 6: // PING
		field(off, pl, "opaque data")
	case 7: // GOAWAY
		field(off, pl[0:4], "LAST STREAM ID %d", binary.BigEndian.Uint32(pl)&0x7fffffff)
		c := binary.BigEndian.Uint32(pl[4:])
		field(off+4, pl[4:8], "ERROR CODE %d %s", c, h2ErrName(c))
		if len(pl) > 8 {
			payloadField(off+8, pl[8:], "debug data %q", pl[8:])
		}
	case 8: // WINDOW_UPDATE
		field(off, pl, "WINDOW SIZE INCREMENT %d", binary.BigEndian.Uint32(pl)&0x7fffffff)
	default:
		payloadField(off, pl, "payload")
	}
	return 9 + length
}

// grpcData shows a DATA frame's bytes, then every gRPC message it completes.
func (d *direction) grpcData(sid uint32, body []byte, off int) {
	h := d.h2
	if len(body) == 0 {
		logf("  %06x  (empty)\n", off)
		return
	}
	buf := append(h.data[sid], body...)
	if len(h.data[sid]) == 0 && len(body) >= 5 {
		// The frame starts a message: show its prefix here.
		n := binary.BigEndian.Uint32(body[1:])
		field(off, body[0:5], "gRPC message: COMPRESSED %d, LENGTH %d", body[0], n)
		if len(body) > 5 {
			payloadField(off+5, body[5:], "message bytes (%d in this frame)", len(body)-5)
		}
	} else {
		payloadField(off, body, "DATA, %d bytes (a gRPC message continued)", len(body))
	}
	for len(buf) >= 5 {
		n := int(binary.BigEndian.Uint32(buf[1:]))
		if len(buf) < 5+n {
			break
		}
		logf("  gRPC message on stream %d, %d bytes, decoded:\n", sid, n)
		decodeThrift(0, buf[5:5+n], d.grpcSchema(sid))
		buf = buf[5+n:]
	}
	if len(buf) == 0 {
		delete(h.data, sid)
	} else {
		h.data[sid] = buf
	}
}

// grpcSchema: Kitex's gRPC+thrift sends a unary method's (PingPong's) arguments and result
// as the wrapper structs (TestServicePingPongArgs, ...Result) without a TMessage, and a
// streaming method's messages as bare Request and Response structs.
func (d *direction) grpcSchema(sid uint32) string {
	if d.c.methods[sid] == "PingPong" {
		if d.name == "C->S" {
			return "args"
		}
		return "result"
	}
	return d.schema(true)
}
