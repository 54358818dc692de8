package durable

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSyncFiles syncs files in two directories, skipping one removed
// meanwhile and a directory that is gone.
func TestSyncFiles(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, sub := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, sub, "msg")
		if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	paths = append(paths, filepath.Join(dir, "a", "removed"), filepath.Join(dir, "gone", "msg"))
	if err := SyncFiles(paths); err != nil {
		t.Fatalf("SyncFiles: %v", err)
	}
	if err := fsyncEach(paths); err != nil {
		t.Fatalf("fsyncEach: %v", err)
	}
}
