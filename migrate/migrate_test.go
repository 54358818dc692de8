package migrate

import (
	"errors"
	"testing"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in       string
		addr     string
		implicit bool
		bad      bool
	}{
		{in: "imaps://mail.example.com", addr: "mail.example.com:993", implicit: true},
		{in: "imap://mail.example.com", addr: "mail.example.com:143"},
		{in: "IMAPS://127.0.0.1:1993/", addr: "127.0.0.1:1993", implicit: true},
		{in: "imap://[::1]:1143", addr: "[::1]:1143"},
		{in: "http://mail.example.com", bad: true},
		{in: "imaps://user@mail.example.com", bad: true},
		{in: "imaps://mail.example.com/INBOX", bad: true},
		{in: "mail.example.com", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, err := parseSource(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadSource) {
					t.Fatalf("got %+v, %v; want ErrBadSource", s, err)
				}
				return
			}
			if err != nil || s.addr != tc.addr || s.implicit != tc.implicit {
				t.Fatalf("got %+v, %v", s, err)
			}
		})
	}
}

func TestLocalName(t *testing.T) {
	for _, tc := range []struct {
		remote, prefix string
		delim          rune
		want           string
	}{
		{"inbox", "", '.', "INBOX"},
		{"Work.Clients", "", '.', "Work/Clients"},
		{"INBOX.Sent", "INBOX.", '.', "Sent"},
		{"INBOX", "INBOX.", '.', "INBOX"},
		{"a/b.c", "", '.', "a_b/c"},
		{"Lists/Go", "", '/', "Lists/Go"},
		{"Flat", "", 0, "Flat"},
	} {
		if got := localName(tc.remote, tc.prefix, tc.delim); got != tc.want {
			t.Errorf("localName(%q, %q, %q) = %q, want %q", tc.remote, tc.prefix, tc.delim, got, tc.want)
		}
	}
}
