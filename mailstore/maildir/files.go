package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
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

// journalName is curName for a journaled delivery (journal.go), marked
// ",J": the file is named in cur/ before its bytes are on disk, so after a
// power loss one without a row may hold anything, and reconciliation
// removes it instead of indexing it.
func journalName(unique string, size int64) string {
	return fmt.Sprintf("%s,S=%d,J:2,", unique, size)
}

// isJournalName reports whether a file name (or a path ending in one) is a
// journalName.
func isJournalName(name string) bool {
	base, _, ok := strings.Cut(name[strings.LastIndexByte(name, '/')+1:], ":")
	return ok && strings.HasSuffix(base, ",J")
}
