# failover-monitor container image: a static-ish release build on a slim, non-root base.
#   docker build -t failover-monitor .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY docs/openapi.json ./docs/openapi.json
RUN cargo build --release --locked && strip target/release/failover-monitor

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
