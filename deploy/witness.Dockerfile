# syntax=docker/dockerfile:1
# litewitness (filippo.io/torchwood, C2SP tlog-witness): the independent cosigner of
# Haven's key-log checkpoints. Meant to be run by a partner organisation on its own host
# (docs/deploy.md, "Witnesses"); the compose file has it under the `witness` profile.
# Build context: the repository root (docker-compose.yml sets it).

FROM golang:1.26.8-bookworm AS build
ARG LITEWITNESS_VERSION=v0.6.1
ENV CGO_ENABLED=0 \
    GOFLAGS=-trimpath \
    GOTOOLCHAIN=local \
    GOBIN=/out
RUN go install "filippo.io/torchwood/cmd/litewitness@${LITEWITNESS_VERSION}"

# The full bookworm image already carries OpenSSH's client tools (ssh-agent holds the key)
# and Python's sqlite3 (registers logs as `witnessctl add-log`/`add-key` would).
FROM python:3.11.14-bookworm
RUN groupadd --system --gid 10003 witness \
    && useradd --system --uid 10003 --gid witness --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin witness \
    && install -d -o witness -g witness -m 0700 /data
COPY --from=build /out/litewitness /usr/local/bin/litewitness
COPY deploy/witness-start /usr/local/bin/haven-witness-start
USER 10003:10003
VOLUME ["/data"]
EXPOSE 7380
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7380/', timeout=4).status != 200)"]
ENTRYPOINT ["haven-witness-start"]
