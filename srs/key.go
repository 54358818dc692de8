package srs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/posthouse/posthouse/internal/durable"
)

// keyLen is the size of a key LoadKey makes.
const keyLen = 32

// LoadKey returns the secret kept in path (hex, one line), first making
// one (32 random bytes; the file mode 0600, written durably) when the file
// does not exist. Two processes starting at once agree on one key: the
// file is created exclusively, and the loser reads the winner's.
func LoadKey(path string) ([]byte, error) {
	if k, err := readKey(path); !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k := make([]byte, keyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".srs-key-*")
	if err != nil {
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	_, err = tmp.WriteString(hex.EncodeToString(k) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	// A hard link fails if path exists: whoever linked first made the key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	return k, nil
}

// ReadKey returns the secret kept in path; an error wrapping
// fs.ErrNotExist when there is no such file.
func ReadKey(path string) ([]byte, error) { return readKey(path) }

func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("srs: key: %w", err)
	}
	if len(b) > 1024 {
		return nil, fmt.Errorf("srs: key file %s: too long", path)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < MinKeyLen {
		return nil, fmt.Errorf("srs: key file %s: want at least %d bytes in hex", path, MinKeyLen)
	}
	return k, nil
}
