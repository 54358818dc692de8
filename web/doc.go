// Package web is Posthouse's web console: the administrator's pages
// (dashboard, domains, users, aliases and catch-alls, send-as grants, the
// outbound queue, DKIM keys, users' Sieve scripts and out-of-office, a DNS
// check) and every user's self-service at /account (password, app
// passwords, two-factor login, out-of-office, quota usage).
//
// Pages are server-rendered html/template with a small embedded style sheet;
// no JavaScript is served, and every form works as a plain HTML form.
// AdminHandler serves the admin listener ([listen] admin, loopback by
// default, with /metrics); AccountHandler serves /account alone on the
// https listener, where the admin pages do not exist.
//
// It owns sessions and forms, not data: users, roles, app passwords and
// TOTP belong to package auth, scripts and out-of-office to sievestore,
// the queue and DKIM keys to queue and dkim, usage to mailstore, counts to
// metrics. Each is reached through a small interface declared here.
//
// Security:
//   - Sessions live in memory and, with a SessionDB (data_dir/web.sqlite),
//     survive restarts: the cookie holds 32 random bytes, the table their
//     SHA-256. With the postgres backend the SessionDB is in that
//     database (OpenSessionDBPostgres, table web_sessions), shared by the
//     nodes: each request reads its session there, so a logout on one
//     node ends it on all. Cookies are HttpOnly,
//     SameSite=Strict, Secure over TLS, and expire after 1 h idle or 12 h.
//     A new id is issued at each login step.
//   - Login uses AuthenticateWeb (the account password only, with auth's
//     throttling), then, when the user has TOTP on, a second step
//     (VerifySecondFactor) that must follow within 5 minutes.
//   - Every form carries a CSRF token (the session's; the login form's
//     lives in a cookie of its own) and a POST with a foreign Origin is
//     refused. Responses carry a CSP without script, X-Frame-Options DENY,
//     nosniff, Referrer-Policy same-origin (so that browsers send a real Origin with our own forms) and Cache-Control no-store.
//   - Passwords, app passwords, TOTP secrets and recovery codes never go
//     in a URL or a log line; a new app password and recovery codes are
//     shown in the response that made them and kept nowhere.
//   - Bad input gets a message and changes nothing: each handler checks
//     its whole form before its first write.
//   - Forms are limited to 256 KiB and requests to 30 s; the DNS check
//     to 20 s.
//   - Every admin change is logged at Info as "admin action" with user
//     (who), action, the target and remote.
package web
