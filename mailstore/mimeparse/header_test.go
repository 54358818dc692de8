package mimeparse

import (
	"bytes"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/mailstore/mimeparse/hostile"
)

// TestReadHeaderSameRule: smtpd's header and the store's envelope come from
// the same bytes of the header.
func TestReadHeaderSameRule(t *testing.T) {
	for _, tc := range []struct {
		name     string
		msg      []byte
		complete bool
	}{
		{"ordinary", []byte(handMessages[4]), true},
		{"no body", []byte("Subject: s\r\nDate: x\r\n"), true},
		{"malformed line", []byte("Subject: s\r\nnot a field\r\nDate: x\r\n\r\nbody"), true},
		{"header over the limit", hostile.Bytes(hostile.Cases()[3], 2<<20), false},
		{"limit cuts a field", []byte("Subject: s\r\nX-Long: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, complete, err := ReadHeader(bytes.NewReader(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if complete != tc.complete {
				t.Errorf("complete = %v", complete)
			}
			root, err := Parse(bytes.NewReader(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if root.HeaderCut == complete {
				t.Errorf("Parse says cut=%v, ReadHeader complete=%v", root.HeaderCut, complete)
			}
			if got, want := h.Get("Subject"), root.Envelope.Subject; got != want {
				t.Errorf("Subject %q, the store's envelope has %q", got, want)
			}
			if h.Has("X-Long") {
				t.Error("a field cut by the limit was kept")
			}
		})
	}
}
