package imapd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse/hostile"
)

// hostileFetch is every FETCH item that reads a stored message's content.
var hostileFetch = &imap.FetchOptions{
	UID:           true,
	Envelope:      true,
	BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	RFC822Size:    true,
	BodySection: []*imap.FetchItemBodySection{
		{Peek: true},
		{Peek: true, Specifier: imap.PartSpecifierHeader},
		{Peek: true, Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 10, Size: 100}},
		{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject", "Content-Type"}},
		{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Received"}},
		{Peek: true, Part: []int{1}},
		{Peek: true, Part: []int{1}, Specifier: imap.PartSpecifierMIME},
		{Peek: true, Part: []int{1, 1}, Specifier: imap.PartSpecifierHeader},
		{Peek: true, Part: []int{1, 1}, Specifier: imap.PartSpecifierText},
		{Peek: true, Part: []int{2}, Partial: &imap.SectionPartial{Offset: 0, Size: 5}},
		{Peek: true, Part: []int{2000, 1}},
	},
}

var hostileBinary = &imap.FetchOptions{
	UID: true,
	BinarySection: []*imap.FetchItemBinarySection{
		{Peek: true},
		{Peek: true, Part: []int{1}},
		{Peek: true, Part: []int{1, 1}, Partial: &imap.SectionPartial{Offset: 1, Size: 10}},
	},
	BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{1}}, {Part: []int{2}}},
}

// fetchAll fetches uid with every content item through go-imap's client:
// the response must parse, the connection must survive, and BINARY may
// only fail with UNKNOWN-CTE.
func fetchAll(t *testing.T, c *imapclient.Client, uid imap.UID) {
	t.Helper()
	// The session shows new messages at its next command.
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), hostileFetch).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(msgs) != 1 || msgs[0].BodyStructure == nil || msgs[0].Envelope == nil {
		t.Fatalf("FETCH gave %d messages", len(msgs))
	}
	if got := msgs[0].FindBodySection(hostileFetch.BodySection[0]); int64(len(got)) != msgs[0].RFC822Size {
		t.Errorf("BODY[] has %d bytes, RFC822.SIZE says %d", len(got), msgs[0].RFC822Size)
	}
	_, err = c.Fetch(imap.UIDSetNum(uid), hostileBinary).Collect()
	var ie *imap.Error
	if err != nil && !(errors.As(err, &ie) && ie.Code == imap.ResponseCodeUnknownCTE) {
		t.Fatalf("FETCH BINARY: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after FETCH: %v", err)
	}
}

// TestFetchHostile stores every hostile case and fetches everything of it:
// no panic, no dropped connection, a structure go-imap's client parses.
func TestFetchHostile(t *testing.T) {
	ts := newTestServer(t)
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, hc := range hostile.Cases() {
		t.Run(hc.Name, func(t *testing.T) {
			res := ts.deliver(t, "alice@example.org", "INBOX", string(hostile.Bytes(hc, 256<<10)))
			fetchAll(t, c, res.UID)
		})
	}
}

// TestEmptyMultipart is the 30-byte message that used to make every
// BODYSTRUCTURE fetch of its mailbox panic.
func TestEmptyMultipart(t *testing.T) {
	ts := newTestServer(t)
	msg := "Content-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z--"
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	app := c.Append("INBOX", int64(len(msg)), nil)
	app.Write([]byte(msg))
	app.Close()
	data, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(data.UID), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	mp, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 1 || mp.Subtype != "mixed" {
		t.Fatalf("body structure %#v", msgs[0].BodyStructure)
	}
	if sp := mp.Children[0].(*imap.BodyStructureSinglePart); sp.Type != "text" || sp.Size != 0 {
		t.Errorf("the empty part is %+v", sp)
	}
	fetchAll(t, c, data.UID)
}

// TestAppendHeaderRule: the header limit is the same at APPEND as at
// delivery (the store parses both the same way): fields past
// mimeparse.MaxHeaderBytes are not in the envelope.
func TestAppendHeaderRule(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxAppendSize = 2 << 20 })
	msg := "From: a@example.org\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("v", 80)+"\r\n", 4000) +
		"Subject: past the limit\r\n\r\nbody\r\n"
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	app := c.Append("INBOX", int64(len(msg)), nil)
	app.Write([]byte(msg))
	app.Close()
	data, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	delivered := ts.deliver(t, "alice@example.org", "INBOX", msg)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSet{{Start: data.UID, Stop: delivered.UID}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%v, %d messages", err, len(msgs))
	}
	for _, m := range msgs {
		if m.Envelope.Subject != "" || len(m.Envelope.From) != 1 {
			t.Errorf("envelope %+v: want From but no Subject", m.Envelope)
		}
	}
}

// FuzzFetchMessage stores arbitrary messages in a real store and fetches
// every content item through imapd with go-imap's client.
func FuzzFetchMessage(f *testing.F) {
	f.Add([]byte(testMessage(1)))
	for _, hc := range hostile.Cases() {
		f.Add(hostile.Bytes(hc, 600))
	}
	ts, pl := fuzzServer(f)
	var c *imapclient.Client
	f.Fuzz(func(t *testing.T, msg []byte) {
		if c == nil {
			var err error
			if c, err = imapclient.DialInsecure(ts.addr, nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Login("alice@example.org", "alicepw").Wait(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
		}
		acct, err := ts.store.Open(context.Background(), "alice@example.org")
		if err != nil {
			t.Fatal(err)
		}
		res, err := acct.Deliver(context.Background(), bytes.NewReader(msg), mailstore.DeliverOptions{})
		acct.Close()
		if err != nil {
			t.Fatal(err)
		}
		fetchAll(t, c, res.UID)
		pl.check(t)
	})
}
