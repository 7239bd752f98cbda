package server

import (
	"strings"
	"testing"
)

func TestCheckPlaintext(t *testing.T) {
	for _, c := range []struct {
		listen   string
		tls      bool
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:8080", false, false, true},
		{"127.8.9.10:8080", false, false, true},
		{"[::1]:8080", false, false, true},
		{"localhost:8080", false, false, true},
		{"0.0.0.0:8080", false, false, false},
		{":8080", false, false, false},
		{"[::]:8080", false, false, false},
		{"10.1.2.3:8080", false, false, false},
		{"0.0.0.0:8080", true, false, true},
		{"0.0.0.0:8080", false, true, true},
		{"not-an-address", false, false, false},
	} {
		files := TLSFiles{}
		if c.tls {
			files = TLSFiles{CertFile: "c.pem", KeyFile: "k.pem"}
		}
		err := CheckPlaintext(c.listen, files, c.insecure)
		if (err == nil) != c.ok {
			t.Errorf("CheckPlaintext(%q, tls=%v, insecure=%v) = %v; want ok=%v", c.listen, c.tls, c.insecure, err, c.ok)
		}
		if err != nil && c.listen != "not-an-address" {
			for _, fix := range []string{"--tls-cert", "--tls-key", "--insecure"} {
				if !strings.Contains(err.Error(), fix) {
					t.Errorf("refusal for %s does not say %s: %v", c.listen, fix, err)
				}
			}
		}
	}
}
