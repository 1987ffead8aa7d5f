# syntax=docker/dockerfile:1
# MinIO community edition, built from the last commit of its repository, plus the mc
# client at the version that commit depends on. Upstream publishes no image for this
# commit; docs/deploy.md ("Why MinIO is built from source") says why we build it.
# Build context: the repository root (docker-compose.yml sets it).

FROM golang:1.26.8-bookworm AS build
# Pseudo-versions name the commits (their last 12 characters); the h1: sums pin the exact
# module contents that the test suite built and ran, whatever a proxy serves later.
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ARG MINIO_SUM=h1:/qdoYujxF5MBLDMVLeiYJ/7fBa1HikX39Dvzb9Ji8pA=
ARG MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
ARG MC_SUM=h1:6RyInOHKL6jz8zxcAar/h6rg/aJCxDP/uFuSNvYSuMI=
ENV CGO_ENABLED=0 \
    GOFLAGS=-trimpath \
    GOTOOLCHAIN=local \
    GOBIN=/out
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN go install "github.com/minio/minio@${MINIO_VERSION}" \
    && go install "github.com/minio/mc@${MC_VERSION}" \
    && go version -m /out/minio | grep -qF "${MINIO_SUM}" \
    && go version -m /out/mc | grep -qF "${MC_SUM}"

FROM debian:12.12-slim
RUN groupadd --system --gid 10002 minio \
    && useradd --system --uid 10002 --gid minio --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin minio \
    && install -d -o minio -g minio -m 0700 /data /data1 /data2 /etc/minio/certs /etc/minio/certs/CAs
COPY --from=build /out/minio /out/mc /usr/local/bin/
COPY deploy/minio-setup /usr/local/bin/haven-minio-setup
# mc keeps its configuration on the tmpfs; the health check needs no credentials.
ENV MC_CONFIG_DIR=/tmp/mc \
    MC_HOST_local=http://127.0.0.1:9000
USER 10002:10002
VOLUME ["/data"]
EXPOSE 9000 9001
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
    CMD ["mc", "ready", "local"]
# The certificate folder exists in the image, so a read-only root filesystem is fine.
ENTRYPOINT ["minio"]
CMD ["server", "--certs-dir", "/etc/minio/certs", "--console-address", ":9001", "/data"]
