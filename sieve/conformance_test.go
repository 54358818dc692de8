package sieve

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// confCase is one row of the conformance table: a script run over a
// message and an envelope, and the result expected. compileErr or runErr
// expect a failure whose text contains it.
type confCase struct {
	name       string
	script     string
	msg        string // msgPlain when empty
	env        Env
	want       []string
	compileErr string
	runErr     error
	// notDovecot says why sieve-test is not asked about this case.
	notDovecot string
}

const rfc5228Example = `#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
`

var confCases = []confCase{
	// RFC 5228: the base language.
	{name: "empty script keeps", script: ``, want: []string{"implicit keep"}},
	{name: "rfc5228 §9 example, not to me", script: rfc5228Example, want: []string{"fileinto spam"}},
	{name: "rfc5228 §9 example, company mail", script: rfc5228Example,
		msg: "From: boss@example.com\r\nTo: me@example.com\r\nSubject: hi\r\n\r\nx\r\n", want: []string{"keep"}},
	{name: "rfc5228 §9 example, list", script: rfc5228Example,
		msg: "Sender: owner-ietf-mta-filters@imc.org\r\nTo: me@example.com\r\n\r\nx\r\n", want: []string{"fileinto filter"}},
	{name: "rfc5228 §9 example, personal", script: rfc5228Example,
		msg: "From: friend@else.example\r\nTo: other@else.example\r\nCc: me@example.com\r\nSubject: hi\r\n\r\nx\r\n", want: []string{"fileinto personal"}},
	{name: "discard cancels implicit keep", script: `discard;`, want: []string{"discard"}},
	{name: "stop ends the script", script: `require "fileinto"; fileinto "a"; stop; fileinto "b";`, want: []string{"fileinto a"}},
	{name: "keep twice stores once", script: `keep; keep;`, want: []string{"keep"}},
	{name: "fileinto INBOX is keep", script: `require "fileinto"; keep; fileinto "INBOX";`, want: []string{"keep"}},
	{name: "fileinto twice stores once", script: `require "fileinto"; fileinto "a"; fileinto "a";`, want: []string{"fileinto a"}},
	{name: "redirect", script: `redirect "Roadrunner <rr@acme.example.com>";`, want: []string{"redirect rr@acme.example.com"}},
	{name: "redirect twice goes once", script: `redirect "a@example.org"; redirect "a@EXAMPLE.org"; redirect "A@example.org";`, want: []string{"redirect a@example.org", "redirect A@example.org"}},
	{name: "header :is is case-insensitive by default", script: `require "fileinto"; if header :is "subject" "i HAVE a present for YOU" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header i;octet is case-sensitive", script: `require "fileinto"; if header :comparator "i;octet" :is "subject" "i HAVE a present for YOU" { fileinto "x"; }`, want: []string{"implicit keep"}},
	{name: "header :contains over several fields", script: `require "fileinto"; if header :contains ["x-nothing", "received"] "client" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header :matches with ? and escapes", script: `require "fileinto"; if header :matches "x-caffeine" "C?H10N4O\\2" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header decodes encoded words", msg: msgList, script: `require "fileinto"; if header :contains "subject" "Résumé" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "address :domain", script: `require "fileinto"; if address :domain :is "from" "DESERT.example.org" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "address :localpart in a group", script: `require "fileinto"; if address :localpart :is "cc" "b" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "address :all ignores the display name", script: `require "fileinto"; if address :is "from" "coyote@desert.example.org" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "address on a non-address field is an error", script: `if address "subject" "x" { keep; }`, compileErr: "not a field that holds addresses"},
	{name: "exists needs every field", script: `require "fileinto"; if exists ["from", "x-caffeine"] { fileinto "a"; } if exists ["from", "x-nope"] { fileinto "b"; }`, want: []string{"fileinto a"}},
	{name: "size", script: `require "fileinto"; if size :over 100 { fileinto "big"; } if size :under 1K { fileinto "small"; }`, want: []string{"fileinto big", "fileinto small"}},
	{name: "not, allof, anyof", script: `require "fileinto"; if allof (not false, anyof (false, true), true) { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "elsif and else", script: `require "fileinto"; if false { fileinto "a"; } elsif false { fileinto "b"; } else { fileinto "c"; }`, want: []string{"fileinto c"}},
	{name: "envelope", script: `require ["envelope", "fileinto"]; if envelope :is "from" "sender@example.com" { fileinto "a"; } if envelope :domain :is "to" "example.net" { fileinto "b"; }`, want: []string{"fileinto a", "fileinto b"}},
	{name: "envelope null sender", env: Env{Envelope: Envelope{From: "<>"}}, script: `require ["envelope", "fileinto"]; if envelope :is "from" "" { fileinto "a"; }`, want: []string{"fileinto a"}},
	{name: "multiline strings", script: "require \"reject\";\nreject text:\nline one\n..dotted\n.\n;", want: []string{"reject line one\n.dotted\n"}, notDovecot: "reject with a multi-line reason: sieve-test prints it differently"},
	{name: "unknown command", script: `frobnicate;`, compileErr: `unknown command "frobnicate"`},
	{name: "fileinto without require", script: `fileinto "x";`, compileErr: `requires the "fileinto" extension`},
	{name: "unknown extension", script: `require "nonsense";`, compileErr: `unsupported extension "nonsense"`},
	{name: "require after a command", script: `keep; require "fileinto";`, compileErr: "require must come before"},
	{name: "missing semicolon names line and column", script: "keep;\n  keep\n", compileErr: "line 3, column 1"},
	{name: "trailing comma in test list (RFC 5260 §6.1 erratum)", script: `if anyof(true, ) { keep; }`, compileErr: "expected a test"},
	{name: "tag given twice", script: `if header :is :is "a" "b" { keep; }`, compileErr: "given twice"},
	{name: "unterminated string", script: `if header :is "a`, compileErr: "unterminated string"},
	{name: "bracket comment", script: "/* a comment\n * over lines */ discard;", want: []string{"discard"}},

	// encoded-character (RFC 5228 §2.4.2.4).
	{name: "encoded-character", script: `require ["encoded-character", "fileinto"]; if header :contains "subject" "${hex:70 72 65 73 65 6e 74}" { fileinto "${unicode:52}x"; }`, want: []string{"fileinto Rx"}},
	{name: "encoded-character not required stays literal", script: `require "fileinto"; fileinto "${hex:41}";`, want: []string{"fileinto ${hex:41}"}},

	// reject, ereject (RFC 5429).
	{name: "reject", script: `require "reject"; reject "go away";`, want: []string{"reject go away"}},
	{name: "ereject", script: `require "ereject"; ereject "go away";`, want: []string{"ereject go away"}, notDovecot: "sieve-test reports ereject like reject"},
	{name: "reject with fileinto fails", script: `require ["reject", "fileinto"]; fileinto "x"; reject "no";`, runErr: ErrConflict},
	{name: "two rejects fail", script: `require "reject"; reject "a"; reject "b";`, runErr: ErrConflict},

	// fileinto and copy (RFC 3894).
	{name: "fileinto :copy keeps the implicit keep", script: `require ["fileinto", "copy"]; fileinto :copy "a";`, want: []string{"fileinto a :copy", "implicit keep"}},
	{name: "redirect :copy", script: `require "copy"; redirect :copy "a@example.org";`, want: []string{"redirect a@example.org :copy", "implicit keep"}},
	{name: ":copy without require", script: `redirect :copy "a@example.org";`, compileErr: `requires the "copy" extension`},

	// imap4flags (RFC 5232).
	{name: "imap4flags internal variable and implicit keep", script: `require "imap4flags"; setflag "\\Seen"; addflag ["\\Flagged", "$Work \\seen"]; removeflag "\\Flagged";`, want: []string{"implicit keep flags=\\Seen,$Work"}},
	{name: "fileinto :flags overrides", script: `require ["imap4flags", "fileinto"]; addflag "\\Seen"; fileinto :flags "\\Flagged" "x"; fileinto "y";`, want: []string{"fileinto x flags=\\Flagged", "fileinto y flags=\\Seen"}},
	{name: "hasflag", script: `require ["imap4flags", "fileinto"]; addflag "A B"; if hasflag :is "b" { fileinto "x"; } if hasflag ["c"] { fileinto "y"; }`, want: []string{"fileinto x flags=A,B"}},
	{name: "flags in a variable", script: `require ["imap4flags", "variables", "fileinto", "relational"]; setflag "f" "\\Answered"; addflag "f" "$X"; if hasflag :count "eq" "f" "2" { fileinto :flags "${f}" "x"; }`, want: []string{"fileinto x flags=\\Answered,$X"}},

	// body (RFC 5173).
	{name: "body :text decodes quoted-printable and charsets", msg: msgMIME, script: `require ["body", "fileinto"]; if body :contains "Café at noon" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "body :raw sees the encoding", msg: msgMIME, script: `require ["body", "fileinto"]; if body :raw :contains "Caf=E9" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "body :content decodes base64", msg: msgMIME, script: `require ["body", "fileinto"]; if body :content "application/octet-stream" :contains "rocket" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "body :content text matches subtypes", msg: msgMIME, script: `require ["body", "fileinto"]; if body :content "text" :contains "puddy" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "body :text leaves attachments out", msg: msgMIME, script: `require ["body", "fileinto"]; if body :text :contains "rocket" { fileinto "x"; }`, want: []string{"implicit keep"}},
	{name: "body of a simple message", script: `require ["body", "fileinto"]; if body :contains "birdseed" { fileinto "x"; }`, want: []string{"fileinto x"}},

	// variables (RFC 5229).
	{name: "rfc5229 match variables", msg: msgList, script: `require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}`, want: []string{"fileinto INBOX.lists.sieve"}},
	{name: "rfc5229 match variables are non-greedy", script: `require ["fileinto", "variables"];
if address :matches "To" "*+*@*" { fileinto "${1}-${2}-${3}"; }`, want: []string{"fileinto roadrunner-birds-acme.example.com"}},
	{name: "rfc5229 §3.1 quoting", script: `require ["variables", "fileinto"]; set "foo" "F"; fileinto "${fo\o}|${fo\\o}|\${foo}|\\${foo}";`, want: []string{`fileinto F|${fo\o}|F|\F`}},
	{name: "rfc5229 §3 examples", script: `require ["variables", "fileinto"]; set "company" "ACME"; fileinto "${full}|${company}|${BAD${Company}|${President, ${Company} Inc.}|&%${}!|${doh!}";`, want: []string{"fileinto |ACME|${BADACME|${President, ACME Inc.}|&%${}!|${doh!}"}},
	{name: "rfc5229 encoded characters before variables", script: `require ["encoded-character", "variables", "fileinto"]; set "name" "Ethelbert"; if string :is "dear${hex:20 24 7b 4e}ame}" "dear Ethelbert" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "rfc5229 modifiers", script: `require ["variables", "fileinto"];
set "a" "juMBlEd lETteRS";
set :length "b" "${a}";
set :lower "c" "${a}";
set :upperfirst "d" "${a}";
set :upperfirst :lower "e" "${a}";
set :quotewildcard "f" "Rock*";
fileinto "${b}|${c}|${d}|${e}|${f}";`, want: []string{`fileinto 15|jumbled letters|JuMBlEd lETteRS|Jumbled letters|Rock\*`}},
	{name: "modifiers of one precedence conflict", script: `require "variables"; set :lower :upper "a" "b";`, compileErr: "same precedence"},
	{name: "string test", script: `require ["variables", "fileinto"]; set "state" "${state} pending"; if string :matches " ${state} " "* pending *" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "string :count ignores empty strings", script: `require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"]; if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "match variable out of range", script: `require ["variables", "fileinto"]; fileinto "${10}";`, compileErr: "out of range", notDovecot: "Dovecot has match variables past 9"},
	{name: "set of a match variable is an error", script: `require "variables"; set "1" "x";`, compileErr: "invalid variable name"},
	{name: "unknown namespace", script: `require ["variables", "fileinto"]; fileinto "${env.x}";`, compileErr: "unknown variable namespace"},

	// vacation (RFC 5230) and vacation-seconds (RFC 6131).
	{name: "vacation", script: `require "vacation"; vacation :days 3 :addresses "roadrunner+birds@acme.example.com" "gone";`,
		want: []string{"implicit keep", `vacation to=sender@example.com from=me@example.net subject="Auto: I have a present for you" period=72h0m0s`}},
	{name: "vacation rfc5230 §4.2 example", msg: "From: coyote@desert.example.org\r\nTo: me@example.net\r\nSubject: Cyrus bug\r\n\r\nx\r\n",
		script: `require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}`, want: []string{"implicit keep", `vacation to=sender@example.com from=me@example.net subject="Auto: Cyrus bug" period=168h0m0s`}},
	{name: "vacation days clamped to the minimum", script: `require "vacation"; vacation :days 0 :subject "Away" :from "Me <me@example.net>" "gone";`,
		want: []string{"implicit keep", `vacation to=sender@example.com from=Me <me@example.net> subject="Away" period=24h0m0s`}},
	{name: "vacation-seconds", script: `require "vacation-seconds"; vacation :seconds 1800 "gone";`,
		want: []string{"implicit keep", `vacation to=sender@example.com from=me@example.net subject="Auto: I have a present for you" period=24h0m0s`}, notDovecot: "site minimum differs"},
	{name: "vacation not to list mail", msg: msgList, script: `require "vacation"; vacation "gone";`,
		want: []string{"implicit keep", `vacation to=sender@example.com from=me@example.net subject="Auto: [sieve] Re: Résumé of the draft" period=168h0m0s skip=list mail (list-id)`}, notDovecot: vacationChecks},
	{name: "vacation not to the null sender", env: Env{Envelope: Envelope{From: "<>"}}, script: `require "vacation"; vacation "gone";`,
		want: []string{"implicit keep", `vacation to= from=me@example.net subject="Auto: I have a present for you" period=168h0m0s skip=null sender`}},
	{name: "vacation not when not addressed to me", env: Env{Envelope: Envelope{To: "other@example.net"}}, script: `require "vacation"; vacation "gone";`,
		want: []string{"implicit keep", `vacation to=sender@example.com from=other@example.net subject="Auto: I have a present for you" period=168h0m0s skip=not addressed to the recipient`}, notDovecot: vacationChecks},
	{name: "vacation twice fails", script: `require "vacation"; vacation "a"; vacation "b";`, runErr: ErrConflict},
	{name: "vacation with reject fails", script: `require ["vacation", "reject"]; reject "x"; vacation "a";`, runErr: ErrConflict},
	{name: ":seconds needs vacation-seconds", script: `require "vacation"; vacation :seconds 5 "a";`, compileErr: "vacation-seconds"},

	// relational (RFC 5231).
	{name: "relational :count on addresses", script: `require ["relational", "comparator-i;ascii-numeric", "fileinto"]; if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "5" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "relational :count on fields", script: `require ["relational", "comparator-i;ascii-numeric", "fileinto"]; if header :count "eq" :comparator "i;ascii-numeric" "received" "2" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "relational :value", script: `require ["relational", "fileinto"]; if header :value "gt" "x-caffeine" "C7" { fileinto "x"; } if header :value "lt" "x-caffeine" "C7" { fileinto "y"; }`, want: []string{"fileinto x"}},
	{name: "ascii-numeric :value", script: `require ["relational", "comparator-i;ascii-numeric", "fileinto", "variables"]; if string :value "gt" :comparator "i;ascii-numeric" "100" "99" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "ascii-numeric without require", script: `if header :comparator "i;ascii-numeric" :is "a" "1" { keep; }`, compileErr: "comparator-i;ascii-numeric"},
	{name: "ascii-numeric with :contains", script: `require "comparator-i;ascii-numeric"; if header :comparator "i;ascii-numeric" :contains "a" "1" { keep; }`, compileErr: "cannot be used with this match type"},

	// subaddress (RFC 5233).
	{name: "subaddress :user and :detail", script: `require ["subaddress", "fileinto"]; if address :user :is "to" "roadrunner" { fileinto "u"; } if address :detail :is "to" "birds" { fileinto "d"; }`, want: []string{"fileinto u", "fileinto d"}},
	{name: "subaddress :detail without separator does not match", script: `require ["subaddress", "fileinto"]; if address :detail :matches "from" "*" { fileinto "d"; }`, want: []string{"implicit keep"}},
	{name: "subaddress in the envelope", env: Env{Envelope: Envelope{To: "me+lists@example.net"}}, script: `require ["subaddress", "envelope", "fileinto", "variables"]; if envelope :detail :matches "to" "*" { fileinto "${1}"; }`, want: []string{"fileinto lists"}},

	// date and index (RFC 5260).
	{name: "rfc5260 date with :originalzone", script: `require ["date", "relational", "fileinto"];
if allof(header :contains "from" "coyote",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "23")
{ fileinto "urgent"; }`, want: []string{"fileinto urgent"}},
	{name: "rfc5260 received weekday", script: `require ["date", "relational", "fileinto"];
if anyof(date :is "received" "weekday" "0",
         date :is "received" "weekday" "5")
{ fileinto "weekend"; }`, want: []string{"fileinto weekend"}},
	{name: "date in the local zone by default", script: `require ["date", "fileinto", "variables"]; if date :matches "date" "iso8601" "*" { fileinto "${1}"; }`, want: []string{"fileinto 2024-03-15T03:15:30+01:00"}},
	{name: "date :zone and parts", script: `require ["date", "fileinto", "variables"];
if date :zone "+0000" :matches "date" "date" "*" { set "d" "${1}"; }
if date :zone "+0000" :matches "date" "time" "*" { set "t" "${1}"; }
if date :zone "-0830" :matches "date" "zone" "*" { set "z" "${1}"; }
if date :zone "+0000" :matches "date" "julian" "*" { set "j" "${1}"; }
if date :zone "+0000" :matches "date" "std11" "*" { set "s" "${1}"; }
fileinto "${d} ${t} ${z} ${j} ${s}";`, want: []string{"fileinto 2024-03-15 02:15:30 -0830 60384 Fri, 15 Mar 2024 02:15:30 +0000"}},
	{name: "rfc5260 §6.1 index", script: `require ["date", "relational", "index", "fileinto"];
if date :value "gt" :index 2 :zone "-0500" "received"
        "iso8601" "2007-02-26T09:00:00-05:00"
{ fileinto "aftercutoff"; }`, want: []string{"fileinto aftercutoff"}},
	{name: "header :index :last", script: `require ["index", "fileinto"]; if header :index 1 :last :contains "received" "client" { fileinto "x"; } if header :index 1 :contains "received" "client" { fileinto "y"; }`, want: []string{"fileinto x"}},
	{name: ":last without :index", script: `require "index"; if header :last :is "a" "b" { keep; }`, compileErr: ":last without :index"},
	{name: "date of a field that is not a date", script: `require ["date", "fileinto"]; if date :matches "subject" "year" "*" { fileinto "x"; }`, want: []string{"implicit keep"}},
	{name: "currentdate", script: `require ["date", "relational", "fileinto"];
if allof(currentdate :value "ge" "date" "2024-03-01",
         currentdate :value "le" "date" "2024-03-31",
         currentdate :is "weekday" "5")
{ fileinto "march"; }`, want: []string{"fileinto march"}, notDovecot: "sieve-test runs at the real time"},
	{name: "rfc5260 currentdate folder", script: `require ["date", "variables", "fileinto"];
if currentdate :matches "month" "*" { set "month" "${1}"; }
if currentdate :matches "year"  "*" { set "year"  "${1}"; }
fileinto "${month}-${year}";`, want: []string{"fileinto 03-2024"}, notDovecot: "sieve-test runs at the real time"},
	{name: "bad zone", script: `require "date"; if currentdate :zone "CET" "year" "2024" { keep; }`, compileErr: "invalid time zone", notDovecot: "Dovecot checks the zone at run time"},

	// mailbox (RFC 5490).
	{name: "mailboxexists and :create", env: Env{Mailboxes: fakeMailboxes{"Work"}}, script: `require ["mailbox", "fileinto"]; if mailboxexists "Work" { fileinto "Work"; } if not mailboxexists ["Work", "Play"] { fileinto :create "Play"; }`,
		want: []string{"fileinto Work", "fileinto Play :create"}, notDovecot: "mailboxes differ"},

	// include (RFC 6609).
	{name: "include and return", env: Env{Scripts: fakeScripts{"personal/sub": `require ["fileinto", "include"]; fileinto "sub"; return; fileinto "never";`}},
		script: `require ["include", "fileinto"]; include "sub"; fileinto "after";`, want: []string{"fileinto sub", "fileinto after"}},
	{name: "include :global and globals", env: Env{Scripts: fakeScripts{"global/g": `require ["include", "variables"]; global "box"; set "box" "shared";`}},
		script: `require ["include", "variables", "fileinto"]; global "box"; include :global "g"; fileinto "${box}";`, want: []string{"fileinto shared"}},
	{name: "include :once", env: Env{Scripts: fakeScripts{"personal/c": `require "fileinto"; fileinto "c";`}},
		script: `require "include"; include :once "c"; include :once "c";`, want: []string{"fileinto c"}},
	{name: "stop in an include stops all", env: Env{Scripts: fakeScripts{"personal/s": `stop;`}},
		script: `require ["include", "fileinto"]; include "s"; fileinto "after";`, want: []string{"implicit keep"}},
	{name: "recursive include fails", env: Env{Scripts: fakeScripts{"personal/a": `require "include"; include "b";`, "personal/b": `require "include"; include "a";`}},
		script: `require "include"; include "a";`, runErr: ErrIncludeLoop},
	{name: "missing include fails", script: `require "include"; include "none";`, runErr: ErrNoSuchScript},
	{name: "missing :optional include is fine", script: `require "include"; include :optional "none";`, want: []string{"implicit keep"}},
	{name: "include name must be constant", script: `require ["include", "variables"]; include "${x}";`, compileErr: "constant"},

	// duplicate (RFC 7352).
	{name: "rfc7352 example 1, first time", script: `require ["duplicate", "fileinto", "mailbox"];
if duplicate {
  fileinto :create "Trash/Duplicate";
}`, want: []string{"implicit keep"}},
	{name: "rfc7352 example 1, seen", env: Env{Duplicates: fakeDups{dupID("", "<present-1@desert.example.org>"): true}}, script: `require ["duplicate", "fileinto", "mailbox"];
if duplicate {
  fileinto :create "Trash/Duplicate";
}`, want: []string{"fileinto Trash/Duplicate :create"}, notDovecot: "needs a tracking list"},
	{name: "rfc7352 example 2", env: Env{Duplicates: fakeDups{dupID("", "disk full"): true}}, msg: "Subject: ALERT: disk full\r\n\r\n", script: `require ["duplicate", "variables", "imap4flags",
  "fileinto"];
if header :matches "subject" "ALERT: *" {
  if duplicate :seconds 60 :uniqueid "${1}" {
    setflag "\\seen";
  }
  fileinto "Alerts";
}`, want: []string{"fileinto Alerts flags=\\seen"}, notDovecot: "needs a tracking list"},
	{name: "duplicate without message-id is false", msg: "Subject: x\r\n\r\n", env: Env{Duplicates: fakeDups{}}, script: `require ["duplicate", "fileinto"]; if duplicate { discard; }`, want: []string{"implicit keep"}},
	{name: "duplicate :header and :uniqueid conflict", script: `require "duplicate"; if duplicate :header "x" :uniqueid "y" { keep; }`, compileErr: "conflicting"},

	// editheader (RFC 5293).
	{name: "rfc5293 addheader example", script: `require ["editheader"];
/* Don't redirect if we already redirected */
if not header :contains "X-Sieve-Filtered"
        ["<kim@job.example.com>", "<kim@home.example.com>"]
{
        addheader "X-Sieve-Filtered" "<kim@job.example.com>";
        redirect "kim@home.example.com";
}`, want: []string{"redirect kim@home.example.com", "addtop X-Sieve-Filtered: <kim@job.example.com>"}},
	{name: "edits are visible to later tests", script: `require ["editheader", "fileinto"]; addheader :last "X-A" "1"; deleteheader "x-caffeine"; if header :is "x-a" "1" { fileinto "a"; } if not exists "x-caffeine" { fileinto "b"; }`,
		want: []string{"fileinto a", "fileinto b", "addbottom X-A: 1", "delete X-Caffeine#1"}},
	{name: "deleteheader :index and patterns", script: `require "editheader"; deleteheader :index 1 :last "received"; deleteheader :matches "subject" "*present*"; deleteheader "x-nothing";`,
		want: []string{"implicit keep", "delete Subject#1"}},
	{name: "protected fields are left alone", script: `require "editheader"; deleteheader "received"; addheader "Auto-Submitted" "no"; deleteheader "Auto-Submitted";`, want: []string{"implicit keep"}},
	{name: "added then deleted is not listed", script: `require "editheader"; addheader "X-B" "1"; deleteheader "x-b";`, want: []string{"implicit keep"}},
	{name: "addheader encodes non-ASCII", script: `require "editheader"; addheader "X-Note" "Café";`, want: []string{"implicit keep", "addtop X-Note: =?utf-8?q?Caf=C3=A9?="}},
	{name: "addheader bad name", script: `require "editheader"; addheader "X Bad" "1";`, compileErr: "invalid field name"},

	// spamtest, spamtestplus (RFC 5235).
	{name: "rfc5235 spamtest", script: `require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0"
{
    fileinto "INBOX.unclassified";
}
elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3"
{
    fileinto "INBOX.spam-trap";
}`, want: []string{"fileinto INBOX.spam-trap"}},
	{name: "spamtest not tested", msg: "Subject: x\r\n\r\n", script: `require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }`, want: []string{"fileinto INBOX.unclassified"}},
	{name: "spamtestplus :percent", script: `require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "95" { fileinto "spam"; }
if spamtest :percent :count "eq" :comparator "i;ascii-numeric" "1" { fileinto "tested"; }`, want: []string{"fileinto spam", "fileinto tested"}},
	{name: ":percent needs spamtestplus", script: `require "spamtest"; if spamtest :percent "1" { keep; }`, compileErr: "spamtestplus"},

	// regex (draft-ietf-sieve-regex).
	{name: "regex with match variables", script: `require ["regex", "variables", "fileinto"]; if header :regex "from" "([a-z]+)@([a-z.]+)" { fileinto "${1} at ${2}"; }`, want: []string{"fileinto coyote at desert.example.org"}},
	{name: "regex is case-insensitive with casemap", script: `require ["regex", "fileinto"]; if header :regex "subject" "^i HAVE" { fileinto "x"; } if header :regex :comparator "i;octet" "subject" "^i HAVE" { fileinto "y"; }`, want: []string{"fileinto x"}},
	{name: "bad regex is a compile error", script: `require "regex"; if header :regex "subject" "(" { keep; }`, compileErr: "bad regular expression"},
	{name: "quoteregex", script: `require ["regex", "variables", "fileinto"]; set :quoteregex "q" "a.b*"; if string :regex "xa.b*y" "${q}" { fileinto "x"; }`, want: []string{"fileinto x"}, notDovecot: "sieve-test lacks the regex extension by default"},
}

// vacationChecks: sieve-test prints a vacation action before the checks
// Dovecot makes when it sends (list mail, recipient not addressed).
const vacationChecks = "sieve-test lists the vacation before its send-time checks"

// dupID is the id Posthouse records for a unique id and handle.
func dupID(handle, id string) string {
	t := &duplicateTest{uniqueID: &str{raw: id}}
	if handle != "" {
		t.handle = &str{raw: handle}
	}
	r := &run{ctx: context.Background(), env: &Env{}, opts: &Options{DuplicatePeriod: time.Hour, MaxSteps: 100}}
	t.eval(r)
	return r.dups[0].ID
}

func runCase(t testing.TB, tc confCase) (Result, error, error) {
	s, cerr := Compile([]byte(tc.script), Options{})
	if cerr != nil {
		return Result{}, cerr, nil
	}
	msg := tc.msg
	if msg == "" {
		msg = msgPlain
	}
	res, err := s.Run(context.Background(), testEnv(t, msg, tc.env))
	return res, nil, err
}

func TestConformance(t *testing.T) {
	for _, tc := range confCases {
		t.Run(tc.name, func(t *testing.T) {
			res, cerr, err := runCase(t, tc)
			if tc.compileErr != "" {
				if cerr == nil || !strings.Contains(cerr.Error(), tc.compileErr) {
					t.Fatalf("compile error = %v, want one containing %q", cerr, tc.compileErr)
				}
				var e *Error
				if !errors.As(cerr, &e) || e.Line < 1 || e.Column < 1 {
					t.Fatalf("compile error %v has no position", cerr)
				}
				return
			}
			if cerr != nil {
				t.Fatalf("compile: %v", cerr)
			}
			if tc.runErr != nil {
				if !errors.Is(err, tc.runErr) {
					t.Fatalf("run error = %v, want %v", err, tc.runErr)
				}
				if !res.Failed || !res.ImplicitKeep || len(res.Actions) != 0 {
					t.Fatalf("failed run result = %+v, want implicit keep only", res)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := describeResult(res); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("result:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}
