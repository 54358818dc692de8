package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The QRESYNC row (RFC 7162): what Thunderbird and iOS Mail do on
// reconnecting to a mailbox they have cached, instead of UID FETCH 1:*
// (FLAGS): SELECT with the UIDVALIDITY and HIGHESTMODSEQ they last saw,
// after 10 changes since. The client's side is raw commands: go-imap's
// client has no QRESYNC.

const qresyncChanges = 10

func (b *bench) mQResync() metric {
	return millis(fmt.Sprintf("IMAP SELECT (QRESYNC), %s-msg mailbox, %d flag changes since", n(b.sz.BigMsgs), qresyncChanges))
}

// qresyncToggles counts the calls per server (by IMAP address, so that
// a later run in the same process starts afresh on its new server): a
// call sets the keyword on its messages when even, clears it when odd, so
// each call changes them.
var qresyncToggles = map[string]int{}

var (
	reUIDValidity   = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	reHighestModSeq = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
)

// imapQResync changes the flags of qresyncChanges messages of mailbox
// (want messages) after noting its state, then times SELECT (QRESYNC …)
// on a fresh connection and checks it reports exactly those messages.
func imapQResync(s server, mailbox string, want int) (time.Duration, error) {
	c, err := dialRawIMAP(s.Addr("imap"))
	if err != nil {
		return 0, err
	}
	// Dovecot reports HIGHESTMODSEQ only to a client that enabled CONDSTORE.
	if _, err := c.do("ENABLE CONDSTORE"); err != nil {
		c.close()
		return 0, err
	}
	lines, err := c.do("SELECT " + mailbox)
	if err != nil {
		c.close()
		return 0, err
	}
	validity, modseq := c.find(lines, reUIDValidity), c.find(lines, reHighestModSeq)
	op := "+"
	if qresyncToggles[s.Addr("imap")]%2 == 1 {
		op = "-"
	}
	qresyncToggles[s.Addr("imap")]++
	for i := 0; i < qresyncChanges; i++ {
		if _, err := c.do(fmt.Sprintf("STORE %d %sFLAGS.SILENT ($QResyncBench)", 1+i*(want/qresyncChanges), op)); err != nil {
			c.close()
			return 0, err
		}
	}
	c.close()
	if validity == "" || modseq == "" {
		return 0, fmt.Errorf("SELECT %s: no UIDVALIDITY or HIGHESTMODSEQ", mailbox)
	}

	c, err = dialRawIMAP(s.Addr("imap"))
	if err != nil {
		return 0, err
	}
	defer c.close()
	if _, err := c.do("ENABLE QRESYNC"); err != nil {
		return 0, err
	}
	t0 := time.Now()
	lines, err = c.do(fmt.Sprintf("SELECT %s (QRESYNC (%s %s))", mailbox, validity, modseq))
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	fetches := 0
	for _, l := range lines {
		if strings.Contains(l, " FETCH ") {
			fetches++
		}
	}
	if fetches != qresyncChanges {
		return 0, fmt.Errorf("SELECT (QRESYNC): %d FETCH responses, want %d", fetches, qresyncChanges)
	}
	return d, nil
}
