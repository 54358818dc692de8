package sievefilter

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
	"github.com/posthouse/posthouse/sieve"
)

// Bounds of a response's fields.
const (
	maxSubjectBytes    = 200
	maxReferencesBytes = 900
)

// respond sends a vacation response unless the run said not to, or one
// went to this sender with this handle within the period (claimed in
// the store, released again when the queue refuses the response).
func (f *Filter) respond(ctx context.Context, account string, vac *sieve.Vacation, msg *message, log *slog.Logger) {
	if vac.Skip != "" {
		log.Info("sieve: no vacation response", "why", vac.Skip)
		return
	}
	if f.opts.Queue == nil {
		log.Error("sieve: vacation response, but there is no queue")
		return
	}
	to := strings.ToLower(vac.To)
	ok, err := f.opts.Store.ClaimResponse(ctx, account, vac.Handle, to, vac.Period)
	if err != nil {
		log.Error("sieve: vacation tracking", "err", err)
		return
	}
	if !ok {
		log.Info("sieve: no vacation response", "why", "answered within the period")
		return
	}
	body := f.response(vac, msg, f.opts.Now())
	// RFC 5230 §5.1, RFC 3834 §3.3: the null reverse-path, so that no
	// bounce and no other automatic reply answers the response.
	id, err := f.opts.Queue.Enqueue(ctx, "", []string{vac.To}, strings.NewReader(body))
	if err != nil {
		log.Error("sieve: queueing the vacation response", "err", err)
		if err := f.opts.Store.ReleaseResponse(context.WithoutCancel(ctx), account, vac.Handle, to); err != nil {
			log.Error("sieve: vacation tracking", "err", err)
		}
		return
	}
	log.Info("sieve: vacation response queued", "queueid", id)
}

// response renders the vacation response (RFC 5230 §5, RFC 3834 §3):
// From the user (or :from), To the sender, the subject, In-Reply-To and
// References, Auto-Submitted: auto-replied; the reason as a text/plain
// body, or as the MIME entity it is with :mime.
func (f *Filter) response(vac *sieve.Vacation, msg *message, now time.Time) string {
	var b strings.Builder
	field := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	field("From", formatAddress(vac.From))
	field("To", formatAddress(vac.To))
	field("Subject", encodeSubject(vac.Subject))
	field("Date", now.Format(time.RFC1123Z))
	field("Message-ID", "<"+randomID()+".vacation@"+f.opts.Hostname+">")
	if id := msg.messageID; id != "" && len(id) < maxReferencesBytes {
		field("In-Reply-To", id)
		field("References", references(msg.references, id))
	}
	field("Auto-Submitted", "auto-replied (vacation)")
	field("MIME-Version", "1.0")
	if vac.MIME {
		if entity, ok := mimeEntity(vac.Reason); ok {
			b.WriteString(entity)
			return b.String()
		}
	}
	text := crlf(vac.Reason)
	if isPlain(text) {
		field("Content-Type", "text/plain; charset=us-ascii")
		field("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(text)
	} else {
		field("Content-Type", "text/plain; charset=utf-8")
		field("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(text))
		w.Close()
	}
	if !strings.HasSuffix(b.String(), "\r\n") {
		b.WriteString("\r\n")
	}
	return b.String()
}

// formatAddress writes an address (bare, or with a display name) as a
// header field value, the name encoded when it is not ASCII.
func formatAddress(s string) string {
	list := mimeparse.ParseAddressList(s)
	if len(list) != 1 || list[0].Host == "" {
		// Not from a run (sieve checks :from): keep it to one line.
		return "<" + strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, s) + ">"
	}
	a := mail.Address{Name: list[0].Name, Address: list[0].Mailbox + "@" + list[0].Host}
	return a.String()
}

// encodeSubject makes one line, bounded, RFC 2047-encoded when not ASCII.
func encodeSubject(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxSubjectBytes {
		s = s[:maxSubjectBytes]
		for len(s) > 0 && s[len(s)-1]&0xc0 == 0x80 {
			s = s[:len(s)-1]
		}
		if len(s) > 0 && s[len(s)-1] >= 0xc0 {
			s = s[:len(s)-1]
		}
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// references is the original's References with its Message-ID after them
// (RFC 5322 §3.6.4), the oldest ids dropped past the bound.
func references(refs, id string) string {
	ids := append(strings.Fields(refs), id)
	for len(ids) > 1 && len(strings.Join(ids, " ")) > maxReferencesBytes {
		ids = ids[1:]
	}
	return strings.Join(ids, "\r\n ")
}

// mimeEntity reads a :mime reason (RFC 5230 §4.4: a MIME entity, its
// header fields and body) and returns it with CRLF line ends; ok is false
// when it has no Content-Type to stand on.
func mimeEntity(reason string) (string, bool) {
	text := crlf(strings.TrimLeft(reason, "\r\n"))
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(text)))
	if err != nil || !h.Has("Content-Type") {
		return "", false
	}
	if !strings.Contains(text, "\r\n\r\n") {
		text += "\r\n"
	}
	if !strings.HasSuffix(text, "\r\n") {
		text += "\r\n"
	}
	return text, true
}

// crlf gives text CRLF line ends.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// isPlain: ASCII with lines a server takes as they are.
func isPlain(s string) bool {
	for _, line := range strings.Split(s, "\r\n") {
		if len(line) > 998 {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
