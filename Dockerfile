# failover-monitor container image: a static-ish release build on a slim, non-root base.
#   docker build -t failover-monitor .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The workspace: the binary's own sources, its crates, the test support crate (a
# member, so its manifest must be there), and what the build embeds: the web page,
# the mapping templates, the IAM policy, the OpenAPI document.
COPY src ./src
COPY crates ./crates
COPY tests/support ./tests/support
COPY deploy ./deploy
COPY docs/openapi.json ./docs/openapi.json
RUN cargo build --release --locked -p failover-monitor && strip target/release/failover-monitor

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/failover-monitor /usr/local/bin/failover-monitor
COPY monitor.toml /etc/failover-monitor/monitor.toml
USER 65532:65532
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/failover-monitor"]
CMD ["--log-format", "json", "--config", "/etc/failover-monitor/monitor.toml", "run"]
