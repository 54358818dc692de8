package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var (
	deliveryCounter atomic.Uint64
	hostPart        = maildirHost()
	pid             = os.Getpid()
)

// maildirHost is the host name as Maildir file names carry it: '/' and ':'
// are written \057 and \072, and anything unusual is dropped.
func maildirHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	var b strings.Builder
	for _, c := range []byte(h) {
		switch {
		case c == '/':
			b.WriteString(`\057`)
		case c == ':':
			b.WriteString(`\072`)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}

// uniqueName returns a Maildir-style unique file name,
// <seconds>.M<micros>P<pid>Q<counter>R<random>.<host>: unique across
// processes and restarts on this host.
func uniqueName() string {
	now := time.Now()
	var rnd [4]byte
	rand.Read(rnd[:])
	return strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(pid) + "Q" + strconv.FormatUint(deliveryCounter.Add(1), 10) +
		"R" + hex.EncodeToString(rnd[:]) + "." + hostPart
}

// curName is the name of a message file in cur/: the unique part, the size
// (",S=", which Maildir readers use to skip a stat) and an empty info part.
// Flags live in the index, so the name never changes.
func curName(unique string, size int64) string {
	return fmt.Sprintf("%s,S=%d:2,", unique, size)
}

// syncDir fsyncs a directory so a rename or unlink in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// atomicTmpPrefix starts the name of writeFileAtomic's temporary file;
// reconciliation removes old ones left by a crash.
const atomicTmpPrefix = ".tmp-"

// writeFileAtomic replaces path with data, durably.
func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), atomicTmpPrefix+uniqueName())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}
