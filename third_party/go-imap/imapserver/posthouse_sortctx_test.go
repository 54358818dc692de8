package imapserver_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// sortUpdate is one ADDTO or REMOVEFROM a sortContextSession writes at its
// next poll.
type sortUpdate struct {
	tag     string
	kind    imapserver.NumKind
	removed bool
	pos     uint32
	nums    []uint32
}

// sortContextSession answers SORT RETURN (UPDATE) with a fixed order,
// refusing updates when noUpdate is set, and writes queued updates when
// polled.
type sortContextSession struct {
	*sortThreadSession
	noUpdate bool
	pending  []sortUpdate
	canceled []string
}

func (s *sortContextSession) SortUpdate(tag string, kind imapserver.NumKind, sortCriteria []imap.SortCriterion, criteria *imap.SearchCriteria) ([]uint32, bool, error) {
	s.got = fmt.Sprintf("%s %v %v", tag, kind, sortCriteria)
	return s.nums, s.noUpdate, nil
}

func (s *sortContextSession) CancelUpdate(tags []string) error {
	s.canceled = append(s.canceled, tags...)
	return nil
}

func (s *sortContextSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	for _, u := range s.pending {
		if err := w.WriteSortUpdate(u.tag, u.kind, u.removed, u.pos, u.nums); err != nil {
			return err
		}
	}
	s.pending = nil
	return s.UserSession.Poll(w, allowExpunge)
}

// TestSortContext: SORT RETURN (UPDATE) and (CONTEXT) are read and reach
// SessionSortContext with the command's tag, UPDATE alone returns no ALL,
// NOUPDATE follows the ESEARCH response when the session refuses, and
// ADDTO/REMOVEFROM keep their numbers in sort order (Posthouse patch, RFC
// 5267 §4).
func TestSortContext(t *testing.T) {
	sess := &sortContextSession{sortThreadSession: &sortThreadSession{nums: []uint32{5, 3, 4, 2, 1}}}
	transact := dialSession(t, sess, &sess.UserSession)
	for _, tc := range []struct {
		name, cmd string
		noUpdate  bool
		pending   []sortUpdate
		want      []string
		got       string
	}{
		{name: "update alone", cmd: `SORT RETURN (UPDATE) (ARRIVAL) UTF-8 ALL`,
			want: []string{`* ESEARCH (TAG "T")`, "T OK SORT completed"}, got: "T seq [{ARRIVAL false}]"},
		{name: "context alone is all", cmd: `SORT RETURN (CONTEXT) (SIZE) UTF-8 ALL`,
			want: []string{`* ESEARCH (TAG "T") ALL 5,3:4,2,1`, "T OK SORT completed"}},
		{name: "uid update partial", cmd: `UID SORT RETURN (UPDATE PARTIAL 1:2 CONTEXT) (REVERSE DATE) UTF-8 ALL`,
			want: []string{`* ESEARCH (TAG "T") UID PARTIAL (1:2 5,3)`, "T OK UID SORT completed"},
			got:  "T uid [{DATE true}]"},
		{name: "noupdate", cmd: `SORT RETURN (UPDATE COUNT MIN) (SIZE) UTF-8 ALL`, noUpdate: true,
			want: []string{`* ESEARCH (TAG "T") MIN 5 COUNT 5`, `* NO [NOUPDATE "T"] Too many live search results; this one is not updated`,
				"T OK SORT completed"}},
		{name: "updates in sort order", cmd: `NOOP`,
			pending: []sortUpdate{
				{tag: "A1", kind: imapserver.NumKindSeq, pos: 2, nums: []uint32{7, 3, 4, 2}},
				{tag: "A2", kind: imapserver.NumKindUID, removed: true, pos: 1, nums: []uint32{9}},
			},
			want: []string{`* ESEARCH (TAG "A1") ADDTO (2 7,3:4,2)`, `* ESEARCH (TAG "A2") UID REMOVEFROM (1 9)`, "T OK NOOP completed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess.got, sess.noUpdate, sess.pending = "", tc.noUpdate, tc.pending
			if got := transact(tc.cmd); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.got != "" && sess.got != tc.got {
				t.Errorf("session got %q, want %q", sess.got, tc.got)
			}
		})
	}
	if got := transact(`CANCELUPDATE "A1" "A2"`); !strings.HasPrefix(got[len(got)-1], "T OK") || !slices.Equal(sess.canceled, []string{"A1", "A2"}) {
		t.Errorf("CANCELUPDATE: %q, session got %q", got, sess.canceled)
	}
	for _, cmd := range []string{
		"SORT RETURN (UPDATE ALL PARTIAL 1:2) (SIZE) UTF-8 ALL", "SORT RETURN (UPDATES) (SIZE) UTF-8 ALL",
		"SORT RETURN (UPDATE) UTF-8 ALL",
	} {
		if got := transact(cmd); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: got %q, want BAD", cmd, got)
		}
	}
}

// TestSortUpdateUnsupported: without SessionSortContext, SORT RETURN
// (UPDATE) is BAD (Posthouse patch).
func TestSortUpdateUnsupported(t *testing.T) {
	transact := dialSortThread(t, &sortThreadSession{nums: []uint32{1}})
	if got := transact("SORT RETURN (UPDATE) (SIZE) UTF-8 ALL"); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
		t.Errorf("got %q, want BAD", got)
	}
}
