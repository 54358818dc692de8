package postgres

// component names the mail store's migrations in posthouse_migrations.
const component = "mailstore"

// migrations is the schema, one numbered step each (pgdb.Migrate); never
// edit a step that has shipped, append a new one.
//
// Accounts, mailboxes and messages of every account share the tables;
// every query names the account, so accounts share nothing they can see.
// Names sort in byte order (COLLATE "C") whatever the database's locale.
// Flags are a bit mask (flag* constants) and keywords a space-separated
// string, NULL when none, as in the maildir backend.
//
// mail_mailboxes carries the per-mailbox counters STATUS reads, kept by
// statement-level triggers on mail_messages (one update per statement, not
// per row); mail_accounts carries the bytes and messages the quotas are
// checked against, kept by the code paths that add or remove messages
// (each in the transaction that does it).
var migrations = [][]string{
	{
		`CREATE TABLE mail_accounts (
			id          bigserial PRIMARY KEY,
			name        text COLLATE "C" NOT NULL UNIQUE,
			bytes       bigint NOT NULL DEFAULT 0,
			msgs        bigint NOT NULL DEFAULT 0,
			uidvalidity bigint NOT NULL DEFAULT 0 -- the last handed out
		)`,
		`CREATE TABLE mail_mailboxes (
			id            bigserial PRIMARY KEY,
			account       bigint NOT NULL REFERENCES mail_accounts(id) ON DELETE CASCADE,
			name          text COLLATE "C" NOT NULL,
			special_use   text NOT NULL DEFAULT '',
			uidvalidity   bigint NOT NULL,
			uidnext       bigint NOT NULL DEFAULT 1,
			highestmodseq bigint NOT NULL DEFAULT 1,
			recent_uid    bigint NOT NULL DEFAULT 1,
			msgs          bigint NOT NULL DEFAULT 0,
			bytes         bigint NOT NULL DEFAULT 0,
			unseen        bigint NOT NULL DEFAULT 0,
			deleted       bigint NOT NULL DEFAULT 0,
			UNIQUE (account, name)
		)`,
		`CREATE TABLE mail_subscriptions (
			account bigint NOT NULL REFERENCES mail_accounts(id) ON DELETE CASCADE,
			name    text COLLATE "C" NOT NULL,
			PRIMARY KEY (account, name)
		)`,
		// Bodies (pgBodies): chunks of at most bodyChunk bytes, in order.
		`CREATE SEQUENCE mail_body_ids`,
		`CREATE TABLE mail_body_chunks (
			body bigint NOT NULL,
			seq  integer NOT NULL,
			data bytea NOT NULL,
			PRIMARY KEY (body, seq)
		)`,
		// RFC 8474 EMAILID: one sequence for every account, so no value
		// is ever handed out twice.
		`CREATE SEQUENCE mail_emailids`,
		`CREATE TABLE mail_messages (
			mailbox       bigint NOT NULL REFERENCES mail_mailboxes(id) ON DELETE CASCADE,
			uid           bigint NOT NULL,
			modseq        bigint NOT NULL,
			flags         integer NOT NULL DEFAULT 0,
			keywords      text,
			size          bigint NOT NULL,
			internaldate  bigint NOT NULL, -- unix seconds
			internalzone  integer NOT NULL, -- offset east of UTC, seconds
			sentdate      integer NOT NULL DEFAULT 0, -- YYYYMMDD of the Date header in its zone, 0: none
			body          bigint NOT NULL, -- BodyStore reference; copies share it
			emailid       bigint NOT NULL DEFAULT nextval('mail_emailids'),
			messageid     text NOT NULL DEFAULT '',
			envelope      bytea,
			bodystructure bytea,
			PRIMARY KEY (mailbox, uid)
		)`,
		`CREATE INDEX mail_messages_modseq ON mail_messages (mailbox, modseq)`,
		`CREATE INDEX mail_messages_body ON mail_messages (body)`,
		// Expunged UID ranges with the modseq that expunged them, for
		// QRESYNC's VANISHED (EARLIER); a deleted mailbox's go with it.
		`CREATE TABLE mail_expunged (
			mailbox bigint NOT NULL REFERENCES mail_mailboxes(id) ON DELETE CASCADE,
			modseq  bigint NOT NULL,
			uid_lo  bigint NOT NULL,
			uid_hi  bigint NOT NULL,
			PRIMARY KEY (mailbox, modseq, uid_lo)
		)`,
		`CREATE FUNCTION mail_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			UPDATE mail_mailboxes b SET msgs = b.msgs + n.c, bytes = b.bytes + n.s,
				unseen = b.unseen + n.u, deleted = b.deleted + n.d
			FROM (SELECT mailbox, count(*) c, sum(size) s,
					count(*) FILTER (WHERE flags & 1 = 0) u, count(*) FILTER (WHERE flags & 8 <> 0) d
				FROM new_rows GROUP BY mailbox) n
			WHERE b.id = n.mailbox;
			RETURN NULL;
		END $$`,
		`CREATE FUNCTION mail_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			UPDATE mail_mailboxes b SET msgs = b.msgs - o.c, bytes = b.bytes - o.s,
				unseen = b.unseen - o.u, deleted = b.deleted - o.d
			FROM (SELECT mailbox, count(*) c, sum(size) s,
					count(*) FILTER (WHERE flags & 1 = 0) u, count(*) FILTER (WHERE flags & 8 <> 0) d
				FROM old_rows GROUP BY mailbox) o
			WHERE b.id = o.mailbox;
			RETURN NULL;
		END $$`,
		// Flag changes only (a message never changes mailbox or size).
		`CREATE FUNCTION mail_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			UPDATE mail_mailboxes b SET unseen = b.unseen + x.u, deleted = b.deleted + x.d
			FROM (SELECT n.mailbox,
					sum((n.flags & 1 = 0)::int - (o.flags & 1 = 0)::int) u,
					sum((n.flags & 8 <> 0)::int - (o.flags & 8 <> 0)::int) d
				FROM new_rows n JOIN old_rows o ON o.mailbox = n.mailbox AND o.uid = n.uid
				GROUP BY n.mailbox) x
			WHERE b.id = x.mailbox;
			RETURN NULL;
		END $$`,
		`CREATE TRIGGER mail_counts_insert AFTER INSERT ON mail_messages
			REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_counts_insert()`,
		`CREATE TRIGGER mail_counts_delete AFTER DELETE ON mail_messages
			REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_counts_delete()`,
		`CREATE TRIGGER mail_counts_update AFTER UPDATE ON mail_messages
			REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_counts_update()`,
	},
}
