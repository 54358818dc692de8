//go:build !linux

package durable

func syncFiles(paths []string) error { return fsyncEach(paths) }
