package maildir

import "github.com/posthouse/posthouse/mailstore/sqlitedb"

// migrations is the index schema, one numbered step each; never edit a step
// that has shipped, append a new one.
//
// Flags: the five storable system flags are a bit mask (flag* constants) and
// keywords a space-separated string (NULL when none), so that listing a
// mailbox reads two integers and usually a NULL per message from the covering
// index messages_snapshot, without touching the wide rows that carry the
// cached envelope and body structure.
var migrations = []sqlitedb.Migration{
	sqlitedb.Exec(
		`CREATE TABLE meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		) WITHOUT ROWID`,
		// id is AUTOINCREMENT so that an ID, which names the mailbox's
		// directory, is never handed out twice.
		`CREATE TABLE mailboxes (
			id            INTEGER PRIMARY KEY AUTOINCREMENT,
			name          TEXT NOT NULL UNIQUE,
			special_use   TEXT NOT NULL DEFAULT '',
			uidvalidity   INTEGER NOT NULL,
			uidnext       INTEGER NOT NULL DEFAULT 1,
			highestmodseq INTEGER NOT NULL DEFAULT 1
		)`,
		`CREATE TABLE subscriptions (
			name TEXT PRIMARY KEY
		) WITHOUT ROWID`,
		`CREATE TABLE messages (
			id            INTEGER PRIMARY KEY,
			mailbox       INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
			uid           INTEGER NOT NULL,
			modseq        INTEGER NOT NULL,
			flags         INTEGER NOT NULL DEFAULT 0,
			keywords      TEXT,
			size          INTEGER NOT NULL,
			internaldate  INTEGER NOT NULL, -- unix seconds
			internalzone  INTEGER NOT NULL, -- offset east of UTC, seconds
			sentdate      INTEGER NOT NULL DEFAULT 0, -- YYYYMMDD of the Date header in its zone, 0: none
			file          TEXT NOT NULL,    -- relative to the mailbox directory: cur/<unique name>
			messageid     TEXT NOT NULL DEFAULT '',
			envelope      BLOB,
			bodystructure BLOB,
			UNIQUE (mailbox, uid)
		)`,
		`CREATE INDEX messages_snapshot ON messages (mailbox, uid, modseq, flags, keywords, size)`,
		// Files whose rows are gone (expunge, move, delete); removed after
		// commit, and again by reconciliation if the process died first.
		`CREATE TABLE trash (
			path TEXT PRIMARY KEY
		) WITHOUT ROWID`,
	),
	// 2: per-mailbox counters kept by triggers, so STATUS reads one row
	// instead of scanning the mailbox; every write path (delivery, flags,
	// expunge, copy, move, reconciliation) maintains them by construction.
	sqlitedb.Exec(
		`ALTER TABLE mailboxes ADD COLUMN msgs INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE mailboxes ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE mailboxes ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE mailboxes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0`,
		`UPDATE mailboxes SET
			msgs = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id),
			bytes = (SELECT ifnull(sum(size), 0) FROM messages m WHERE m.mailbox = mailboxes.id),
			unseen = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id AND (m.flags & 1) = 0),
			deleted = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id AND (m.flags & 8) != 0)`,
		`CREATE TRIGGER messages_counts_insert AFTER INSERT ON messages BEGIN
			UPDATE mailboxes SET msgs = msgs + 1, bytes = bytes + NEW.size,
				unseen = unseen + ((NEW.flags & 1) = 0), deleted = deleted + ((NEW.flags & 8) != 0)
			WHERE id = NEW.mailbox;
		END`,
		`CREATE TRIGGER messages_counts_delete AFTER DELETE ON messages BEGIN
			UPDATE mailboxes SET msgs = msgs - 1, bytes = bytes - OLD.size,
				unseen = unseen - ((OLD.flags & 1) = 0), deleted = deleted - ((OLD.flags & 8) != 0)
			WHERE id = OLD.mailbox;
		END`,
		`CREATE TRIGGER messages_counts_update AFTER UPDATE OF mailbox, flags, size ON messages BEGIN
			UPDATE mailboxes SET msgs = msgs - 1, bytes = bytes - OLD.size,
				unseen = unseen - ((OLD.flags & 1) = 0), deleted = deleted - ((OLD.flags & 8) != 0)
			WHERE id = OLD.mailbox;
			UPDATE mailboxes SET msgs = msgs + 1, bytes = bytes + NEW.size,
				unseen = unseen + ((NEW.flags & 1) = 0), deleted = deleted + ((NEW.flags & 8) != 0)
			WHERE id = NEW.mailbox;
		END`,
	),
	// 3: look-up of a message by file, for reconciliation and rebuilds,
	// which check each file they find.
	sqlitedb.Exec(
		`CREATE INDEX messages_file ON messages (mailbox, file)`,
	),
	// 4: IMAP4rev1 \Recent (Account.ClaimRecent): recent_uid is the first
	// UID no session has claimed. A new mailbox starts at 1; existing
	// mailboxes start at their UIDNEXT, so nothing already stored turns
	// recent when the index is upgraded.
	sqlitedb.Exec(
		`ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1`,
		`UPDATE mailboxes SET recent_uid = uidnext`,
	),
	// 5: CONDSTORE/QRESYNC (RFC 7162). messages_modseq serves "changed
	// since" (Fetch with ChangedSince) from the index: the cost grows with
	// the changes, not the mailbox. expunged keeps, per mailbox, closed
	// UID ranges with the modseq of the transaction that expunged them,
	// for VANISHED (EARLIER) (Account.Expunged). The trigger fills it on
	// every delete of a message row, whatever the path (expunge, move,
	// INBOX rename, reconciliation): each bumps the mailbox's modseq
	// first, so highestmodseq is the expunge's. Deletes of one
	// transaction come in ascending UID order, so a delete extends the
	// transaction's highest range below it when no message lies between
	// them (the UIDs between are gone for good: UIDs are never reused),
	// and a range of expunges is one row. A deleted mailbox's rows go with
	// it (a cascade of its messages finds no mailbox row to stamp).
	sqlitedb.Exec(
		`CREATE INDEX messages_modseq ON messages (mailbox, modseq)`,
		`CREATE TABLE expunged (
			mailbox INTEGER NOT NULL,
			modseq  INTEGER NOT NULL,
			uid_lo  INTEGER NOT NULL,
			uid_hi  INTEGER NOT NULL,
			PRIMARY KEY (mailbox, modseq, uid_hi)
		) WITHOUT ROWID`,
		`CREATE TRIGGER messages_expunged AFTER DELETE ON messages BEGIN
			UPDATE expunged SET uid_hi = OLD.uid
			WHERE mailbox = OLD.mailbox
				AND modseq = (SELECT highestmodseq FROM mailboxes WHERE id = OLD.mailbox)
				AND uid_hi = (SELECT max(e.uid_hi) FROM expunged e WHERE e.mailbox = OLD.mailbox
					AND e.modseq = (SELECT highestmodseq FROM mailboxes WHERE id = OLD.mailbox) AND e.uid_hi < OLD.uid)
				AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailbox = OLD.mailbox
					AND m.uid > expunged.uid_hi AND m.uid < OLD.uid);
			INSERT INTO expunged (mailbox, modseq, uid_lo, uid_hi)
				SELECT OLD.mailbox, highestmodseq, OLD.uid, OLD.uid FROM mailboxes
				WHERE id = OLD.mailbox AND NOT EXISTS (SELECT 1 FROM expunged e
					WHERE e.mailbox = OLD.mailbox AND e.modseq = mailboxes.highestmodseq AND e.uid_hi = OLD.uid);
		END`,
		`CREATE TRIGGER mailboxes_expunged AFTER DELETE ON mailboxes BEGIN
			DELETE FROM expunged WHERE mailbox = OLD.id;
		END`,
	),
	// 6: RFC 8474 EMAILID. A copy or move takes its source's emailid; any
	// other new row gets the next value of the meta counter 'emailid' from
	// the trigger, so every path that adds a message (delivery, append,
	// reconciliation, rebuild) has one by construction. The counter starts
	// at the creation time in seconds times 2^20, so an index rebuilt or an
	// account created again later hands out values above the old ones
	// (unless it took more than 2^20 messages per second of its life).
	// Messages already stored take their row id, which no other message
	// holds.
	sqlitedb.Exec(
		`ALTER TABLE messages ADD COLUMN emailid INTEGER NOT NULL DEFAULT 0`,
		`UPDATE messages SET emailid = id`,
		`INSERT INTO meta (key, value) VALUES ('emailid',
			max(CAST(strftime('%s', 'now') AS INTEGER) * 1048576, (SELECT ifnull(max(id), 0) FROM messages)))`,
		`CREATE TRIGGER messages_emailid AFTER INSERT ON messages WHEN NEW.emailid = 0 BEGIN
			UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'emailid';
			UPDATE messages SET emailid = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'emailid') WHERE id = NEW.id;
		END`,
	),
	// 7: no index on file names. Only reconciliation, rebuilds and backup
	// trims look messages up by file, and they read a mailbox's rows once
	// into memory instead; the index held every file name a second time,
	// about 75 bytes per message, an eighth of the index. From this
	// version on, new rows leave messageid empty (its default): nothing
	// reads it, and the cached envelope holds the Message-ID.
	sqlitedb.Exec(
		`DROP INDEX messages_file`,
	),
	// 8: the envelope and body structure are cached at delivery only in
	// mailboxes where a client has asked for them (cache_summaries = 1),
	// as Dovecot learns its cache fields from what clients fetch. In other
	// mailboxes a row leaves both NULL; the first Fetch that wants them
	// parses the file, answers from it, writes both into the row and sets
	// cache_summaries, so later deliveries there cache them again. Mail
	// read only by POP3, or by clients that fetch header fields and bodies,
	// never pays their 160 bytes or so per message. Mailboxes of an
	// upgraded index keep caching, as before.
	sqlitedb.Exec(
		`ALTER TABLE mailboxes ADD COLUMN cache_summaries INTEGER NOT NULL DEFAULT 0`,
		`UPDATE mailboxes SET cache_summaries = 1`,
	),
	// 9: journaled deliveries (journal.go): the bytes of a message whose
	// file is not yet known to be durable, committed with its row and
	// deleted once the file is synced.
	sqlitedb.Exec(
		`CREATE TABLE pending (id INTEGER PRIMARY KEY, mailbox INTEGER NOT NULL, uid INTEGER NOT NULL, file TEXT NOT NULL, body BLOB NOT NULL)`,
	),
}
