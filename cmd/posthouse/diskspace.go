package main

import (
	"log/slog"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/diskspace"
)

// spaceReserve is [limits] min_free_space as package diskspace takes it.
// Validate has already checked the syntax.
func spaceReserve(cfg *config.Config) diskspace.Reserve {
	size, pct, err := config.ParseFreeSpace(cfg.Limits.MinFreeSpace)
	if err != nil {
		return diskspace.DefaultReserve
	}
	return diskspace.Reserve{Bytes: int64(size), Percent: pct}
}

// newSpaceMonitor watches data_dir's free space for every listener: SMTP
// and IMAP APPEND refuse new mail below the reserve.
func newSpaceMonitor(cfg *config.Config, log *slog.Logger) *diskspace.Monitor {
	m := diskspace.New(diskspace.Options{Dir: cfg.DataDir, Reserve: spaceReserve(cfg), Logger: log})
	st := m.Status()
	log.Info("disk space", "dir", cfg.DataDir, "free", st.Free, "reserve", st.Reserve, "low", st.Low)
	return m
}
