// kitex-wiretap: a TCP proxy that records what a Kitex client and server say to each other,
// as an annotated hex dump (the source of WIRE.md).
//
//	kitex-wiretap --target host:port [--listen 127.0.0.1:0] [--out FILE] [--hex N]
//
// Prints "listening on HOST:PORT" and forwards every connection accepted there to --target.
// Each direction of each connection is decoded as it arrives, frame by frame, and written
// to --out (stdout by default) in arrival order:
//   - TTHeader (PingPong, and TTHeader Streaming when FLAGS has 0x0002): every field of the
//     header named (gopkg protocol/ttheader encode.go), the payload as Thrift Binary;
//   - Framed / Buffered Thrift (a 4-byte length, or none, before a strict TMessage);
//   - HTTP/2 (the client preface): every frame, HEADERS decoded with HPACK, DATA as gRPC
//     length-prefixed messages with a Thrift Binary payload.
//
// --hex N: at most N bytes of a payload are shown as hex (default 96), the rest counted.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

var (
	outMu   sync.Mutex
	out     io.Writer = os.Stdout
	maxHex  int
	connSeq int
	start   = time.Now()
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "host:port to forward to")
	outPath := flag.String("out", "", "file for the dump (default stdout)")
	flag.IntVar(&maxHex, "hex", 96, "payload bytes shown as hex, at most")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "kitex-wiretap: --target is required")
		os.Exit(2)
	}
	if *outPath != "" {
		f, err := os.Create(*outPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kitex-wiretap:", err)
			os.Exit(1)
		}
		defer f.Close()
		out = f
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kitex-wiretap:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kitex-wiretap:", err)
			os.Exit(1)
		}
		go proxy(c, *target)
	}
}

// conn is one proxied connection: the protocol is chosen by the client's first bytes.
type conn struct {
	id    int
	proto string // "", "ttheader", "framed", "buffered", "h2", "raw"
	dirs  [2]*direction
	// HTTP/2: the method of each stream, from the :path of its request HEADERS.
	methods map[uint32]string
}

type direction struct {
	c    *conn
	name string // "C->S" or "S->C"
	buf  []byte
	off  int // stream offset of buf[0]
	n    int // frames decoded
	h2   *h2state
}

func proxy(client net.Conn, target string) {
	server, err := net.Dial("tcp", target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kitex-wiretap: dial:", err)
		client.Close()
		return
	}
	outMu.Lock()
	connSeq++
	c := &conn{id: connSeq, methods: map[uint32]string{}}
	c.dirs[0] = &direction{c: c, name: "C->S"}
	c.dirs[1] = &direction{c: c, name: "S->C"}
	logf("\n=== conn %d open  %s -> %s  (t=%s)\n", c.id, client.RemoteAddr(), target, since())
	outMu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go pipe(&wg, client, server, c.dirs[0])
	go pipe(&wg, server, client, c.dirs[1])
	wg.Wait()
	outMu.Lock()
	for _, d := range c.dirs {
		if len(d.buf) > 0 {
			logf("%s conn %d: %d undecoded bytes at offset %d\n", d.name, c.id, len(d.buf), d.off)
			hexLines("  ", d.off, d.buf, maxHex)
		}
	}
	logf("=== conn %d closed (t=%s)\n", c.id, since())
	outMu.Unlock()
}

func pipe(wg *sync.WaitGroup, from, to net.Conn, d *direction) {
	defer wg.Done()
	b := make([]byte, 64*1024)
	for {
		n, err := from.Read(b)
		if n > 0 {
			outMu.Lock()
			d.feed(b[:n])
			outMu.Unlock()
			if _, werr := to.Write(b[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			// Half-close towards the peer, then let the other direction finish.
			if tc, ok := to.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			if tc, ok := from.(*net.TCPConn); ok {
				_ = tc.CloseRead()
			}
			return
		}
	}
}

func since() string { return time.Since(start).Truncate(time.Microsecond).String() }

func logf(format string, a ...any) { fmt.Fprintf(out, format, a...) }

// feed appends bytes and decodes every complete frame (called with outMu held).
func (d *direction) feed(b []byte) {
	d.buf = append(d.buf, b...)
	c := d.c
	if c.proto == "" {
		if d.name != "C->S" {
			c.proto = "raw"
		} else {
			c.proto = detect(d.buf)
			if c.proto == "" {
				return // not enough bytes yet
			}
			logf("--- conn %d protocol: %s\n", c.id, c.proto)
		}
	}
	for {
		var n int
		switch c.proto {
		case "ttheader", "framed", "buffered":
			n = d.decodeThriftFrame()
		case "h2":
			n = d.decodeH2()
		default:
			n = len(d.buf)
			if n > 0 {
				logf("\n%s conn %d  %d raw bytes at offset %d\n", d.name, c.id, n, d.off)
				hexLines("  ", d.off, d.buf, maxHex)
			}
		}
		if n == 0 {
			return
		}
		d.buf = d.buf[n:]
		d.off += n
		if len(d.buf) == 0 {
			d.buf = nil
			return
		}
	}
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func detect(b []byte) string {
	if len(b) < 8 {
		return "" // not enough to tell yet
	}
	switch {
	case bytes.HasPrefix(b, []byte(h2Preface[:8])):
		return "h2"
	case binary.BigEndian.Uint16(b[4:]) == 0x1000:
		return "ttheader"
	case binary.BigEndian.Uint16(b[4:]) == 0x8001, binary.BigEndian.Uint16(b[4:]) == 0x9001:
		return "framed"
	case binary.BigEndian.Uint16(b[0:]) == 0x8001:
		return "buffered"
	}
	return "raw"
}

// ---- annotated hex ----

// field prints one field: its offset, up to 16 of its bytes per line, and what it is.
func field(off int, b []byte, desc string, a ...any) {
	text := fmt.Sprintf(desc, a...)
	for i := 0; i == 0 || i < len(b); i += 16 {
		j := min(i+16, len(b))
		h := hexOf(b[i:j])
		if i == 0 {
			logf("  %06x  %-48s %s\n", off+i, h, text)
		} else {
			logf("  %06x  %-48s\n", off+i, h)
		}
	}
}

// payloadField is field for a byte string that may be long: at most maxHex bytes shown.
func payloadField(off int, b []byte, desc string, a ...any) {
	shown := b
	if len(shown) > maxHex {
		shown = shown[:maxHex]
	}
	field(off, shown, desc, a...)
	if len(b) > len(shown) {
		logf("  %06x  ... %d more bytes\n", off+len(shown), len(b)-len(shown))
	}
}

func hexLines(indent string, off int, b []byte, limit int) {
	shown := b
	if limit >= 0 && len(shown) > limit {
		shown = shown[:limit]
	}
	for i := 0; i < len(shown); i += 16 {
		j := min(i+16, len(shown))
		logf("%s%06x  %s\n", indent, off+i, hexOf(shown[i:j]))
	}
	if len(b) > len(shown) {
		logf("%s... %d more bytes\n", indent, len(b)-len(shown))
	}
}

func hexOf(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x", x)
	}
	return sb.String()
}

func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}
