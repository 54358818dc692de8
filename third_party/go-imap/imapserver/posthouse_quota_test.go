package imapserver_test

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// quotaSession has one quota root "" over every mailbox, and refuses
// SETQUOTA.
type quotaSession struct {
	*imapmemserver.UserSession
	set map[imap.QuotaResourceType]int64
}

var testQuota = imap.QuotaData{Root: "", Resources: []imap.QuotaResource{
	{Type: imap.QuotaResourceStorage, Usage: 10, Limit: 512},
	{Type: imap.QuotaResourceMessage, Usage: 3, Limit: 100},
}}

func (s *quotaSession) GetQuota(root string) (*imap.QuotaData, error) {
	if root != "" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such quota root"}
	}
	d := testQuota
	return &d, nil
}

func (s *quotaSession) GetQuotaRoot(mailbox string) ([]imap.QuotaData, error) {
	return []imap.QuotaData{testQuota}, nil
}

func (s *quotaSession) SetQuota(root string, limits map[imap.QuotaResourceType]int64) error {
	s.set = limits
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "No"}
}

// TestQuotaCommands: GETQUOTA, GETQUOTAROOT and SETQUOTA reach a
// SessionQuota and their responses read back through imapclient
// (Posthouse patch).
func TestQuotaCommands(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	sess := &quotaSession{UserSession: imapmemserver.NewUserSession(user)}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return sess, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapQuota: {}, "QUOTA=RES-STORAGE": {}, "QUOTA=RES-MESSAGE": {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[imap.QuotaResourceType]imapclient.QuotaResourceData{
		imap.QuotaResourceStorage: {Usage: 10, Limit: 512},
		imap.QuotaResourceMessage: {Usage: 3, Limit: 100},
	}
	check := func(name string, d imapclient.QuotaData) {
		t.Helper()
		if d.Root != "" || len(d.Resources) != 2 || d.Resources[imap.QuotaResourceStorage] != want[imap.QuotaResourceStorage] || d.Resources[imap.QuotaResourceMessage] != want[imap.QuotaResourceMessage] {
			t.Errorf("%s: %+v, want root \"\" with %+v", name, d, want)
		}
	}
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 1 {
		t.Fatalf("GETQUOTAROOT INBOX = %+v, %v", roots, err)
	}
	check("GETQUOTAROOT", roots[0])
	q, err := c.GetQuota("").Wait()
	if err != nil || q == nil {
		t.Fatalf("GETQUOTA \"\" = %+v, %v", q, err)
	}
	check("GETQUOTA", *q)
	if _, err := c.GetQuota("other").Wait(); err == nil {
		t.Errorf("GETQUOTA of an unknown root succeeded")
	}
	err = c.SetQuota("", map[imap.QuotaResourceType]int64{imap.QuotaResourceStorage: 1}).Wait()
	if err == nil || sess.set[imap.QuotaResourceStorage] != 1 {
		t.Errorf("SETQUOTA = %v, session saw %v; want the session's NO after it saw STORAGE 1", err, sess.set)
	}
}
