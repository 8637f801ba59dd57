# The one Emporium image: every role runs from it (`--role`, or EMPORIUM_ROLE).
#
#   docker build -t emporium .
#   docker run --rm -p 8080:8080 emporium              # the whole system on embedded stores
#
# Stage 1 fetches the dependencies from the lock file alone (a cached layer that changes only
# with Cargo.lock), stage 2 builds the release binary, stage 3 is a small runtime image with the
# stripped binary, the default configuration and a non-root user.

FROM rust:1.95-bookworm AS dependencies
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors actors
COPY nodes nodes
RUN cargo fetch --locked

FROM dependencies AS build
COPY config config
RUN cargo build --release --locked -p emporium \
 && objcopy --only-keep-debug target/release/emporium target/release/emporium.debug \
 && strip --strip-debug target/release/emporium

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
