# syntax=docker/dockerfile:1
# Multi-stage build: compile a static binary, ship it on a slim Debian base.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first so source edits don't invalidate the module cache layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO off: the binary then runs on any base image without glibc matching.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/tollgate ./cmd/tollgate

FROM debian:bookworm-slim
# ca-certificates: outbound TLS to upstream LLM providers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid tollgate --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin tollgate \
 && mkdir -p /etc/tollgate
COPY --from=build /out/tollgate /usr/local/bin/tollgate
# Numeric UID so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# 4000 gateway, 8080 admin, 9090 mock-llm.
EXPOSE 4000 8080 9090
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["all"]
