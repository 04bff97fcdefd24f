# anvil (from the npm package @foundry-rs/anvil-linux-amd64) and the shared libraries it needs, copied into an
# empty image by tests/swarm/run.sh (the context is a root file system it assembles).
FROM scratch
COPY rootfs/ /
EXPOSE 8545
ENTRYPOINT ["/usr/local/bin/anvil"]
CMD ["--host", "0.0.0.0", "--port", "8545"]
