package config

import (
	"strings"
	"testing"
)

func TestJunkKeys(t *testing.T) {
	c := Default()
	if !c.Inbound.JunkFilter || c.Inbound.JunkThreshold != 0.9 {
		t.Fatalf("defaults: %+v", c.Inbound)
	}
	for _, tc := range []struct {
		name, toml string
		want       float64
		problem    string
	}{
		{name: "float", toml: "[inbound]\njunk_threshold = 0.95\njunk_filter = false\n", want: 0.95},
		{name: "integer", toml: "[inbound]\njunk_threshold = 1\n", problem: "junk_threshold: 1 is not between 0 and 1"},
		{name: "zero", toml: "[inbound]\njunk_threshold = 0.0\n", problem: "not between 0 and 1"},
		{name: "string", toml: "[inbound]\njunk_threshold = \"high\"\n", problem: "wrong type: got a string, want a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.toml), "p.toml")
			if err == nil {
				err = c.Validate()
			}
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("error %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil || c.Inbound.JunkThreshold != tc.want || c.Inbound.JunkFilter {
				t.Fatalf("%+v, %v", c.Inbound, err)
			}
		})
	}
	c = Default()
	if err := c.ApplyEnv([]string{"POSTHOUSE_INBOUND_JUNK_THRESHOLD=0.8", "POSTHOUSE_INBOUND_JUNK_FILTER=false"}); err != nil {
		t.Fatal(err)
	}
	if c.Inbound.JunkThreshold != 0.8 || c.Inbound.JunkFilter {
		t.Fatalf("from the environment: %+v", c.Inbound)
	}
	if err := c.ApplyEnv([]string{"POSTHOUSE_INBOUND_JUNK_THRESHOLD=lots"}); err == nil {
		t.Fatal("a non-number from the environment was accepted")
	}
}
