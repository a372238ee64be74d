# meterkast in a container (README.md, "Installing as a service").
#   docker build -t meterkast .
#   docker run --rm -p 8080:8080 meterkast                       # the demo: a simulated meter
#   docker run -d --name meterkast -p 8080:8080 -v meterkast:/data \
#     --device /dev/ttyUSB0 --group-add "$(getent group dialout | cut -d: -f3)" \
#     meterkast run --source serial:///dev/ttyUSB0
# No Docker where CI runs: .ci/check-packaging lints this file instead.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# The dependencies first, in a layer of their own: built against placeholder sources,
# so a change to meterkast's code rebuilds only meterkast (about 1 minute instead of 5).
COPY Cargo.toml Cargo.lock ./
COPY crates/codec/Cargo.toml crates/codec/
COPY crates/meterkast/Cargo.toml crates/meterkast/
RUN mkdir -p crates/codec/src crates/codec/benches crates/meterkast/src \
    && touch crates/codec/src/lib.rs crates/meterkast/src/lib.rs \
    && echo 'fn main() {}' > crates/meterkast/src/main.rs \
    && echo 'fn main() {}' > crates/codec/benches/decode.rs \
    && echo 'fn main() {}' > crates/codec/benches/dlms.rs \
    && cargo build --release --locked -p meterkast \
    && rm -rf crates/codec/src crates/codec/benches crates/meterkast/src \
        target/release/.fingerprint/meterkast-* target/release/deps/*meterkast*
COPY . .
RUN cargo build --release --locked -p meterkast

FROM debian:bookworm-slim
# CA certificates: MQTT over TLS, SMTP and other servers on the internet are verified
# against them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 meterkast \
    && useradd --system --uid 10001 --gid 10001 --groups dialout --home-dir /data meterkast \
    && mkdir /data && chown meterkast:meterkast /data
COPY --from=build /src/target/release/meterkast /usr/local/bin/meterkast
USER 10001
# The store is /data/meterkast.db (the default meterkast.db in this folder); --demo
# keeps its simulated meter in a temporary file outside the volume.
WORKDIR /data
ENV MK_HTTP=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/meterkast"]
CMD ["run", "--demo"]
