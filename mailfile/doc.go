// Package mailfile reads and writes the mail formats people move in with:
// mbox files (mboxo and mboxrd, as Thunderbird, Google Takeout, mutt and
// Dovecot write them) and Maildir trees (Dovecot's and Courier's Maildir++
// layout with dot-named subfolders, and Dovecot's LAYOUT=fs nesting). It
// knows formats only: it imports nothing of Posthouse and never touches a
// store; mailimport turns what it reads into messages of an account.
//
// # mbox
//
// MboxReader splits a stream into messages at "From " lines that start a
// line after an empty line (or begin the file); a "From " line without the
// empty line before it splits too when the rest of it parses as a date, as
// mboxo writers that leave no blank line produce. It streams: lines are
// read in chunks of at most 64 KiB (a longer line passes through in pieces
// and is never taken for a separator), and only a message's header is held
// in memory, up to 1 MiB (a longer header is passed through unparsed), so a
// 5 GB file costs the same memory as a small one.
//
// Un-escaping follows mboxrd (one '>' is removed from every ">+From " line;
// RFC 4155 §A, the mboxrd convention), which also undoes mboxo's escaping of
// ">From "; the reader's MboxO mode removes it only from ">From ". Lines end
// in CRLF on the way out, as Posthouse stores messages. The empty line
// before a separator, and one at the end of the file, belong to the format,
// not to the message.
//
// Flags come from the header fields mbox writers keep them in, which are
// removed from the message as Dovecot's mbox driver hides them from IMAP
// clients: Status (R: \Seen) and X-Status (A: \Answered, F: \Flagged,
// T: \Draft, D: \Deleted) of mutt, Pine and Dovecot, X-Keywords (Dovecot),
// Thunderbird's X-Mozilla-Status (0x1 read, 0x2 replied, 0x4 flagged,
// 0x8 deleted, 0x1000 forwarded), X-Mozilla-Status2 and X-Mozilla-Keys,
// and Dovecot's X-UID, X-IMAP and X-IMAPbase. Thunderbird keeps a deleted
// message in the file until the folder is compacted: MboxMessage.Deleted
// says so. Google Takeout's X-Gmail-Labels is read into Labels and kept.
//
// MboxWriter writes mboxrd with a From_ line carrying the internal date
// with its zone offset, and Status, X-Status and X-Keywords fields first,
// so that MboxReader gives back the same bytes, flags and date.
//
// # Maildir
//
// Flags are the info suffix of a file name (":2,FRS"; ';' and '!' are
// accepted for ':' as on file systems without colons): D \Draft, F \Flagged,
// P $Forwarded, R \Answered, S \Seen, T \Deleted, and lower-case letters
// are Dovecot keywords, numbered by the folder's dovecot-keywords file.
// Courier's keyword directory (courierimapkeywords) is not read. Folder names
// are modified UTF-7 (RFC 3501 §5.1.3) with '.' between levels (Maildir++);
// MaildirWriter writes a '.' inside a level as "&AC4-" so it reads back as
// one level.
//
// A message's internal date is its file's modification time, where Dovecot
// keeps it, unless that is more than a day after the delivery time at the
// start of the file name: then the tree was copied without keeping times
// (cp without -p) and the name's time is the better guess.
package mailfile
