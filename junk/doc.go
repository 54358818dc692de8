// Package junk is Posthouse's built-in junk filter: a statistical
// classifier per account, taught only by what each user does in their mail
// client, and a delivery filter that files what it judges junk into the
// account's Junk mailbox. It runs in the process; no daemon.
//
// It owns: the tokenizer (Tokenizer), the classifier (Score), the
// statistics database (DB), the learner (Learner) and the delivery filter
// (Filter), with its header field (HeaderName). It does not: reject mail
// (SMTP-time refusals are the gate's and mailauth's), verify SPF, DKIM or
// DMARC (it reads the Authentication-Results mailauth writes), or touch
// message files (it reads through mailstore and delivery).
//
// # Features
//
// A message becomes a set of at most MaxTokens features, each hashed
// (64-bit FNV-1a) so that the database keeps no words of anyone's mail:
//   - header: words of the decoded Subject (and whether it shouts), the
//     From address, its domain and the words of its display name, the
//     number of To and Cc recipients (bucketed), the Reply-To domain and
//     whether it differs from From's, the Message-ID domain, the mailer
//     (X-Mailer, User-Agent), Precedence, the top Content-Type, the names
//     of the fields present (not the ones added on the way into the store,
//     Return-Path, Received, our own field, Authentication-Results and
//     signatures: a stored copy has them and an incoming message may not),
//     and the spf, dkim, dmarc and iprev results of Authentication-Results
//     fields of our authserv-id;
//   - body: the structure is read by mailstore/mimeparse (bounded, one
//     pass, over the first maxScanBytes); every part's media type and every
//     attachment's file extension; the words of up to maxTextParts text
//     parts, decoded (base64, quoted-printable, then the charset to UTF-8
//     with go-message's charset tables, as the rest of Posthouse), at most
//     maxTextBytes of text in all. HTML has its tags stripped roughly: tag
//     names are features, href and src give link hosts, style and script
//     contents are skipped, entities separate words.
//
// Words are runs of letters, digits and the marks that hold addresses and
// links together, lower-cased; shorter than 3 bytes they are dropped,
// longer than 40 they become a "long word" feature (class of the first
// character, length in tens) — base64 debris and tracking ids are noise,
// and so is unsegmented CJK text, which this rough split does not cut into
// words. A word that is a link (http://, https://, www.) gives its host
// and the host's last two labels.
//
// # Classifier
//
// Gary Robinson's method with Fisher's combining (see classify.go): each
// feature's spam probability from how many learned spam and ham messages
// had it, smoothed towards 0.5 by how rarely it was seen; the up to 150
// features farthest from 0.5 (by at least 0.1) are combined into a score
// in [0, 1] where 0.5 means "cannot tell". A score at or above the
// threshold ([inbound] junk_threshold, default 0.9) is junk.
//
// An account that has learned fewer than 20 spam or 20 ham messages gets
// no verdict: its copies say "untrained" in the header, and stay where they
// would have gone. The message is then not tokenized at all (when no
// recipient's account is trained): tokenizing was about a tenth of the CPU
// of an SMTP delivery of 10 KB.
//
// # Statistics database
//
// One SQLite database for all accounts, data_dir/junk.sqlite
// (mailstore/sqlitedb: WAL, one writer, a read pool), with an account
// column, rather than one per account: it is opened once at start and
// closed once at shutdown, classifying needs no per-account open or cache
// of open files, the learner is its only writer (one goroutine) so one
// write connection is never contended, and the account directories
// belong to mailstore, which Posthouse's other packages do not write into.
// Synchronous is NORMAL: a power cut may lose the last learnings, which
// are statistics, not mail.
//
// With the postgres backend (OpenDBPostgres) the same tables live in that
// database (junk_accounts, junk_tokens, junk_learned, junk_correspondents;
// schema component "junk"), shared by every node, so training through one
// node classifies on all. Each node's learner then writes concurrently
// with the others': a learning transaction first takes an advisory lock on
// its account. A node's cached copy of an account is checked against the
// account's counts (one indexed read) before each classification, since
// another node may have learned since.
//
// Tables: accounts (learned message counts, feature count kept by
// triggers), tokens (account, hash, spam and ham counts, day last learned;
// WITHOUT ROWID, keyed by account and hash), learned (account, message
// key, class), correspondents (account, address, day). Growth is bounded
// per account: past DefaultMaxTokens features, features seen once and not
// learned for 180 days go, then the rarest and oldest, down to 90%;
// learned keeps the last DefaultMaxLearned messages and correspondents the
// DefaultMaxCorrespondents most recent. A delivery looks its features up
// in chunks of 250 hashes, one query each.
//
// # Learning
//
// Only from the user's own actions over IMAP, the ones Thunderbird's and
// Outlook's Junk and Not Junk buttons (and dragging a message) perform:
//   - a message moved or copied into the Junk mailbox (special use \Junk,
//     RFC 6154), or appended there, is spam;
//   - one moved or copied out of Junk to any mailbox but Trash is ham
//     (moving it to Trash deletes it; it says nothing);
//   - the keyword $Junk added with STORE (Thunderbird sets it) is spam,
//     $NotJunk is ham; removing a keyword teaches nothing.
//
// A message is learned at most once per class: it is known by a key, a
// SHA-256 of its bytes (a move or copy keeps them), so Thunderbird's
// "STORE $Junk, then MOVE to Junk" teaches once. A message learned as one
// class and then as the other is unlearned first (its features, the same
// bytes giving the same features, are counted down), so the counts follow
// the user's last word.
//
// The mailstore's change events (Account.Watch, which IMAP IDLE uses) do
// not say why a message appeared (a delivery into Junk by this filter and a
// user's MOVE look alike) nor what an expunged message was, so the learner
// watches the commands instead: cmd/posthouse gives imapd the store that
// Learner.Wrap returns, whose accounts report MOVE, COPY, APPEND and STORE
// once the store has done them. Reporting is a non-blocking send on a
// bounded queue (DefaultQueueSize actions; a full queue drops, and the log
// says how many); one background goroutine reads the messages back
// through the store and learns, so IMAP commands do not wait for it. It
// is started with serve and stopped at shutdown after the message it is
// on; actions still queued are dropped. One action teaches at most 500
// messages.
//
// # Performance
//
// go test -run '^$' -bench 'Check|Deliver|IMAPLearning' -benchmem ./junk
// on the shared 2-core development machine under a load average of 10-12
// (so the figures are high); cpu-ns/op is the process's CPU time
// (getrusage) per operation. An account with 5,000 features learned, a
// 10 KB multipart/alternative message with 659 features:
//
//	Check (header parse, tokenize, lookup, score)  0.28-0.40 ms CPU, 420 allocs, 51 KB
//	  of which the lookup, account in memory        0.05 ms (1.6 ms from SQLite)
//	Deliver to a null store, without / with filter  0.015 / 0.50 ms CPU
//	IMAP MOVE INBOX<->Junk, without / with learner  2.1-2.7 / 2.8-3.2 ms CPU per MOVE (each
//	                                                MOVE re-classifies: unlearn and learn)
//	IMAP STORE ±$Junk, without / with learner       0.43-0.53 / 0.56-0.59 ms CPU
//
// The IMAP command itself only adds a channel send; the difference is the
// learner's background work (counted because the loop waits for it), and
// the wall time of the commands moves within the noise of the load.
//
// # Sender reputation
//
// People the user wrote to are trusted: their mail is never filed as junk
// by its words (the header then says "sender=trusted"). The learner
// records the To, Cc and Bcc addresses of every message the user's client
// puts into Sent (APPEND, as Thunderbird, Outlook, Apple Mail and phones
// do after sending, or a MOVE or COPY there). That is simpler and more
// reliable than a hook on submission: it needs no change to smtpd or the
// queue, sees Bcc, and a message in Sent is the user's own word that they
// wrote it. A client that does not save sent mail teaches nothing.
//
// Trust needs the From: address to be believed: if the message has
// Authentication-Results of our authserv-id, DMARC must have passed (or,
// without a DMARC result, DKIM or SPF); a message with none of ours (no
// checks made) is trusted on its From: alone.
//
// # Which messages are classified
//
// By Envelope.Source: port 25 (SourceSMTP), every message; submission
// (587 and 465), none (our own users' mail); the queue's local transport
// (SourceQueue), a retry or redirect of mail that came in on port 25,
// known by smtpd's Received field on top with an unauthenticated protocol
// (ESMTP, ESMTPS: RFC 3848), and not the queue's own reports or our users'
// mail retried. Every classified copy gets the field HeaderName (see its
// doc for the format, which Sieve's spamtest reads); a junk one goes to
// the mailbox "Junk" with the keyword $Junk. A failure of the statistics
// database is logged and the copy delivered without a verdict: a filter
// that cannot judge must not hold mail up.
package junk
