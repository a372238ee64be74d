# meterkast in a container.
#   docker build -t meterkast .
#   docker run -d --name meterkast -p 8080:8080 -v meterkast:/data \
#     --device /dev/ttyUSB0 meterkast run --source serial:///dev/ttyUSB0
#   docker run --rm -p 8080:8080 meterkast run --demo --http 0.0.0.0:8080
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p meterkast && strip target/release/meterkast

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --groups dialout meterkast && mkdir /data && chown meterkast /data
COPY --from=build /src/target/release/meterkast /usr/local/bin/meterkast
USER meterkast
ENV MK_DB=/data/meterkast.db MK_HTTP=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/meterkast"]
CMD ["run", "--demo"]
