package main

import (
	"io"
	"log/slog"

	"github.com/posthouse/posthouse/config"
)

// newLogger builds the process's slog handler from [log]. Packages get
// child loggers through their Options; none keeps a global one.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch c.LevelName() {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
