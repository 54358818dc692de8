// Package backup makes, checks and restores snapshots of a Posthouse
// data_dir while the server runs (posthouse admin backup, backup verify,
// restore). It owns the backup format and the order of the copy; the
// schemas stay with their packages: mailstore/maildir and queue list the
// files a database copy references and trim it (SnapshotFiles,
// TrimSnapshot), mailstore/sqlitedb copies databases with SQLite's online
// backup API (Copy). It does not stop, pause or talk to the server.
//
// # Layout
//
//	DIR/
//	  .lock                          held while a backup writes (flock)
//	  20270102T030405Z/              one snapshot per backup, named by its UTC start
//	    manifest.jsonl               written last: a snapshot without it is incomplete
//	    data/                        data_dir as it was
//	      users.sqlite               every SQLite database, one self-contained file each
//	      queue.sqlite  queue/<id>   outbound queue (and DKIM keys) with its spool files
//	      accounts/<a>/index.sqlite  each account's index …
//	      accounts/<a>/maildir/<m>/cur/<file>   … and the message files it references
//	      sieve.sqlite junk.sqlite …  any other database found under data_dir
//	      tls/ acme/ srs.key …       every other file, copied
//	    external/                    files outside data_dir: the configuration file,
//	                                 [tls] cert_file, key_file, acme_ca_file
//	  .partial-<name>/               a snapshot being written; removed by the next backup
//
// The manifest is JSON lines: a header (format, version, time, data_dir,
// previous snapshot), one line per directory and file (path, kind, mode,
// size, SHA-256; for an external file its original path and the config
// key naming it), and an end line with the count, so a manifest cut short
// is detected.
//
// Left out: the -wal and -shm files (the database copy includes what they
// hold), spool/ (SMTP messages still being received: not yet acknowledged,
// the client sends them again), queue/tmp and Maildir tmp/ (files being
// written), copies kept before schema upgrades (*.pre-vN.bak), indexes set
// aside as corrupt, accounts being removed, and anything that is not a
// regular file or directory.
//
// # Consistency
//
// Each database is copied with the online backup API in one step under one
// read transaction: the copy is that database at one commit, while
// writers go on (WAL). Message and spool files come after their database,
// and only those the copy references; a file nobody references (a delivery
// committed after the copy, or one in progress) is left out, so a restore
// never finds mail without a row and indexes it anew.
//
// Why a referenced file is there to be saved: the mailstore makes a file
// durable in cur/ before it commits the row naming it, and removes a file
// only after committing the deletion of its row (expunge, move and delete
// go through the trash table); the queue likewise writes its spool file
// before the row and removes it after deleting the row. So every file the
// copy references existed when the copy was made, and can have vanished
// since only because a later commit deleted its row. Files never change
// once written and their names are never reused, so a file saved at any
// time after the copy is the one the copy references.
//
// When some referenced files are gone by the time they are saved (a user
// expunged or moved mail in between), the database is copied again and the
// files the new copy references are saved (those already saved are not
// touched again), up to five times; files saved for an earlier copy that
// the final one no longer references are taken out. A moved message is
// thereby kept at its new place: its new file was linked before the move
// was committed. Only if files still vanish after the fifth copy (an
// account expunging without pause) are the rows of the missing files
// trimmed from the last copy, as an expunge does it (the mailbox's modseq
// goes up and the UIDs are recorded as expunged), which is the state the
// server reached a moment later. Either way no row in the backup names a
// file the backup lacks; backup verify checks exactly that.
//
// Databases are copied one after the other, so two databases may be a few
// moments apart (an account created during the backup may be in
// users.sqlite and not yet have an index); each one is consistent in
// itself, and mail acknowledged before the backup began is in it.
//
// # Incremental backups and hard links
//
// A backup into a directory that holds snapshots makes a new one beside
// them. A message or spool file that the previous snapshot holds (same
// path, same size: such files never change and their names are never
// reused) is hard-linked to it, taking its checksum from the previous
// manifest: nothing is read or copied. Other message files are hard-linked
// to data_dir's when DIR is on the same file system (again nothing copied;
// Copy turns this off), and copied otherwise. Databases and the small
// files are copied every time. Every snapshot is complete by itself:
// removing an older one (Keep) loses nothing a newer one holds.
//
// # Restore
//
// Restore copies a snapshot into an empty data_dir, checking every file
// against its checksum. The databases are the server's own, so mailboxes
// keep UIDVALIDITY, UIDs, flags, keywords and modseqs: clients find the
// state they knew and fetch nothing again (a client that saw changes made
// after the backup sees them undone, as with any restore). Files from
// outside data_dir stay in the snapshot's external/ (their original paths
// are listed); the configuration is written where the administrator asks.
package backup
