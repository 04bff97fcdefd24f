//! Execution RPC answers recorded from a real endpoint and replayed from a file: [`Recorder`] wraps any
//! [`ExecutionRpc`] and keeps every answer it passes on; [`Replay`] serves a [`Recording`] back, call by call,
//! in the order it was recorded. A call that is not the next one recorded is an error that names both, so a
//! replay shows exactly where the code under test asks something else than it did against the real chain.
//! Nothing in a recording is trusted more than a live answer: what reads it verifies it the same way.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use alloy::consensus::Header;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::rpc::types::{EIP1186AccountProofResponse, Filter, Log, TransactionReceipt};
use serde::{Deserialize, Serialize};

use crate::execution_rpc::ExecutionRpc;
use crate::rpc::RpcError;

/// A poisoned lock only means another thread panicked while holding it; the data is still whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One call and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum RecordedCall {
    /// `eth_getBlockByNumber`.
    Header {
        block: BlockNumberOrTag,
        header: Box<Header>,
        hash: B256,
    },
    /// `eth_getProof`.
    Proof {
        address: Address,
        slots: Vec<B256>,
        block: u64,
        answer: Box<EIP1186AccountProofResponse>,
    },
    /// `eth_getLogs`.
    Logs { filter: Box<Filter>, answer: Vec<Log> },
}

impl RecordedCall {
    fn describe(&self) -> String {
        match self {
            RecordedCall::Header { block, .. } => format!("eth_getBlockByNumber({block})"),
            RecordedCall::Proof {
                address,
                slots,
                block,
                ..
            } => format!("eth_getProof({address}, {} slots, block {block})", slots.len()),
            RecordedCall::Logs { filter, .. } => format!(
                "eth_getLogs(blocks {:?}..={:?})",
                filter.get_from_block(),
                filter.get_to_block()
            ),
        }
    }
}

/// The calls of one recorded session, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub calls: Vec<RecordedCall>,
}

impl Recording {
    /// Reads a recording written by [`Recording::save`].
    pub fn load(path: &Path) -> Result<Recording, RpcError> {
        let file = |message: String| RpcError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| file(format!("not a recording: {e}")))
    }

    /// Writes it as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), RpcError> {
        let file = |message: String| RpcError::File {
            path: path.display().to_string(),
            message,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| file(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| file(e.to_string()))
    }
}

/// Passes every call to `inner` and records each answer. Failed calls are not recorded.
#[derive(Clone, Debug)]
pub struct Recorder<E> {
    inner: E,
    recording: Arc<Mutex<Recording>>,
}

impl<E> Recorder<E> {
    pub fn new(inner: E) -> Self {
        Recorder {
            inner,
            recording: Arc::default(),
        }
    }

    /// What was recorded so far.
    pub fn recording(&self) -> Recording {
        lock(&self.recording).clone()
    }

    fn keep(&self, call: RecordedCall) {
        lock(&self.recording).calls.push(call);
    }
}

impl<E: ExecutionRpc> ExecutionRpc for Recorder<E> {
    async fn header(&self, block: BlockNumberOrTag) -> Result<(Header, B256), RpcError> {
        let (header, hash) = self.inner.header(block).await?;
        self.keep(RecordedCall::Header {
            block,
            header: Box::new(header.clone()),
            hash,
        });
        Ok((header, hash))
    }

    async fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        block: u64,
    ) -> Result<EIP1186AccountProofResponse, RpcError> {
        let answer = self.inner.proof(address, slots.clone(), block).await?;
        self.keep(RecordedCall::Proof {
            address,
            slots,
            block,
            answer: Box::new(answer.clone()),
        });
        Ok(answer)
    }

    async fn block_receipts(&self, block: u64) -> Result<Vec<TransactionReceipt>, RpcError> {
        self.inner.block_receipts(block).await
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
        let answer = self.inner.logs(filter).await?;
        self.keep(RecordedCall::Logs {
            filter: Box::new(filter.clone()),
            answer: answer.clone(),
        });
        Ok(answer)
    }
}

/// Serves a [`Recording`] back in order. Clones share the position.
#[derive(Clone, Debug)]
pub struct Replay {
    name: String,
    calls: Arc<Vec<RecordedCall>>,
    next: Arc<Mutex<usize>>,
}

impl Replay {
    /// A replay of `recording`, named `name` in its errors (the file it came from).
    pub fn new(name: impl Into<String>, recording: Recording) -> Self {
        Replay {
            name: name.into(),
            calls: Arc::new(recording.calls),
            next: Arc::default(),
        }
    }

    /// How many recorded calls have been answered.
    pub fn position(&self) -> usize {
        *lock(&self.next)
    }

    fn take(&self, asked: &RecordedCall) -> Result<RecordedCall, RpcError> {
        let mut next = lock(&self.next);
        let fail = |message: String| RpcError::File {
            path: self.name.clone(),
            message,
        };
        let Some(recorded) = self.calls.get(*next) else {
            return Err(fail(format!(
                "call {} asks {}, but the recording ends after {} calls",
                *next + 1,
                asked.describe(),
                self.calls.len()
            )));
        };
        let same = match (recorded, asked) {
            (RecordedCall::Header { block: a, .. }, RecordedCall::Header { block: b, .. }) => a == b,
            (
                RecordedCall::Proof {
                    address: a,
                    slots: s,
                    block: n,
                    ..
                },
                RecordedCall::Proof {
                    address: b,
                    slots: t,
                    block: m,
                    ..
                },
            ) => a == b && s == t && n == m,
            (RecordedCall::Logs { filter: a, .. }, RecordedCall::Logs { filter: b, .. }) => a == b,
            _ => false,
        };
        if !same {
            return Err(fail(format!(
                "call {} asks {}, but the recording has {}",
                *next + 1,
                asked.describe(),
                recorded.describe()
            )));
        }
        *next += 1;
        Ok(recorded.clone())
    }
}

impl ExecutionRpc for Replay {
    async fn header(&self, block: BlockNumberOrTag) -> Result<(Header, B256), RpcError> {
        let asked = RecordedCall::Header {
            block,
            header: Box::default(),
            hash: B256::ZERO,
        };
        match self.take(&asked)? {
            RecordedCall::Header { header, hash, .. } => Ok((*header, hash)),
            _ => unreachable!("take matched the method"),
        }
    }

    async fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        block: u64,
    ) -> Result<EIP1186AccountProofResponse, RpcError> {
        let asked = RecordedCall::Proof {
            address,
            slots,
            block,
            answer: Box::default(),
        };
        match self.take(&asked)? {
            RecordedCall::Proof { answer, .. } => Ok(*answer),
            _ => unreachable!("take matched the method"),
        }
    }

    async fn block_receipts(&self, block: u64) -> Result<Vec<TransactionReceipt>, RpcError> {
        Err(RpcError::File {
            path: self.name.clone(),
            message: format!("eth_getBlockReceipts({block}) is not recorded"),
        })
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
        let asked = RecordedCall::Logs {
            filter: Box::new(filter.clone()),
            answer: Vec::new(),
        };
        match self.take(&asked)? {
            RecordedCall::Logs { answer, .. } => Ok(answer),
            _ => unreachable!("take matched the method"),
        }
    }
}
