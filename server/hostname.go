package server

import "os"

// Hostname is the name a listener greets with: name when set, else
// os.Hostname(), else "localhost".
func Hostname(name string) string {
	if name != "" {
		return name
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
