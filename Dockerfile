# syntax=docker/dockerfile:1
# Posthouse: build with cgo (mattn/go-sqlite3), run as a non-root user on
# Debian slim. Build: docker build -t posthouse --build-arg VERSION=1.0.0 .

FROM golang:1.26-trixie AS build
WORKDIR /src
# Modules first, so code changes do not refetch them. third_party/ holds the
# modules that go.mod replaces.
COPY go.mod go.sum ./
COPY third_party/ third_party/
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/posthouse ./cmd/posthouse

FROM debian:trixie-slim
COPY --from=build /out/posthouse /usr/local/bin/posthouse
# The mail ports are below 1024: let the binary bind them without root
# (setcap comes from libcap2-bin, removed again in the same layer).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && setcap cap_net_bind_service=+ep /usr/local/bin/posthouse \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10025 --user-group --home-dir /data --shell /usr/sbin/nologin posthouse \
 && mkdir -p /data /certs \
 && chown posthouse:posthouse /data \
 && chmod 0700 /data
USER posthouse
WORKDIR /data
# Data (users.sqlite, accounts/, queue, the self-signed certificate) in
# /data; real certificates mounted read-only in /certs, named with
# POSTHOUSE_TLS_CERT_FILE=/certs/fullchain.pem and POSTHOUSE_TLS_KEY_FILE=/certs/privkey.pem.
ENV POSTHOUSE_DATA_DIR=/data
VOLUME ["/data", "/certs"]
# SMTP, submissions, submission, POP3, POP3S, IMAP, IMAPS.
EXPOSE 25 465 587 110 995 143 993
# serve handles SIGTERM: stops listening, lets sessions finish for a few
# seconds, exits before the runtime's 10 s SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/posthouse"]
CMD ["serve"]
