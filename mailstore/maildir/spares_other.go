//go:build !linux

package maildir

import (
	"errors"
	"os"
)

const sparesSupported = false

func newSpare(dir string) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkSpare(f *os.File, path string) error { return errors.ErrUnsupported }

func spareUnsupported(err error) bool { return true }
