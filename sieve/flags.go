package sieve

import "strings"

// Flags (RFC 5232): a variable holds them space-separated; names are
// compared without regard to case and kept once.

func validFlag(f string) bool {
	if f == "" || len(f) > 200 {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"]`, c) >= 0 || c == '\\' && i > 0 {
			return false
		}
	}
	return true
}

// splitFlags lists the valid flags of a flag string, each once. Invalid
// ones are dropped (RFC 5232 §3: an implementation may ignore them).
func splitFlags(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if validFlag(f) && !hasFlag(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func hasFlag(list []string, f string) bool {
	for _, g := range list {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

func unionFlags(a, b []string) []string {
	for _, f := range b {
		if !hasFlag(a, f) {
			a = append(a, f)
		}
	}
	return a
}

// flagOp is setflag, addflag or removeflag (RFC 5232 §4–§6).
func flagOp(op, cur string, args []string) string {
	var add []string
	for _, a := range args {
		add = append(add, splitFlags(a)...)
	}
	switch op {
	case "setflag":
		return strings.Join(unionFlags(nil, add), " ")
	case "addflag":
		return strings.Join(unionFlags(splitFlags(cur), add), " ")
	}
	var keep []string
	for _, f := range splitFlags(cur) {
		if !hasFlag(add, f) {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}
