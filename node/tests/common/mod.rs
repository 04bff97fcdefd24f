//! The fleet the node's end-to-end tests share: a real anvil with the FirmwareIndex, a temporary folder with
//! the firmware images, and `firmchain run` processes (a repository, devices) started from it.
#![allow(dead_code)] // each test binary uses its own part of it

pub mod beacon;
pub mod relay;

use std::path::{Path, PathBuf};

use firmchain_tests::fleet::{Chain, NodeProc, NodeSpec, images};
use firmchain_update::Blake3Hash;

/// `--set` arguments of a chain configuration that validates with nothing behind it (nothing listens on the
/// RPC): for commands and nodes that must not reach a chain.
pub const NO_CHAIN: [&str; 8] = [
    "--set",
    "chain.mode=rpc",
    "--set",
    "chain.execution_rpc=http://127.0.0.1:9",
    "--set",
    "chain.contract=0x5FbDB2315678afecb367f032c93F642f64180aa3",
    "--set",
    "chain.product=acme-sensor",
];

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firmchain"))
}

pub struct Fleet {
    pub chain: Chain,
    pub dir: tempfile::TempDir,
    pub images: Vec<Vec<u8>>,
}

impl Fleet {
    /// A chain and `releases + 1` images of `size` bytes (`v0.bin` is the factory image).
    pub async fn new(size: usize, releases: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let images = images(size, releases + 1);
        for (i, img) in images.iter().enumerate() {
            std::fs::write(dir.path().join(format!("v{i}.bin")), img).unwrap();
        }
        Fleet {
            chain: Chain::start().await.unwrap(),
            dir,
            images,
        }
    }

    pub fn image(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("v{i}.bin"))
    }

    pub fn hash(&self, i: usize) -> String {
        Blake3Hash::of(&self.images[i]).to_string()
    }

    pub fn spawn(&self, spec: NodeSpec) -> NodeProc {
        NodeProc::spawn(bin(), &self.chain.anvil.url, &self.chain.contract, &spec).unwrap()
    }

    pub fn repository(&self) -> NodeProc {
        self.spawn(NodeSpec {
            dir: self.dir.path().join("repo"),
            repository: true,
            key: Some(self.chain.key().to_owned()),
            ..NodeSpec::default()
        })
    }

    pub fn device(&self, name: &str, bootstrap: &[&NodeProc], spec: NodeSpec) -> NodeProc {
        self.spawn(NodeSpec {
            dir: self.dir.path().join(name),
            bootstrap: bootstrap.iter().flat_map(|n| n.addrs.clone()).collect(),
            initial_image: spec.initial_image.clone().or(Some(self.image(0))),
            ..spec
        })
    }
}
