package imapserver

import (
	"bufio"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// TestSearchReturnOptions: RETURN (PARTIAL …) ranges are read, ordered and
// bounded; UPDATE and CONTEXT are read (Posthouse patch, RFC 9394, 5267).
func TestSearchReturnOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		partial *imap.SearchPartialRange
		update  bool
		bad     bool
	}{
		{name: "partial", in: " (PARTIAL 1:5)", partial: &imap.SearchPartialRange{Start: 1, Stop: 5}},
		{name: "partial reversed", in: " (PARTIAL 4:2)", partial: &imap.SearchPartialRange{Start: 2, Stop: 4}},
		{name: "partial negative", in: " (PARTIAL -1:-100)", partial: &imap.SearchPartialRange{Start: -1, Stop: -100}},
		{name: "partial negative reversed", in: " (PARTIAL -5:-2)", partial: &imap.SearchPartialRange{Start: -2, Stop: -5}},
		{name: "partial max", in: " (partial 1:2147483647)", partial: &imap.SearchPartialRange{Start: 1, Stop: 2147483647}},
		{name: "update context", in: " (UPDATE CONTEXT COUNT)", update: true},
		{name: "partial one number", in: " (PARTIAL 1)", bad: true},
		{name: "partial star", in: " (PARTIAL 1:*)", bad: true},
		{name: "partial star first", in: " (PARTIAL *:1)", bad: true},
		{name: "partial zero", in: " (PARTIAL 0:5)", bad: true},
		{name: "partial mixed signs", in: " (PARTIAL -1:5)", bad: true},
		{name: "partial over 32 bits", in: " (PARTIAL 1:2147483648)", bad: true},
		{name: "partial leading zero", in: " (PARTIAL 01:5)", bad: true},
		{name: "partial no range", in: " (PARTIAL)", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := imapwire.NewDecoder(bufio.NewReader(strings.NewReader(tc.in+"\r\n")), imapwire.ConnSideServer)
			var opts imap.SearchOptions
			err := readSearchReturnOpts(dec, &opts)
			if tc.bad {
				if err == nil {
					t.Fatalf("%q: accepted: %+v", tc.in, opts)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", tc.in, err)
			}
			if (opts.ReturnPartial == nil) != (tc.partial == nil) ||
				(tc.partial != nil && *opts.ReturnPartial != *tc.partial) {
				t.Errorf("%q: partial %+v, want %+v", tc.in, opts.ReturnPartial, tc.partial)
			}
			if opts.ReturnUpdate != tc.update {
				t.Errorf("%q: update %v", tc.in, opts.ReturnUpdate)
			}
		})
	}
}
