# Herald's image: a release build in the Rust image, then only the binary and its
# configuration on a slim Debian, run as an unprivileged user.
#
#   docker build -t herald .
#   docker run -p 8080:8080 -v herald-data:/data -e HERALD__ADMIN__TOKEN=… herald
#
# SQLite lives in the /data volume by default; set HERALD__DATABASE__URL=postgres://… (and
# HERALD__REDIS__URL for several nodes) to use PostgreSQL instead.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target directory are cache mounts: a rebuild after a source change
# compiles Herald, not its dependencies.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p herald \
    && cp target/release/herald /usr/local/bin/herald

FROM debian:bookworm-slim
# No packages are added: Herald links only glibc (SQLite is built in, TLS is rustls).
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /data --shell /usr/sbin/nologin herald \
    && mkdir -p /data \
    && chown herald:herald /data
COPY --from=build /usr/local/bin/herald /usr/local/bin/herald
COPY config /etc/herald
ENV HERALD_ENV=production \
    HERALD_CONFIG_DIR=/etc/herald \
    HERALD__SERVER__HOST=0.0.0.0 \
    HERALD__SERVER__PORT=8080 \
    HERALD__DATABASE__URL=sqlite:///data/herald.db \
    HERALD__LOG__FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080
# SIGTERM ends open streams at once and lets in-flight requests finish.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["herald", "healthcheck"]
ENTRYPOINT ["herald"]
CMD ["serve"]
