package imapd

import (
	"testing"
)

// TestListSubscribed: LSUB lists the unsubscribed parents its "%" matches
// as \Noselect and never says \Subscribed; LIST (SUBSCRIBED) says
// \Subscribed on every name, without RETURN options too, and a deleted
// subscribed mailbox is \NonExistent; RECURSIVEMATCH gives a parent
// CHILDINFO only for a subscribed child the patterns do not list.
func TestListSubscribed(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	for _, c := range []string{"CREATE p/a", "CREATE p/b/c", "CREATE p/gone", "CREATE p/d/d", "CREATE p/d/f",
		"SUBSCRIBE p/a", "SUBSCRIBE p/b/c", "SUBSCRIBE p/gone", "SUBSCRIBE p/d/d", "SUBSCRIBE p/d/f", "DELETE p/gone"} {
		rc.mustOK("%s", c)
	}

	u := rc.mustOK("%s", `LSUB "" p/%`)
	for _, want := range []string{`* LSUB (\HasNoChildren) "/" "p/a"`, `* LSUB (\Noselect) "/" "p/b"`, `* LSUB (\Noselect) "/" "p/gone"`, `* LSUB (\Noselect) "/" "p/d"`} {
		if !hasLine(u, want) {
			t.Errorf("LSUB p/%%: no %q in %q", want, u)
		}
	}
	if hasLine(u, `* LSUB (\HasNoChildren) "/" "p/b/c"`) || len(u) != 4 {
		t.Errorf("LSUB p/%%: %q", u)
	}
	if u := rc.mustOK(`LSUB "" p/*`); hasLine(u, `* LSUB (\Noselect) "/" "p/b"`) || !hasLine(u, `* LSUB (\HasNoChildren) "/" "p/b/c"`) {
		t.Errorf("LSUB p/*: %q", u)
	}

	u = rc.mustOK(`LIST (SUBSCRIBED) "" p/*`)
	for _, want := range []string{`* LIST (\HasNoChildren \Subscribed) "/" "p/a"`, `* LIST (\HasNoChildren \Subscribed) "/" "p/b/c"`, `* LIST (\NonExistent \Subscribed) "/" "p/gone"`} {
		if !hasLine(u, want) {
			t.Errorf("LIST (SUBSCRIBED): no %q in %q", want, u)
		}
	}

	u = rc.mustOK("%s", `LIST (SUBSCRIBED RECURSIVEMATCH) "" p/%`)
	if !hasLine(u, `* LIST (\HasChildren) "/" "p/b" (CHILDINFO ("SUBSCRIBED"))`) {
		t.Errorf("RECURSIVEMATCH of a parent: %q", u)
	}
	u = rc.mustOK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" (p/b p/b/c)`)
	if hasLine(u, `* LIST (\HasChildren) "/" "p/b" (CHILDINFO ("SUBSCRIBED"))`) || !hasLine(u, `* LIST (\HasNoChildren \Subscribed) "/" "p/b/c"`) {
		t.Errorf("RECURSIVEMATCH with the child listed too: %q", u)
	}
	u = rc.mustOK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" p*d`)
	if !hasLine(u, `* LIST (\HasChildren) "/" "p/d" (CHILDINFO ("SUBSCRIBED"))`) || !hasLine(u, `* LIST (\HasNoChildren \Subscribed) "/" "p/d/d"`) {
		t.Errorf("RECURSIVEMATCH, one child listed, one not: %q", u)
	}
}
