// Package auth owns Posthouse's system database (users.sqlite under
// data_dir): domains, users and aliases; it checks passwords, resolves
// recipient addresses, and serves SASL PLAIN and LOGIN to smtpd, imapd and
// pop3d alike. It does not know which protocol is asking, and it never logs
// or stores a password.
//
// # Schema
//
// Numbered migrations (mailstore/sqlitedb, PRAGMA user_version) create:
// domains(name, created); users(address, domain, password_hash, quota,
// message_quota, disabled, created, role, totp_secret, totp_step);
// app_passwords(user, name, hash, created, last_used, last_remote);
// recovery_codes(user, hash); aliases(address or "@domain", domain, created) with
// alias_targets(position, target); known_addresses(user, prefix,
// last_login) for throttling (below); send_as(user, address or "@domain",
// created), the grants of CanSendAs (below). Addresses are stored normalized by
// NormalizeAddress (lower case, dot-atom local part, ASCII domain). The file
// is created with mode 0600. WAL and a busy timeout make it safe for
// posthouse admin to change it while posthouse serve runs; serve sees the
// change at its next lookup (nothing is cached across processes except the
// credential cache below, which re-checks the stored hash every time).
// One unit of work may read the directory once: under WithLookupMemo (an
// SMTP transaction, one delivery) a user, domain or alias is looked up once
// and kept until the unit ends, so a delivery on PostgreSQL makes one user
// query instead of six; a change lands at the next transaction.
//
// # PostgreSQL
//
// With [store] backend = "postgres", OpenPostgres keeps the same tables in
// the PostgreSQL database of the mail store (migrations "auth" of
// internal/pgdb, on the process's shared pool), so every node sees the same
// users, aliases, grants, app passwords and second factors, and `posthouse
// admin` on any node acts for all. Both backends run the same SQL through a
// small seam (sysDB, backend.go): queries are written with ? placeholders,
// which the PostgreSQL connections rewrite to $n; RETURNING replaces
// last-insert ids. Write transactions take one advisory lock first, so
// writers run one at a time across nodes as SQLite's single writer makes
// them on one machine, and checks such as "an alias is not a user" stay
// whole. Nothing is cached across nodes but credentials, and a cached
// credential holds only while the row keeps the hash it was verified
// against (read at every login, below), so a password changed, a user
// disabled or removed on one node takes effect on the others at their next
// login: no invalidation message is needed.
//
// Throttling is then shared too (pgthrottle.go): the per-address and
// per-account records live in auth_throttle, one row per key, read and
// written under transaction advisory locks on their keys by whichever node
// checks a login, with the same rules as below; known addresses are read
// from known_addresses at each check, so a login on one node makes the
// address known on all. Rows expire with their windows and are swept once a
// minute (by each node), at most 200 000 kept. Two things differ from one
// process: the credential ids that make a retried wrong password count once
// are keyed per process, so the same wrong password tried through two
// nodes counts twice (at most once per node: more throttling, never less);
// and every attempt costs two short transactions (admission, then verdict),
// each BEGIN, one lock statement, one read of the rows, one of the known
// addresses, a write when a record changed, COMMIT. BenchmarkBackends, on a
// loaded 2-core machine with PostgreSQL on a local socket: a cached login
// 1.4 ms on PostgreSQL against 24 µs on SQLite, a recipient lookup 0.43 ms
// against 0.14 ms.
//
// # Passwords
//
// New hashes are argon2id PHC strings with the OWASP baseline m=19 MiB, t=2,
// p=1, a 16-byte salt and a 32-byte key. Imported argon2id (with other
// parameters, bounded to m ≤ 256 MiB, t ≤ 16, p ≤ 16) and bcrypt hashes
// ($2a$, $2b$, $2y$, cost 4–15) are verified too, and replaced by our
// argon2id form at the next successful login. At most MaxConcurrentHashes
// (default GOMAXPROCS, at least 2) hashes run at once, which bounds memory
// (19 MiB each) and keeps a login flood from starving the rest of the server.
// An unknown user is checked against a dummy argon2id hash so that it costs
// the same time as a known one. A disabled user with the right password gets
// ErrBadCredentials, like a wrong password.
//
// # Credential cache
//
// IMAP clients open several connections and log in on each. A verified
// outcome is remembered for CacheTTL (default 5 minutes, at most 10 000
// entries), keyed by HMAC-SHA256(account, password) under a random key made
// at Open, never by the password itself. An entry is used only while the
// user's row holds the same hash it was verified against, so SetPassword,
// SetPasswordHash or RemoveUser — from this process or from posthouse admin —
// take effect at once; disabled is read from the row at every login. Failed
// outcomes are remembered too: a client retrying a stale password does not
// cost a hash per retry. The price: while an entry lives, someone who can
// read this process's memory (key included) could test guesses against it at
// HMAC speed rather than argon2id speed. A cache hit answers in tens of microseconds instead
// of tens of milliseconds (see BenchmarkAuthenticate).
//
// # Roles
//
// users.role is "user" (the default) or "admin" (User.Admin, SetAdmin,
// `posthouse admin user add --admin`, `posthouse admin user role`). The
// role only opens the admin console; protocols ignore it.
//
// # App passwords
//
// A user may make up to 50 app passwords, one per device, each named
// (CreateAppPassword). We make the secret: 20 lowercase letters shown in
// five groups of four ("abcd-efgh-ijkl-mnop-qrst", 94 bits), easy to type
// on a phone, accepted with or without the dashes, with spaces, in any
// case. It is shown once. Authenticate (IMAP, POP3, SMTP AUTH,
// ManageSieve) accepts it in place of the account password;
// AuthenticateWeb never does, so a device's password cannot open the
// account's settings.
//
// Hash: the secret is random with at least 80 bits, so nobody can search
// its space however fast one guess is, and a slow hash would only make
// every IMAP connection pay for nothing. It is stored as HMAC-SHA256 under
// a random 16-byte salt per row (secretHash). A login whose password has
// the app password shape compares it with the user's app passwords (one
// indexed query and one HMAC each, microseconds) before the account
// password; anything else, and an app-password-shaped string that matches
// none (it may be an account password of 20 letters), goes on to the
// argon2id check. So a wrong password costs what it cost before, and a
// right app password costs no hash.
//
// Credential cache: app passwords are checked against the database at every
// login and never enter the cache, which keeps its meaning (outcomes of
// account password checks against one stored hash). Revoking
// (RevokeAppPassword, from this process or posthouse admin) therefore
// takes effect at the next login. Sessions already open stay open.
// Disabling the user stops its app passwords too.
//
// Each app password records its last use and the client address
// (LastUsed, LastRemote). The row is written only when the stored time is
// a minute old or more, so a phone opening ten IMAP connections costs one
// write, not ten.
//
// # Two-factor login
//
// Web logins may need a second factor: TOTP (RFC 6238: HMAC-SHA1, 6 digits,
// 30 s steps, one step of skew either way; written here on crypto/hmac in a
// page of code, checked against the RFC's test vectors). NewTOTPSecret
// makes a 160-bit secret, TOTPURI the otpauth:// URI for a QR code, and
// EnableTOTP stores it once the user has entered a correct code, with ten
// recovery codes (16 characters of lower-case base32 in groups of four, 80
// bits, stored like app passwords). The secret itself is stored as is
// (TOTP needs it to compute codes); the database file is 0600.
//
// VerifySecondFactor takes a TOTP code or a recovery code. Replay: the
// time step of the last accepted code is kept in users.totp_step, and a
// code of that step or an earlier one is refused, so a code observed over
// someone's shoulder is worthless once used. A conditional UPDATE lets
// only one of two racing logins use a code. A recovery code is deleted
// when used. Attempts are throttled like password logins (same limits,
// same code) under their own account key, so that an attacker who knows
// the password cannot reset the count of wrong codes by logging in with it
// in between. What the limits allow: an attacker with the password, many
// addresses and 10 failures already spent gets one code checked per
// AccountInterval (5 s), 17 280 a day, each with a 3 in 10⁶ chance: about
// 5 % a day, during which every attempt is logged. Addresses where the
// user passed the second factor are exempt from the per-account cap in
// memory only (forgotten at restart).
//
// TOTP never applies to IMAP, POP3, SMTP or ManageSieve: clients there
// cannot ask for a code. Those logins use the account password or app
// passwords; with Options.RequireAppPasswords ([auth]
// require_app_passwords), a user with TOTP on gets in only with app
// passwords there. That refusal is decided after the usual hash check, so
// it costs and answers like a wrong password, and the log says that the
// client used the account password.
//
// # Throttling
//
// Password guessing is limited per remote address and per account. Failure
// counters live in memory (per process; in PostgreSQL when the system
// tables do, see above) and count only distinct failed
// credentials (the same wrong password retried by a misconfigured phone
// counts once per window). An attempt counts as a failure from the moment
// it is admitted (and is forgotten again if it succeeds or is cancelled),
// so guesses sent in parallel over many connections cannot all slip in
// before the first one fails. Refused attempts are ErrThrottled (a
// temporary failure at every protocol edge), decided from the counters
// alone before the password is looked at, so a refusal says nothing about
// whether the password was right. Windows are tested with Options.Now.
//
//   - Per remote address (an IPv4 address, or an IPv6 /64): after
//     IPMaxFailures (10) distinct failures within IPWindow (10 minutes),
//     every attempt from it is refused until the oldest of those failures
//     leaves the window. TrustedNetworks are exempt.
//   - Per account, from any number of addresses: after AccountMaxFailures
//     (10) distinct failures within AccountWindow (1 hour), at most one
//     password check per AccountInterval (5 s) is made for the account, from
//     all addresses together: the first attempt after the slot frees is
//     checked, the others refused at once. A per-request delay would not do:
//     parallel requests overlap their waits, so the rate would grow with the
//     number of addresses and connections. Addresses known to the account
//     are exempt.
//   - Known addresses: an address (IPv4, or IPv6 /64) from which the account
//     logged in successfully within KnownAddressTTL (30 days) is exempt from
//     the per-account cap, so the real user at home, at work or behind their
//     webmail is never shut out by someone else's guessing (the per-address
//     lockout still applies to it). They are kept in the known_addresses
//     table, so a restart forgets none: at most 16 per user (the most
//     recent), 100 000 in memory, written once per address per day, removed
//     with the user. The price: while an attack runs, the user on an address
//     the account never logged in from (a new network) gets a temporary
//     failure, like the attacker.
//   - TrustedNetworks (default loopback, where a webmail on the same host
//     logs in for all its users): never locked out per address, since one
//     user's typos would shut out everyone behind it; still subject to the
//     per-account cap, and a login from there makes no address known (it
//     speaks for many clients). A proxy tells the real client's address
//     instead where the protocol allows it (imapd honours the ID field
//     x-originating-ip from trusted networks before login); auth then
//     applies every rule to that address.
//   - A successful login from an address forgets that address's failures for
//     that account, in both counters.
//
// BenchmarkDistributedGuessing (40 addresses, 8 guesses in flight from
// each, real argon2id on 2 cores, 30 s): with a per-account delay (250 ms
// doubling to 4 s) in place of the cap, 12.9 guesses/s were checked against
// one account (24/s when each refused guesser took a fresh IPv6 /64: only
// the hashing cores bounded it) and the owner's logins waited 3.4 s each;
// with the cap, 0.53/s (10, then one per 5 s) in both cases, and the owner
// from a known address is not slowed.
//
// The per-address and per-account maps hold at most 100 000 keys and 64
// failures each; beyond that arbitrary keys are dropped (an attack spread
// over more keys than we remember gets less throttling, never more memory).
// Throttling starts are logged at Warn (once per episode per address or
// account), successes and failures at Info with user and remote.
//
// # Resolution
//
// Resolve tries, in order: a user; an alias; for user+tag@domain the same
// two for user@domain; the domain's catch-all "@domain". Aliases expand
// recursively up to MaxAliasDepth, loops are cut, local targets become
// mailstore accounts and foreign ones are returned for the queue. Disabled
// users still receive mail: disabling stops logins, not delivery. RFC 5321
// §4.5.1 wants postmaster at every domain: postmaster@domain with nothing
// defined for it, and the bare "postmaster", go to the first domain (by
// name) that does define one, so a single postmaster can serve them all.
//
// # Sending as
//
// CanSendAs is the one rule for what a user may put as sender on
// submission (MAIL FROM, and the message's From and Sender): their own
// address, an alias whose expansion reaches them, or a send-as grant
// (AddSendAs, `posthouse admin user send-as`), each with its +tag forms. A
// grant names one address, in any domain (a user's address at another
// provider), or "@domain" for every address of a domain (a shared
// mailbox's delegate, a help desk, a system that sends as many names); a
// domain grant does not cover subdomains. A catch-all alias grants
// nothing: receiving everyone's stray mail is not sending as everyone.
package auth
