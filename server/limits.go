package server

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"

	"connectrpc.com/connect"
)

// DefaultMaxRequestBytes is Options.MaxRequestBytes's default. The largest request ferry
// expects is a region move's spec, a few KiB; 4 MiB leaves room for any real spec while
// bounding what one request can make the server hold.
const DefaultMaxRequestBytes = 4 << 20

// requestOverheadBytes is what a body may carry beyond the message itself: the gRPC and
// Connect envelope prefixes and gzip's framing of an incompressible message.
const requestOverheadBytes = 64 << 10

// maxRequestBytes is the limit in force.
func (o Options) maxRequestBytes() int64 {
	if o.MaxRequestBytes > 0 {
		return o.MaxRequestBytes
	}
	return DefaultMaxRequestBytes
}

// limitBody caps the raw (possibly compressed) request body. connect-go reads and
// decompresses a unary body before any interceptor runs, so the limit cannot wait for
// authentication: without it a caller with no token could make the server read and hold
// any amount. Reading past the cap fails the read, which connect answers ResourceExhausted,
// and net/http closes the connection instead of draining the rest.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			// Refused from the declared length alone, before a byte of the body is read.
			r.Body = http.MaxBytesReader(w, r.Body, 0)
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}

// limitOptions are the handler options that bound a message after decompression.
// connect's WithReadMaxBytes caps the decompressed size, but once over the cap it still
// decompresses the rest of the body to report the full size: a 4 MiB gzip body of zeros
// is 4 GiB of inflate work. The capped gzip decompressor below stops at the cap instead.
func limitOptions(max int64) []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(int(max)),
		connect.WithCompression("gzip",
			func() connect.Decompressor { return &cappedGzip{max: max + 1} },
			func() connect.Compressor { return gzip.NewWriter(io.Discard) },
		),
	}
}

// errDecompressedTooLarge is what a capped decompressor returns past its cap; connect
// reports it as ResourceExhausted ("message is larger than configured max").
var errDecompressedTooLarge = errors.New("decompressed message exceeds the server's request limit (--max-request-bytes)")

// cappedGzip is a gzip reader that yields at most max bytes, then fails. connect reads
// max (its limit + 1) bytes to learn a message is too large, so the cap is never hit by a
// message within the limit.
type cappedGzip struct {
	gz   gzip.Reader
	max  int64
	read int64
}

func (c *cappedGzip) Read(p []byte) (int, error) {
	if c.read >= c.max {
		return 0, errDecompressedTooLarge
	}
	if rest := c.max - c.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.gz.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *cappedGzip) Reset(r io.Reader) error {
	c.read = 0
	return c.gz.Reset(r)
}

func (c *cappedGzip) Close() error { return c.gz.Close() }
