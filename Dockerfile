# firmchain: one static binary in an otherwise empty image. `docker run IMAGE --version` prints the version.
#
# Two ways to build it:
#
# 1. From a binary built on the host (no registry needed): the device binary of scripts/build-device
#      bash scripts/build-device
#      mkdir -p ctx && cp target/device/firmchain ctx/
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

FROM scratch AS local
COPY firmchain /firmchain
VOLUME ["/data"]
EXPOSE 4001/tcp 4001/udp 8420/tcp
ENTRYPOINT ["/firmchain"]
CMD ["run", "--data", "/data"]

FROM rust:1.95-bookworm AS build
ARG FEATURES=
WORKDIR /src
COPY . .
RUN FEATURES="$FEATURES" bash scripts/build-device && cp target/device/firmchain /firmchain

FROM scratch AS image
COPY --from=build /firmchain /firmchain
VOLUME ["/data"]
EXPOSE 4001/tcp 4001/udp 8420/tcp
ENTRYPOINT ["/firmchain"]
CMD ["run", "--data", "/data"]
