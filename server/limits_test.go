package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/server"
)

// gzipBomb returns a gzip body that inflates to n MiB of zeros, built from one compressed
// MiB repeated as gzip members (a reader reads concatenated members as one stream), so
// building it costs about 1 KiB per MiB rather than n MiB of memory or deflate work.
func gzipBomb(t testing.TB, mib int) []byte {
	t.Helper()
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if _, err := zw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), mib)
}

// rssBytes is the process's resident set size from /proc (Linux), or the Go runtime's
// memory from the OS elsewhere.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				return kb << 10
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.Sys)
}

// peakRSS samples rssBytes until stop is closed and returns the highest value seen.
func peakRSS(stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		peak := rssBytes()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out <- max(peak, rssBytes())
				return
			case <-tick.C:
				peak = max(peak, rssBytes())
			}
		}
	}()
	return out
}

// connectCode reads the code from a Connect unary error body.
func connectCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var c connect.Code
	for _, f := range strings.Split(string(b), `"`) {
		if c.UnmarshalText([]byte(f)) == nil {
			return c.String()
		}
	}
	return "status " + resp.Status + ": " + string(b)
}

// TestGzipBombRefusedWithoutMemory posts a gzip body that inflates to 1 GiB to
// StartMigration with no token, over the Connect protocol and over gRPC: the answer is
// ResourceExhausted, and the process grows by well under 100 MiB. (Before the limits, a
// 512 MiB bomb grew the server from 200 MiB to 7.3 GB.) No Temporal is needed: the body
// is refused before any handler runs.
func TestGzipBombRefusedWithoutMemory(t *testing.T) {
	bomb := gzipBomb(t, 1024)
	api := httptest.NewUnstartedServer(server.Handler(nil, server.Options{Tokens: server.NewTokens()}))
	api.EnableHTTP2 = true
	api.StartTLS()
	defer api.Close()
	url := api.URL + ferryv1connect.MigrationServiceStartMigrationProcedure

	grpcBody := make([]byte, 5+len(bomb))
	grpcBody[0] = 1 // compressed
	binary.BigEndian.PutUint32(grpcBody[1:5], uint32(len(bomb)))
	copy(grpcBody[5:], bomb)

	cases := []struct {
		name    string
		body    []byte
		headers map[string]string
	}{
		{"connect", bomb, map[string]string{"Content-Type": "application/proto", "Content-Encoding": "gzip"}},
		{"grpc", grpcBody, map[string]string{"Content-Type": "application/grpc", "Grpc-Encoding": "gzip", "Te": "trailers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			before := rssBytes()
			stop := make(chan struct{})
			peak := peakRSS(stop)
			start := time.Now()
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(c.body))
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			resp, err := api.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if c.name == "grpc" {
				_, _ = io.Copy(io.Discard, resp.Body)
				n, _ := strconv.Atoi(resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status"))
				got = connect.Code(n).String()
				if n == 0 {
					got = "ok"
				}
			} else {
				got = connectCode(t, resp)
			}
			resp.Body.Close()
			took := time.Since(start)
			close(stop)
			grew := <-peak - before
			t.Logf("%s: %d KiB gzip inflating to 1 GiB: %s in %v; RSS %d MiB before, peak +%d MiB",
				c.name, len(bomb)>>10, got, took.Round(time.Millisecond), before>>20, grew>>20)
			if got != connect.CodeResourceExhausted.String() {
				t.Fatalf("answer %s; want resource_exhausted", got)
			}
			if grew > 100<<20 {
				t.Fatalf("RSS grew by %d MiB during the bomb; want under 100 MiB", grew>>20)
			}
			if took > 10*time.Second {
				t.Fatalf("refusing the bomb took %v: the server inflated it instead of stopping at the limit", took)
			}
		})
	}
}

// TestHugeBodyCutEarly streams a 1 GiB body: the server stops reading at its limit (plus
// what HTTP/2 flow control lets the client send ahead), it does not drain the rest.
func TestHugeBodyCutEarly(t *testing.T) {
	api := httptest.NewUnstartedServer(server.Handler(nil, server.Options{Tokens: server.NewTokens(), MaxRequestBytes: 1 << 20}))
	api.EnableHTTP2 = true
	api.StartTLS()
	defer api.Close()
	var sent atomic.Int64
	body := &countingReader{r: io.LimitReader(zeros{}, 1<<30), n: &sent}
	req, _ := http.NewRequest(http.MethodPost, api.URL+ferryv1connect.MigrationServiceStartMigrationProcedure, body)
	req.Header.Set("Content-Type", "application/proto")
	resp, err := api.Client().Do(req)
	if err == nil {
		code := connectCode(t, resp)
		resp.Body.Close()
		if code != connect.CodeResourceExhausted.String() {
			t.Fatalf("answer %s; want resource_exhausted", code)
		}
	}
	// An error is fine too: the server may reset the stream while the client still sends.
	t.Logf("client sent %d KiB of 1 GiB before the server stopped it (%v)", sent.Load()>>10, err)
	if sent.Load() > 32<<20 {
		t.Fatalf("the server read %d MiB of a body over its 1 MiB limit", sent.Load()>>20)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
