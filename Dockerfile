# firmchain: one static binary in an otherwise empty image. `docker run IMAGE --version` prints the version.
#
# Two ways to build it:
#
# 1. From a binary built on the host (no registry needed): the device binary of scripts/build-device
#      bash scripts/build-device
#      mkdir -p ctx/data && cp target/device/firmchain ctx/
#      docker build --target local -t firmchain -f Dockerfile ctx
#    (tests/swarm/run.sh does the same with a faster, fault-injecting `swarm` build.)
#
# 2. Multi-stage, for a normal Docker setup that can pull the Rust image:
#      docker build -t firmchain .
#    The device build has no repository role, QUIC or mDNS (see scripts/build-device); a repository image is the
#    full build: docker build --build-arg FEATURES=default -t firmchain-repository .
#
# The `local` stage comes first so that the classic builder stops there with `--target local` and never pulls
# the Rust image.
#
# The node runs as user 10001 (numeric: a scratch image has no /etc/passwd) and writes only /data, which the
# image makes and gives to that user, so a named volume starts out writable. A bind-mounted host folder must
# belong to it: `chown 10001:10001 DIR`. The health check asks the node's API (`firmchain node health`: exit 0
# when GET /status answers on 127.0.0.1:8420, or FIRMCHAIN_API); with api.listen elsewhere, set FIRMCHAIN_API.

FROM scratch AS local
COPY firmchain /firmchain
COPY --chown=10001:10001 data /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 4001/tcp 4001/udp 8420/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["/firmchain", "node", "health"]
ENTRYPOINT ["/firmchain"]
CMD ["run", "--data", "/data"]

FROM rust:1.95-bookworm AS build
ARG FEATURES=
WORKDIR /src
COPY . .
RUN FEATURES="$FEATURES" bash scripts/build-device && cp target/device/firmchain /firmchain && mkdir /data

FROM scratch AS image
COPY --from=build /firmchain /firmchain
COPY --from=build --chown=10001:10001 /data /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 4001/tcp 4001/udp 8420/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["/firmchain", "node", "health"]
ENTRYPOINT ["/firmchain"]
CMD ["run", "--data", "/data"]
