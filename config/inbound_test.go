package config

import (
	"strings"
	"testing"
	"time"
)

func TestMilterTables(t *testing.T) {
	doc := `hostname = "mx.example.org"

[[inbound.milter]]
address = "inet:127.0.0.1:11332"

[[inbound.milter]]
address = "unix:/run/rspamd/milter.sock"
timeout = "5s"
on_error = "accept"
submission = true
`
	c, err := Parse([]byte(doc), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Milter{
		{Address: "inet:127.0.0.1:11332", Timeout: Duration{DefaultMilterTimeout}, OnError: "tempfail"},
		{Address: "unix:/run/rspamd/milter.sock", Timeout: Duration{5 * time.Second}, OnError: "accept", Submission: true},
	}
	if len(c.Inbound.Milter) != 2 || c.Inbound.Milter[0] != want[0] || c.Inbound.Milter[1] != want[1] {
		t.Errorf("milters = %+v, want %+v", c.Inbound.Milter, want)
	}

	// Marshal writes them back as tables.
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b, "marshal")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(back.Inbound.Milter) != 2 || back.Inbound.Milter[1] != want[1] {
		t.Errorf("round trip: %+v\n%s", back.Inbound.Milter, b)
	}
}

func TestMilterProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		line      int
		key       string
		contains  string
	}{
		{"bad address", "[[inbound.milter]]\naddress = \"127.0.0.1:11332\"\n", 2, "inbound.milter[1].address", "inet:host:port"},
		{"no address", "[[inbound.milter]]\ntimeout = \"5s\"\n", 0, "inbound.milter[1].address", "neither"},
		{"duplicate", "[[inbound.milter]]\naddress = \"inet:[::1]:1\"\n[[inbound.milter]]\naddress = \"inet:[::1]:1\"\n", 4, "inbound.milter[2].address", "also milter 1"},
		{"bad on_error", "[[inbound.milter]]\naddress = \"inet:h:1\"\non_error = \"reject\"\n", 3, "inbound.milter[1].on_error", "tempfail"},
		{"short timeout", "[[inbound.milter]]\naddress = \"inet:h:1\"\ntimeout = \"10ms\"\n", 3, "inbound.milter[1].timeout", "between"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), "f.toml")
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			p := problems(t, err)[0]
			if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Msg+" "+p.Hint, tc.contains) {
				t.Errorf("problem = %+v, want line %d key %q containing %q", p, tc.line, tc.key, tc.contains)
			}
		})
	}

	for _, doc := range []string{
		"[[inbound.milter]]\nadress = \"inet:h:1\"\n",
		"[inbound]\nmilter = [{address = \"inet:h:1\"}]\n",
		"[[inbound.milter]]\naddress = 5\n",
		"[[inbound.frobs]]\n",
	} {
		if _, err := Parse([]byte(doc), "f.toml"); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}
