package storetest

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testEmailID covers MessageInfo.EmailID (RFC 8474 EMAILID): an objectid,
// distinct per message, kept by Copy, Move and a restart, never given to
// another message after an expunge, and found by Search.
func testEmailID(t *testing.T, b Backend) {
	opts := mailstore.FetchOptions{EmailID: true}
	idOf := func(t *testing.T, acc mailstore.Account, mb int64, uid imap.UID) string {
		t.Helper()
		id := fetchOne(t, acc, mb, uid, opts).EmailID
		if !isObjectID(id) {
			t.Fatalf("EmailID of UID %d = %q, not an RFC 8474 objectid", uid, id)
		}
		return id
	}

	t.Run("CopyMoveExpunge", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		a := deliver(t, acc, message("a", "one"))
		bb := deliver(t, acc, message("b", "two"))
		idA, idB := idOf(t, acc, in.ID, a.UID), idOf(t, acc, in.ID, bb.UID)
		if idA == idB {
			t.Fatalf("two messages share EmailID %q", idA)
		}
		// Fetch without the option leaves it out.
		if got := fetchOne(t, acc, in.ID, a.UID, mailstore.FetchOptions{}).EmailID; got != "" {
			t.Errorf("EmailID %q without FetchOptions.EmailID", got)
		}
		archive := mailbox(t, acc, "Archive")
		cp, err := acc.Copy(t.Context(), in.ID, imap.UIDSetNum(a.UID), "Archive")
		if err != nil {
			t.Fatal(err)
		}
		if got := idOf(t, acc, archive.ID, cp.DestUIDs[0]); got != idA {
			t.Errorf("copy's EmailID %q, want the source's %q", got, idA)
		}
		mv, err := acc.Move(t.Context(), in.ID, imap.UIDSetNum(bb.UID), "Drafts")
		if err != nil {
			t.Fatal(err)
		}
		drafts := mailbox(t, acc, "Drafts")
		if got := idOf(t, acc, drafts.ID, mv.DestUIDs[0]); got != idB {
			t.Errorf("moved message's EmailID %q, want %q", got, idB)
		}
		// Search finds a message by EmailID, in each mailbox holding it;
		// an unknown or foreign-looking ID and any THREADID find nothing.
		for _, tc := range []struct {
			name string
			mb   int64
			c    imap.SearchCriteria
			want []imap.UID
		}{
			{"inbox", in.ID, imap.SearchCriteria{EmailID: []string{idA}}, []imap.UID{a.UID}},
			{"copy", archive.ID, imap.SearchCriteria{EmailID: []string{idA}}, cp.DestUIDs},
			{"other message", in.ID, imap.SearchCriteria{EmailID: []string{idB}}, nil},
			{"not", in.ID, imap.SearchCriteria{Not: []imap.SearchCriteria{{EmailID: []string{idA}}}}, nil},
			{"unknown", in.ID, imap.SearchCriteria{EmailID: []string{"Zz-_9"}}, nil},
			{"thread", in.ID, imap.SearchCriteria{ThreadID: []string{"T1"}}, nil},
		} {
			got, err := acc.Search(t.Context(), tc.mb, &tc.c)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Search %s = %v, %v; want %v", tc.name, got, err, tc.want)
			}
		}
		// Expunged IDs are not handed out again.
		seen := map[string]bool{idA: true, idB: true}
		storeFlags(t, acc, in.ID, allUIDs, mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		storeFlags(t, acc, drafts.ID, allUIDs, mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, drafts.ID, nil)
		for i := range 3 {
			r := deliver(t, acc, message("new", string(rune('x'+i))))
			id := idOf(t, acc, in.ID, r.UID)
			if seen[id] {
				t.Errorf("EmailID %q handed out again", id)
			}
			seen[id] = true
		}
		if b.Reopen == nil {
			return
		}
		// A restart keeps them, and hands out new ones after them.
		f.reopen(t)
		acc = f.open(t, alice)
		if got := idOf(t, acc, archive.ID, cp.DestUIDs[0]); got != idA {
			t.Errorf("EmailID after a restart %q, want %q", got, idA)
		}
		r := deliver(t, acc, message("after", "restart"))
		if id := idOf(t, acc, in.ID, r.UID); seen[id] {
			t.Errorf("EmailID %q handed out again after a restart", id)
		}
	})
}

// isObjectID: 1 to 255 of ALPHA, DIGIT, "_", "-" (RFC 8474 §7).
func isObjectID(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
