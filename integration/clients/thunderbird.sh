#!/usr/bin/env bash
# Real Thunderbird sets itself up against Posthouse and sends mail.
#
#   sudo integration/clients/thunderbird.sh [--binary PATH] [OUTDIR]
#
# --binary runs that posthouse instead of building one from this tree.
# integration/thunderbird_test.go runs it when POSTHOUSE_THUNDERBIRD=1.
#
# Needs root (network and mount namespaces; ports 25, 80, 143, 465, 587,
# 993 on loopback), Go, python3, and the Debian packages thunderbird, xvfb,
# libnss3-tools, openssl, iproute2. Everything runs in a private network
# namespace with only loopback up; /etc/hosts is replaced inside a private
# mount namespace so that posthouse.test and autoconfig.example.test are
# 127.0.0.1. A test CA signs Posthouse's certificate and is trusted in the
# fresh Thunderbird profile (certutil into cert9.db).
#
# What it proves (tbdrive.py drives Thunderbird over Marionette):
#   - Account Hub: name, address, Continue; Thunderbird fetches
#     http://autoconfig.example.test/mail/config-v1.1.xml from Posthouse's
#     http listener (the only source left on: ISPDB and guessing are off);
#     IMAP is chosen, the password typed, Continue: Thunderbird logs in to
#     IMAP and SMTP and creates the account.
#   - The inbox lists a message delivered over SMTP before the setup.
#   - A message written in the compose window and sent goes through
#     Thunderbird's SMTP to Posthouse's submission port and is found over
#     IMAP in the recipient's INBOX and in the sender's Sent folder.
# Screenshots, Thunderbird's and Posthouse's logs go to OUTDIR (default: a
# new directory under /tmp). Exit status 0 means every step passed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ -z "${THUNDERBIRD_SH_INNER:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "thunderbird.sh: run as root (it needs network and mount namespaces)" >&2
		exit 2
	fi
	for tool in thunderbird Xvfb certutil openssl python3 ip unshare; do
		command -v "$tool" >/dev/null || {
			echo "thunderbird.sh: $tool is missing (apt-get install thunderbird xvfb libnss3-tools openssl iproute2)" >&2
			exit 2
		}
	done
	binary=""
	if [ "${1:-}" = --binary ]; then
		binary="$2"
		shift 2
	fi
	out="${1:-$(mktemp -d /tmp/posthouse-thunderbird.XXXXXX)}"
	mkdir -p "$out"
	out="$(cd "$out" && pwd)"
	if [ -n "$binary" ]; then
		cp "$binary" "$out/posthouse"
	else
		echo "thunderbird.sh: building posthouse; output in $out"
		(cd "$repo" && CGO_ENABLED=1 go build -o "$out/posthouse" ./cmd/posthouse)
	fi
	start=$(date +%s)
	set +e
	THUNDERBIRD_SH_INNER=1 unshare -n -m bash "$0" "$out"
	rc=$?
	set -e
	echo "thunderbird.sh: $([ $rc = 0 ] && echo PASS || echo "FAIL (exit $rc)") in $(($(date +%s) - start))s; screenshots and logs in $out"
	exit $rc
fi

# Inside the namespaces from here on.
unset THUNDERBIRD_SH_INNER
out="$1"
ip link set lo up
work="$out/work"
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

domain=example.test
hostname=posthouse.test
alice=alice@$domain
alice_pw='correct horse battery'
bob=bob@$domain
bob_pw='staple tree'

# Names resolve through a private /etc/hosts (this mount namespace only).
cat >"$work/hosts" <<EOF
127.0.0.1 localhost
127.0.0.1 $hostname autoconfig.$domain $domain
EOF
mount --bind "$work/hosts" /etc/hosts

# Test CA and the server certificate it signs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=Posthouse Thunderbird test CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=$hostname" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$hostname" >"$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
	-days 2 -extfile "$work/ext.cnf" -out "$work/server.crt" 2>/dev/null
cat "$work/server.crt" "$work/ca.pem" >"$work/chain.pem"

cat >"$work/posthouse.toml" <<EOF
hostname = "$hostname"
data_dir = "$work/data"

[listen]
smtp = "127.0.0.1:25"
submission = "127.0.0.1:587"
submissions = "127.0.0.1:465"
imap = "127.0.0.1:143"
imaps = "127.0.0.1:993"
pop3 = "127.0.0.1:110"
pop3s = "127.0.0.1:995"
http = "127.0.0.1:80"
https = ""

[tls]
cert_file = "$work/chain.pem"
key_file = "$work/server.key"

[dns]
resolver = "127.0.0.1:53"

[log]
level = "debug"
EOF
ph="$out/posthouse"
"$ph" admin --config "$work/posthouse.toml" domain add "$domain" >/dev/null
printf '%s\n' "$alice_pw" | "$ph" admin --config "$work/posthouse.toml" user add --password-stdin "$alice" >/dev/null
printf '%s\n' "$bob_pw" | "$ph" admin --config "$work/posthouse.toml" user add --password-stdin "$bob" >/dev/null
"$ph" serve --config "$work/posthouse.toml" >"$out/posthouse.log" 2>&1 &
pids+=($!)
# Wait until every listener serves (reads the greeting and says goodbye, so
# Posthouse logs an ordinary disconnect).
python3 - "$work/ca.pem" "$hostname" <<'PY'
import socket, ssl, sys, time
ca, host = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
deadline = time.time() + 30
for port, tls, bye in ((80, False, None), (25, False, b"QUIT\r\n"), (587, False, b"QUIT\r\n"),
                       (465, True, b"QUIT\r\n"), (993, True, b"a LOGOUT\r\n")):
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            if tls:
                c = ctx.wrap_socket(c, server_hostname=host)
            if bye:
                c.recv(512)
                c.sendall(bye)
                c.recv(512)
            c.close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"posthouse does not serve port {port}")
            time.sleep(0.1)
PY

# A message for Alice, delivered over SMTP before Thunderbird exists: Bob
# submits it on port 587 (STARTTLS, AUTH). The MTA port would check the
# sender's SPF and DMARC, and no DNS answers in this namespace.
inbox_subject="Welcome to Posthouse $(date +%s)"
python3 - "$bob" "$bob_pw" "$alice" "$inbox_subject" "$work/ca.pem" "$hostname" <<'PY'
import smtplib, ssl, sys
frm, pw, to, subject, ca, host = sys.argv[1:]
msg = (f"From: Bob <{frm}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
       "Message-ID: <welcome@example.test>\r\n\r\n"
       "Delivered over SMTP before Thunderbird was set up.\r\n")
with smtplib.SMTP("127.0.0.1", 587, local_hostname="client.test") as s:
    s._host = host  # the name the certificate is checked against
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.login(frm, pw)
    s.sendmail(frm, [to], msg)
PY

# A fresh profile that trusts the test CA.
profile="$work/profile"
mkdir -p "$profile"
certutil -N -d "sql:$profile" --empty-password
certutil -A -d "sql:$profile" -n "Posthouse test CA" -t "C,," -i "$work/ca.pem"
marionette_port=2828
cat >"$profile/user.js" <<EOF
user_pref("marionette.port", $marionette_port);
// Autoconfig from the domain's own server only: no ISPDB, no guessing, no
// Exchange autodiscover, so the account can only come from Posthouse's
// http://autoconfig.$domain/mail/config-v1.1.xml.
user_pref("mailnews.auto_config_url", "");
user_pref("mailnews.auto_config.guess.enabled", false);
user_pref("mailnews.auto_config.fetchFromExchange.enabled", false);
// No DNS over HTTPS; names come from /etc/hosts.
user_pref("network.trr.mode", 5);
// Quiet start: no default-client question, telemetry or update checks.
user_pref("mail.shell.checkDefaultClient", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("app.update.enabled", false);
user_pref("mailnews.start_page.enabled", false);
user_pref("mail.rights.override", true);
EOF

export DISPLAY=:77
Xvfb "$DISPLAY" -screen 0 1280x900x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
pids+=($!)
sleep 1
unset MOZ_HEADLESS
export HOME="$work/home" MOZ_CRASHREPORTER_DISABLE=1
mkdir -p "$HOME"
thunderbird --profile "$profile" --no-remote --marionette -remote-allow-system-access >"$out/thunderbird.log" 2>&1 &
pids+=($!)

python3 "$here/tbdrive.py" --port "$marionette_port" --outdir "$out" \
	--name "Alice Example" --address "$alice" --password "$alice_pw" --hostname "$hostname" \
	--inbox-subject "$inbox_subject" --to "$bob" --to-password "$bob_pw" \
	--send-subject "From Thunderbird $(date +%s)" --ca "$work/ca.pem" --imaps-port 993

# Posthouse's log shows where the configuration came from and that the
# message came in on a submission port, authenticated as Alice.
grep 'autoconfig served' "$out/posthouse.log" | grep -q 'client=thunderbird' || {
	echo "thunderbird.sh: posthouse.log shows no autoconfig served to Thunderbird" >&2
	exit 1
}
grep 'message accepted' "$out/posthouse.log" | grep 'mode=submission' | grep -q "user=$alice" || {
	echo "thunderbird.sh: posthouse.log shows no message submitted by $alice" >&2
	exit 1
}
grep -E 'autoconfig served|message accepted' "$out/posthouse.log"
