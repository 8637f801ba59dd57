# The one Emporium image: every role runs from it (`--role`, or EMPORIUM_ROLE).
#
#   docker build -t emporium .
#   docker run --rm -p 8080:8080 emporium              # the whole system on embedded stores
#
# Stage 1 builds the dependencies from the manifests and Cargo.lock alone, with an empty
# stand-in for every crate of the workspace (ops/docker/stub-workspace.sh): that layer is
# rebuilt only when a manifest or the lock file changes. Stage 2 builds the release binary from
# the real sources (the release profile leaves debug info out; `--profile release-symbols`
# builds the same binary with line tables). Stage 3 is a small runtime image with the binary,
# the default configuration and a non-root user.

FROM rust:1.95-bookworm AS dependencies
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors/auth/Cargo.toml actors/auth/
COPY actors/bus/Cargo.toml actors/bus/
COPY actors/cluster/Cargo.toml actors/cluster/
COPY actors/contracts/Cargo.toml actors/contracts/
COPY actors/echo/Cargo.toml actors/echo/
COPY actors/gateway/Cargo.toml actors/gateway/
COPY actors/inventory/Cargo.toml actors/inventory/
COPY actors/notification/Cargo.toml actors/notification/
COPY actors/order/Cargo.toml actors/order/
COPY actors/payment/Cargo.toml actors/payment/
COPY actors/product/Cargo.toml actors/product/
COPY actors/registry/Cargo.toml actors/registry/
COPY actors/runtime/Cargo.toml actors/runtime/
COPY actors/store/Cargo.toml actors/store/
COPY actors/testkit/Cargo.toml actors/testkit/
COPY nodes/Cargo.toml nodes/
COPY ops/docker/stub-workspace.sh /usr/local/bin/stub-workspace
RUN stub-workspace . && cargo build --release --locked -p emporium

FROM dependencies AS build
COPY actors actors
COPY nodes nodes
COPY config config
# The real sources replace the stand-ins: newer modification times make cargo rebuild them.
RUN find actors nodes -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p emporium \
 && ls -l target/release/emporium

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/emporium --create-home emporium
COPY --from=build /src/target/release/emporium /usr/local/bin/emporium
COPY --from=build /src/config /etc/emporium/config
USER emporium
WORKDIR /var/lib/emporium
ENV EMPORIUM_CONFIG_DIR=/etc/emporium/config \
    EMPORIUM_DATA_DIR=/var/lib/emporium/data \
    EMPORIUM_LISTEN=0.0.0.0:8761 \
    EMPORIUM_HTTP=0.0.0.0:8080
EXPOSE 8080 8761
# Readiness of the node listener (every role has one).
HEALTHCHECK --interval=5s --timeout=2s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${EMPORIUM_LISTEN##*:}/health/ready" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/emporium"]
