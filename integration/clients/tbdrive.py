#!/usr/bin/env python3
"""Drive a real Thunderbird through its Account Hub against Posthouse.

Run by thunderbird.sh inside a private network namespace, after Posthouse
and Thunderbird (with --marionette) are started. Only the standard library:
Marionette is length-prefixed JSON over TCP ("len:[0,id,cmd,params]").

Steps, each the way a user does it:
  1. Account Hub: type name, address, Continue; the configuration found
     (fetched by Thunderbird from http://autoconfig.<domain>/) is shown;
     Continue; type the password; Continue; skip sync; Finish.
  2. The inbox lists the message delivered over SMTP before the setup.
  3. Write: To, Subject, body, Send (Thunderbird's SMTP to submission).
  4. Over IMAP (imaplib, trusting the test CA): the message is in the
     recipient's INBOX and in the sender's Sent folder.
Screenshots of each step go to OUTDIR.
"""

import argparse
import base64
import imaplib
import json
import os
import socket
import ssl
import sys
import time


class MarionetteError(Exception):
    pass


class Marionette:
    def __init__(self, port, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        self.sock.settimeout(120)
        self.buf = b""
        self.msgid = 0
        hello = self._read()
        if hello.get("marionetteProtocol") != 3:
            raise MarionetteError("unexpected hello %r" % hello)

    def _read(self):
        while b":" not in self.buf:
            self._fill()
        n, _, rest = self.buf.partition(b":")
        n = int(n)
        self.buf = rest
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return json.loads(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise MarionetteError("connection closed")
        self.buf += chunk

    def call(self, cmd, params=None):
        self.msgid += 1
        data = json.dumps([0, self.msgid, cmd, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            msg = self._read()
            if msg[0] == 1 and msg[1] == self.msgid:
                break
        if msg[2]:
            raise MarionetteError("%s: %s: %s" % (cmd, msg[2].get("error"), msg[2].get("message")))
        res = msg[3]
        if isinstance(res, dict) and set(res) == {"value"}:
            return res["value"]
        return res

    def js(self, script, args=None):
        return self.call("WebDriver:ExecuteScript", {"script": script, "args": args or []})

    def find(self, css):
        return self.call("WebDriver:FindElement", {"using": "css selector", "value": css})

    def click(self, el):
        self.call("WebDriver:ElementClick", {"id": el_id(el)})

    def type(self, el, text):
        self.call("WebDriver:ElementClear", {"id": el_id(el)})
        self.call("WebDriver:ElementSendKeys", {"id": el_id(el), "text": text})


def el_id(el):
    return el.get("element-6066-11e4-a52e-4f735466cecf") or next(iter(el.values()))


def log(*a):
    print("tbdrive: %.1fs:" % (time.time() - START), *a, flush=True)


START = time.time()


def wait_for(desc, fn, timeout=60, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except MarionetteError as e:
            last = e
        time.sleep(interval)
    raise SystemExit("tbdrive: timed out after %ds waiting for %s (last error: %s)" % (timeout, desc, last))


HUB = 'const hub = () => document.querySelector("account-hub-container")?.shadowRoot;'


class Driver:
    def __init__(self, m, outdir):
        self.m = m
        self.outdir = outdir
        self.shots = 0

    def shot(self, name):
        self.shots += 1
        path = os.path.join(self.outdir, "%02d-%s.png" % (self.shots, name))
        try:
            data = self.m.call("WebDriver:TakeScreenshot", {"full": False})
            with open(path, "wb") as f:
                f.write(base64.b64decode(data))
        except MarionetteError as e:
            log("screenshot", name, "failed:", e)
            return
        log("screenshot", path)

    def visible(self, css):
        """True when css matches an Account Hub element that is rendered."""
        return self.m.js(HUB + "const e = hub()?.querySelector(arguments[0]); return !!e && e.checkVisibility();", [css])

    def hfind(self, css):
        """The Account Hub element css matches (the hub is in a shadow root)."""
        el = self.m.js(HUB + "return hub()?.querySelector(arguments[0]) || null;", [css])
        if not el:
            raise MarionetteError("no Account Hub element " + css)
        return el

    def hub_state(self):
        """Which Account Hub subview is showing, and whether it is loading."""
        return self.m.js(
            """
            const hub = document.querySelector("account-hub-container")?.shadowRoot?.querySelector("account-hub-email");
            if (!hub) { return null; }
            const shown = [...hub.querySelectorAll("[id$=Subview]")].filter(v => !v.hidden).map(v => v.id);
            const overlay = hub.querySelector("#loadingOverlay");
            const loading = !!overlay && overlay.checkVisibility();
            const fwd = hub.querySelector("#emailFooter #forward");
            const note = hub.querySelector("#emailFormNotificationTitle");
            return {shown, loading, forwardDisabled: fwd ? fwd.disabled : null,
                    note: note && note.checkVisibility() ? note.textContent.trim() : ""};
            """
        )

    def wait_subview(self, name, timeout=90):
        def ready():
            st = self.hub_state()
            if st and name in st["shown"] and not st["loading"]:
                return st
            return None
        st = wait_for("Account Hub subview " + name, ready, timeout)
        log("Account Hub shows", name, st)
        return st

    def forward(self):
        fwd = self.hfind("account-hub-email #emailFooter #forward")
        wait_for("Continue enabled", lambda: not self.m.js("return arguments[0].disabled;", [fwd]), 30)
        self.m.click(fwd)


def account_hub(d, args):
    m = d.m
    # On a fresh profile Thunderbird opens the Account Hub by itself at
    # start-up. Give it time; open it from the app menu's "New Account"
    # command only if it did not appear.
    try:
        wait_for("Account Hub", lambda: d.visible("account-hub-email #emailAutoConfigSubview #email"), 45)
    except SystemExit:
        log("Account Hub not shown at start-up; opening it as File > New > Email Account does")
        m.js("window.openAccountHub(); return true;")
        wait_for("Account Hub", lambda: d.visible("account-hub-email #emailAutoConfigSubview #email"), 45)
    d.wait_subview("emailAutoConfigSubview")
    m.type(d.hfind("account-hub-email #emailAutoConfigSubview #realName"), args.name)
    m.type(d.hfind("account-hub-email #emailAutoConfigSubview #email"), args.address)
    d.shot("hub-name-address")
    d.forward()

    d.wait_subview("emailConfigFoundSubview", 120)
    found = m.js(
        """
        const v = document.querySelector("account-hub-container").shadowRoot.querySelector("account-hub-email #emailConfigFoundSubview");
        const t = id => (v.querySelector("#" + id) || {}).textContent?.trim();
        const sel = v.querySelector("input[name=config-type]:checked");
        return {incomingType: t("incomingType"), incomingHost: t("incomingHost"),
                outgoingHost: t("outgoingHost"), selected: sel ? sel.value : null};
        """
    )
    log("configuration found:", found)
    d.shot("hub-config-found")
    if found.get("incomingHost") != args.hostname:
        raise SystemExit("tbdrive: Account Hub found incoming host %r, want %r" % (found.get("incomingHost"), args.hostname))
    if found.get("selected") != "imap":
        m.click(d.hfind("account-hub-email #emailConfigFoundSubview #imap"))
    d.forward()

    d.wait_subview("emailPasswordSubview")
    m.type(d.hfind("account-hub-email #emailPasswordSubview #password"), args.password)
    d.shot("hub-password")
    d.forward()

    # Thunderbird now logs in to IMAP and SMTP to check the password, then
    # creates the account and offers address books and calendars to sync.
    def after_password():
        st = d.hub_state()
        if not st or st["loading"]:
            return None
        for name in ("emailSyncAccountsSubview", "emailAddedSuccessSubview"):
            if name in st["shown"]:
                return name
        if "emailPasswordSubview" in st["shown"] and st["note"]:
            raise SystemExit("tbdrive: Account Hub stays at the password step: %s" % st["note"])
        return None
    step = wait_for("account creation", after_password, 120)
    log("account created; Account Hub shows", step)
    if step == "emailSyncAccountsSubview":
        d.shot("hub-sync")
        d.forward()
        d.wait_subview("emailAddedSuccessSubview")
    d.shot("hub-success")
    d.forward()  # Finish
    wait_for("Account Hub closed", lambda: not d.visible("account-hub-email #emailFooter #forward"), 30)

    acct = m.js(
        """
        const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
        const a = MailServices.accounts.accounts.find(a => a.incomingServer.type == "imap");
        if (!a) { return null; }
        const s = a.incomingServer;
        const id = a.defaultIdentity;
        const smtp = MailServices.outgoingServer.getServerByIdentity(id);
        return {host: new URL(s.serverURI).hostname, port: s.port, socketType: s.socketType, user: s.username,
                email: id.email, fullName: id.fullName,
                smtpHost: smtp && smtp.serverURI.host, smtpPort: smtp && smtp.serverURI.port};
        """
    )
    log("account as Thunderbird created it:", acct)
    if not acct or acct["host"] != args.hostname or acct["user"] != args.address or acct["email"] != args.address:
        raise SystemExit("tbdrive: unexpected account %r" % acct)
    return acct


def inbox_lists(d, subject):
    m = d.m
    # Select the account's Inbox in the folder pane, as a user's click does,
    # then read the subjects the message list shows.
    script = """
        const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
        const a = MailServices.accounts.accounts.find(a => a.incomingServer.type == "imap");
        const inbox = a.incomingServer.rootFolder.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
        const about3Pane = document.getElementById("tabmail").currentAbout3Pane;
        const state = {inbox: inbox?.URI ?? null, shown: about3Pane?.gFolder?.URI ?? null, rows: []};
        if (!inbox || !about3Pane) { return state; }
        if (state.shown != inbox.URI) {
            about3Pane.displayFolder(inbox);
            return state;
        }
        const view = about3Pane.gDBView;
        for (let i = 0; view && i < view.rowCount; i++) {
            state.rows.push(view.cellTextForColumn(i, "subjectCol"));
        }
        return state;
    """
    deadline = time.time() + 90
    while True:
        st = m.js(script)
        if subject in st["rows"]:
            break
        if time.time() > deadline:
            d.shot("inbox-timeout")
            raise SystemExit("tbdrive: the inbox does not list %r: %r" % (subject, st))
        time.sleep(1)
    log("inbox lists", st["rows"])
    d.shot("inbox")


def compose_and_send(d, args):
    m = d.m
    main = m.call("WebDriver:GetWindowHandle")
    before = set(m.call("WebDriver:GetWindowHandles"))
    # The "New Message" button of the unified toolbar.
    m.js("window.goDoCommand('cmd_newMessage'); return true;")
    new = wait_for("compose window", lambda: list(set(m.call("WebDriver:GetWindowHandles")) - before), 60)
    m.call("WebDriver:SwitchToWindow", {"handle": new[0]})
    wait_for("compose window loaded", lambda: m.js(
        "return document.readyState == 'complete' && !!document.getElementById('toAddrInput')"
        " && window.gMsgCompose != null;"), 60)
    wait_for("editor ready", lambda: m.js(
        "const b = document.getElementById('messageEditor'); return !!(b && b.contentDocument && b.contentDocument.body);"), 60)
    to = m.find("#toAddrInput")
    m.type(to, args.to + ",")
    m.type(m.find("#msgSubject"), args.send_subject)
    body = m.find("#messageEditor")
    m.click(body)
    m.js("document.getElementById('messageEditor').focus(); return true;")
    m.call("WebDriver:ElementSendKeys", {"id": el_id(body), "text": "Sent by Thunderbird through Posthouse submission.\n"})
    d.shot("compose")
    m.click(m.find("#button-send"))
    wait_for("compose window to close after sending",
             lambda: new[0] not in m.call("WebDriver:GetWindowHandles"), 90)
    m.call("WebDriver:SwitchToWindow", {"handle": main})
    log("compose window closed: sent")
    d.shot("after-send")


def imap_find(args, user, password, mailbox, subject, timeout=60):
    ctx = ssl.create_default_context(cafile=args.ca)
    deadline = time.time() + timeout
    while True:
        with imaplib.IMAP4_SSL(args.hostname, args.imaps_port, ssl_context=ctx) as c:
            c.login(user, password)
            typ, _ = c.select('"%s"' % mailbox, readonly=True)
            if typ == "OK":
                typ, data = c.search(None, "SUBJECT", '"%s"' % subject)
                if typ == "OK" and data[0].split():
                    n = data[0].split()[-1]
                    typ, msg = c.fetch(n, "(BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT USER-AGENT)])")
                    return msg[0][1].decode(errors="replace").strip()
        if time.time() > deadline:
            raise SystemExit("tbdrive: %r not found in %s's %s over IMAP within %ds" % (subject, user, mailbox, timeout))
        time.sleep(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True, help="Marionette port")
    p.add_argument("--outdir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--hostname", required=True)
    p.add_argument("--inbox-subject", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--to-password", required=True)
    p.add_argument("--send-subject", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--imaps-port", type=int, default=993)
    args = p.parse_args()

    m = Marionette(args.port)
    m.call("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"moz:webdriverClick": True}}})
    m.call("Marionette:SetContext", {"value": "chrome"})
    # Switch to the main (3-pane) window.
    def main_window():
        for h in m.call("WebDriver:GetWindowHandles"):
            m.call("WebDriver:SwitchToWindow", {"handle": h})
            if m.js("return document.documentURI;") == "chrome://messenger/content/messenger.xhtml":
                return h
        return None
    wait_for("the main window", main_window, 60)
    wait_for("the main window to load", lambda: m.js("return document.readyState == 'complete';"), 60)
    d = Driver(m, args.outdir)
    d.shot("start")

    try:
        account_hub(d, args)
        log("PASS account setup through the Account Hub")
        inbox_lists(d, args.inbox_subject)
        log("PASS inbox lists the message delivered over SMTP")
        compose_and_send(d, args)
    except BaseException:
        d.shot("failure")
        raise
    got = imap_find(args, args.to, args.to_password, "INBOX", args.send_subject)
    log("recipient's INBOX over IMAP:", got.replace("\r\n", " | "))
    got = imap_find(args, args.address, args.password, "Sent", args.send_subject)
    log("sender's Sent over IMAP:", got.replace("\r\n", " | "))
    log("PASS message sent from the compose window arrived (recipient INBOX, sender Sent)")
    try:
        m.call("Marionette:Quit", {"flags": ["eForceQuit"]})
    except (MarionetteError, OSError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
