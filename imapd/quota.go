package imapd

import (
	"github.com/emersion/go-imap/v2"
)

// QUOTA (RFC 9208). The account has one quota root, "" (RFC 9208 §3.2
// lets a server name its roots), covering every mailbox: its STORAGE is
// mailstore's byte quota in units of 1024 octets, its MESSAGE the message
// quota (auth's users.message_quota), both rounded up. A resource without
// a limit is left out (§5.1); with neither, the account has no quota root.
// Users may not change their quota, so SETQUOTA is refused and QUOTASET is
// not advertised. Going over a limit is mapError's NO [OVERQUOTA].

// quotaRoot is the account's one quota root.
const quotaRoot = ""

// quotaCaps are the capabilities QUOTA adds.
var quotaCaps = []imap.Cap{imap.CapQuota, "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"}

var (
	errNoQuotaRoot = no(imap.ResponseCodeNonExistent, "No such quota root")
	errSetQuota    = no(imap.ResponseCodeNoPerm, "Quotas are set by the administrator")
)

// quota reads the account's usage and limits; nil when nothing is limited.
func (s *session) quota() (*imap.QuotaData, error) {
	ctx, cancel := s.op()
	defer cancel()
	used, limit, err := s.acct.Usage(ctx)
	if err != nil {
		return nil, mapError(s.log, "quota", err, errSource)
	}
	count, msgLimit, err := s.acct.MessageUsage(ctx)
	if err != nil {
		return nil, mapError(s.log, "quota", err, errSource)
	}
	d := &imap.QuotaData{Root: quotaRoot}
	if limit > 0 {
		d.Resources = append(d.Resources, imap.QuotaResource{Type: imap.QuotaResourceStorage, Usage: kib(used), Limit: kib(limit)})
	}
	if msgLimit > 0 {
		d.Resources = append(d.Resources, imap.QuotaResource{Type: imap.QuotaResourceMessage, Usage: count, Limit: msgLimit})
	}
	if len(d.Resources) == 0 {
		return nil, nil
	}
	return d, nil
}

// kib is n bytes in units of 1024 octets, rounded up (RFC 9208 §5.1).
func kib(n int64) int64 { return (n + 1023) / 1024 }

func (s *session) GetQuota(root string) (*imap.QuotaData, error) {
	if root != quotaRoot {
		return nil, errNoQuotaRoot
	}
	d, err := s.quota()
	if err == nil && d == nil {
		err = errNoQuotaRoot
	}
	return d, err
}

// GetQuotaRoot answers for an existing mailbox (RFC 9208 §4.3); Outlook
// and Thunderbird ask with INBOX.
func (s *session) GetQuotaRoot(mailbox string) ([]imap.QuotaData, error) {
	name := canonName(mailbox)
	if err := checkName(name); err != nil {
		return nil, err
	}
	ctx, cancel := s.op()
	_, err := s.acct.Mailbox(ctx, name)
	cancel()
	if err != nil {
		return nil, mapError(s.log, "getquotaroot", err, errSource)
	}
	d, err := s.quota()
	if err != nil || d == nil {
		return nil, err
	}
	return []imap.QuotaData{*d}, nil
}

func (s *session) SetQuota(string, map[imap.QuotaResourceType]int64) error {
	return errSetQuota
}
