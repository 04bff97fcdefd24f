//! A beacon light-client server for tests, over a real anvil chain: 32 known BLS keys form the sync committee
//! (minimal preset, Deneb from genesis, one-second slots), and every header it serves carries the execution
//! payload header of a real anvil block, proven into its body, so a light client follows anvil's real state
//! roots and the storage proofs it checks against them are real.
//!
//! The beacon states and bodies are sparse: only the leaves a light client proves (the sync committees, the
//! finalized checkpoint, the execution payload) are filled in; everything else is zero. It serves the four
//! endpoints of `/eth/v1/beacon/light_client/`, and can be told to misbehave ([`Behaviour`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use blst::min_pk::{AggregateSignature, SecretKey};
use firmchain_lightclient::consensus::ssz::{
    Root, hash_pair, merkleize, tree_branch, tree_levels, u64_chunk,
};
use firmchain_lightclient::consensus::types::{BeaconBlockHeader, ExecutionPayloadHeader, SyncCommittee};
use serde_json::{Value, json};

const COMMITTEE: usize = 32;
const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
const DENEB_VERSION: [u8; 4] = [4, 0, 0, 1];
const GENESIS_VALIDATORS_ROOT: Root = [0x42; 32];
/// Slots between two served heads: the finalized header, the attested header and the signature slot.
const HEAD_SPACING: u64 = 3;

/// How the server behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Everything signed by the whole committee.
    Honest,
    /// Updates signed by 32 keys that are not the committee's.
    ForeignKeys,
    /// Updates signed under another fork version.
    WrongForkVersion,
    /// Updates signed by 8 of the 32 members only, over a forged execution state root.
    Minority,
    /// The execution payload header changed after signing (a forged state root).
    TamperedExecution,
}

#[derive(Clone)]
struct Head {
    block: u64,
    signature_slot: u64,
    payload: Value,
    payload_root: Root,
}

struct State {
    anvil: String,
    genesis_time: u64,
    behaviour: Behaviour,
    keys: Vec<SecretKey>,
    foreign: Vec<SecretKey>,
    committee: SyncCommittee,
    bootstrap: Value,
    /// Bootstraps for the finalized headers served so far (by block root), so a client restarts from the
    /// checkpoint it persisted.
    bootstraps: std::collections::BTreeMap<String, Value>,
    head: Option<Head>,
}

/// The most finalized headers the harness keeps bootstraps for.
const MAX_BOOTSTRAPS: usize = 256;

/// A running server; it lives as long as the test process (its thread serves until then).
pub struct BeaconHarness {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The chain config for the light client (`ChainSpec::from_config`).
    pub config: String,
    /// The trusted checkpoint: the block root of the bootstrap header (0x-hex).
    pub checkpoint: String,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for BeaconHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeaconHarness")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn key(seed: u8) -> Result<SecretKey, String> {
    SecretKey::key_gen(&[seed; 32], &[]).map_err(|e| format!("key_gen: {e:?}"))
}

fn roots_json(r: &[Root]) -> Value {
    Value::Array(r.iter().map(|x| Value::String(hex(x))).collect())
}

fn field<'a>(block: &'a Value, name: &str) -> Result<&'a str, String> {
    block[name]
        .as_str()
        .ok_or_else(|| format!("anvil block has no {name}"))
}

fn fixed<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let v = hex::decode(s.trim_start_matches("0x")).map_err(|e| e.to_string())?;
    v.try_into().map_err(|_| format!("{s} is not {N} bytes"))
}

fn quantity(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: {e}"))
}

/// The execution payload header of an anvil block (as JSON for the API, and its hash-tree root).
fn payload(block: &Value) -> Result<(Value, Root), String> {
    let base_fee = quantity(block["baseFeePerGas"].as_str().unwrap_or("0x0"))?;
    let blob_gas_used = quantity(block["blobGasUsed"].as_str().unwrap_or("0x0"))?;
    let excess_blob_gas = quantity(block["excessBlobGas"].as_str().unwrap_or("0x0"))?;
    let mut fee = [0u8; 32];
    fee[..8].copy_from_slice(&base_fee.to_le_bytes());
    let header = ExecutionPayloadHeader {
        parent_hash: fixed(field(block, "parentHash")?)?,
        fee_recipient: fixed(field(block, "miner")?)?,
        state_root: fixed(field(block, "stateRoot")?)?,
        receipts_root: fixed(field(block, "receiptsRoot")?)?,
        logs_bloom: hex::decode(field(block, "logsBloom")?.trim_start_matches("0x"))
            .map_err(|e| e.to_string())?,
        prev_randao: fixed(
            block["mixHash"]
                .as_str()
                .unwrap_or("0x0000000000000000000000000000000000000000000000000000000000000000"),
        )?,
        block_number: quantity(field(block, "number")?)?,
        gas_limit: quantity(field(block, "gasLimit")?)?,
        gas_used: quantity(field(block, "gasUsed")?)?,
        timestamp: quantity(field(block, "timestamp")?)?,
        extra_data: hex::decode(field(block, "extraData")?.trim_start_matches("0x"))
            .map_err(|e| e.to_string())?,
        base_fee_per_gas: fee,
        block_hash: fixed(field(block, "hash")?)?,
        transactions_root: [0; 32],
        withdrawals_root: [0; 32],
        blob_gas_used: Some(blob_gas_used),
        excess_blob_gas: Some(excess_blob_gas),
    };
    let json = payload_json(&header, base_fee);
    Ok((json, header.hash_tree_root()))
}

fn payload_json(h: &ExecutionPayloadHeader, base_fee: u64) -> Value {
    json!({
        "parent_hash": hex(&h.parent_hash), "fee_recipient": hex(&h.fee_recipient), "state_root": hex(&h.state_root),
        "receipts_root": hex(&h.receipts_root), "logs_bloom": hex(&h.logs_bloom), "prev_randao": hex(&h.prev_randao),
        "block_number": h.block_number.to_string(), "gas_limit": h.gas_limit.to_string(),
        "gas_used": h.gas_used.to_string(), "timestamp": h.timestamp.to_string(), "extra_data": hex(&h.extra_data),
        "base_fee_per_gas": base_fee.to_string(), "block_hash": hex(&h.block_hash),
        "transactions_root": hex(&h.transactions_root), "withdrawals_root": hex(&h.withdrawals_root),
        "blob_gas_used": h.blob_gas_used.unwrap_or(0).to_string(),
        "excess_blob_gas": h.excess_blob_gas.unwrap_or(0).to_string(),
    })
}

/// A light-client header at `slot` for an execution payload, with a sparse state holding the committee (as
/// current and next) and the finalized checkpoint. Returns the JSON, the beacon root and the state's levels.
fn header(
    slot: u64,
    payload: &Value,
    payload_root: &Root,
    committee: &Root,
    finalized: &Root,
) -> (Value, Root, Vec<Vec<Root>>) {
    let mut body = vec![[0u8; 32]; 16];
    body[9] = *payload_root; // gindex 25
    let body_levels = tree_levels(body);
    let body_root = body_levels[body_levels.len() - 1][0];
    let mut state = vec![[0u8; 32]; 32];
    state[20] = hash_pair(&u64_chunk(0), finalized); // finalized_checkpoint (gindex 52): epoch, root
    state[22] = *committee; // current_sync_committee (gindex 54)
    state[23] = *committee; // next_sync_committee (gindex 55)
    let state_levels = tree_levels(state);
    let beacon = BeaconBlockHeader {
        slot,
        proposer_index: 0,
        parent_root: [0; 32],
        state_root: state_levels[state_levels.len() - 1][0],
        body_root,
    };
    let json = json!({
        "beacon": {
            "slot": slot.to_string(), "proposer_index": "0", "parent_root": hex(&beacon.parent_root),
            "state_root": hex(&beacon.state_root), "body_root": hex(&beacon.body_root),
        },
        "execution": payload,
        "execution_branch": roots_json(&tree_branch(&body_levels, 9)),
    });
    (json, beacon.hash_tree_root(), state_levels)
}

fn signing_root(version: [u8; 4], header_root: &Root) -> Root {
    let mut v = [0u8; 32];
    v[..4].copy_from_slice(&version);
    let fork_data_root = hash_pair(&v, &GENESIS_VALIDATORS_ROOT);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&[7, 0, 0, 0]);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    merkleize(&[*header_root, domain], None)
}

fn aggregate(keys: &[SecretKey], signers: usize, msg: &Root) -> Value {
    let sigs: Vec<_> = keys[..signers].iter().map(|k| k.sign(msg, DST, &[])).collect();
    let refs: Vec<_> = sigs.iter().collect();
    let sig = AggregateSignature::aggregate(&refs, true)
        .map(|a| a.to_signature().to_bytes())
        .unwrap_or([0; 96]);
    let mut bits = [0u8; COMMITTEE / 8];
    for i in 0..signers {
        bits[i / 8] |= 1 << (i % 8);
    }
    json!({ "sync_committee_bits": hex(&bits), "sync_committee_signature": hex(&sig) })
}

fn committee_json(c: &SyncCommittee) -> Value {
    json!({
        "pubkeys": c.pubkeys.iter().map(|k| hex(k)).collect::<Vec<_>>(),
        "aggregate_pubkey": hex(&c.aggregate_pubkey),
    })
}

fn rpc(url: &str, method: &str, params: Value) -> Result<Value, String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = TcpStream::connect(addr).map_err(|e| format!("anvil {addr}: {e}"))?;
    write!(
        s,
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    s.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let v: Value = serde_json::from_str(json).map_err(|e| format!("anvil answer: {e}"))?;
    Ok(v["result"].clone())
}

impl State {
    fn current_slot(&self) -> u64 {
        now().saturating_sub(self.genesis_time)
    }

    /// Move the head to anvil's latest block, at most once every few slots.
    fn refresh(&mut self) -> Result<Head, String> {
        let slot = self.current_slot();
        let latest = rpc(&self.anvil, "eth_getBlockByNumber", json!(["latest", false]))?;
        let number = quantity(field(&latest, "number")?)?;
        let due = self
            .head
            .as_ref()
            .is_none_or(|h| h.block != number && slot >= h.signature_slot + HEAD_SPACING);
        if due {
            let (payload, payload_root) = payload(&latest)?;
            self.head = Some(Head {
                block: number,
                // A slot that has begun for every client, whose clock may be a little behind this one.
                signature_slot: slot.saturating_sub(1),
                payload,
                payload_root,
            });
        }
        self.head.clone().ok_or_else(|| "no head".to_string())
    }

    /// A full update for the current head: finalized header, attested header, signature.
    fn update(&mut self, with_next: bool, with_finality: bool) -> Result<Value, String> {
        let head = self.refresh()?;
        let committee_root = self.committee.hash_tree_root();
        let (mut payload, mut payload_root) = (head.payload.clone(), head.payload_root);
        if self.behaviour == Behaviour::Minority {
            // Forge the execution state: the few signers sign it honestly-looking, with valid branches.
            payload["state_root"] = Value::String(hex(&[0x66; 32]));
            let forged: ExecutionPayloadHeader =
                serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
            payload_root = forged.hash_tree_root();
        }
        let f_slot = head.signature_slot - 2;
        let (finalized, finalized_root, f_levels) =
            header(f_slot, &payload, &payload_root, &committee_root, &[0; 32]);
        if self.bootstraps.len() < MAX_BOOTSTRAPS {
            let boot = json!({ "version": "deneb", "data": {
                "header": finalized,
                "current_sync_committee": committee_json(&self.committee),
                "current_sync_committee_branch": roots_json(&tree_branch(&f_levels, 22)),
            }});
            self.bootstraps.insert(hex(&finalized_root), boot);
        }
        let (mut attested, attested_root, levels) = header(
            f_slot + 1,
            &payload,
            &payload_root,
            &committee_root,
            &finalized_root,
        );
        let (keys, signers, version) = match self.behaviour {
            Behaviour::ForeignKeys => (&self.foreign, COMMITTEE, DENEB_VERSION),
            Behaviour::WrongForkVersion => (&self.keys, COMMITTEE, [9, 9, 9, 9]),
            Behaviour::Minority => (&self.keys, 8, DENEB_VERSION),
            Behaviour::Honest | Behaviour::TamperedExecution => (&self.keys, COMMITTEE, DENEB_VERSION),
        };
        let aggregate = aggregate(keys, signers, &signing_root(version, &attested_root));
        if self.behaviour == Behaviour::TamperedExecution {
            attested["execution"]["state_root"] = Value::String(hex(&[0x77; 32]));
        }
        let mut data = json!({
            "attested_header": attested,
            "sync_aggregate": aggregate,
            "signature_slot": head.signature_slot.to_string(),
        });
        if with_finality {
            let mut fb = vec![u64_chunk(0)];
            fb.extend(tree_branch(&levels, 20));
            data["finalized_header"] = finalized;
            data["finality_branch"] = roots_json(&fb);
        }
        if with_next {
            data["next_sync_committee"] = committee_json(&self.committee);
            data["next_sync_committee_branch"] = roots_json(&tree_branch(&levels, 23));
        }
        Ok(json!({ "version": "deneb", "data": data }))
    }

    fn answer(&mut self, path: &str) -> Result<Value, String> {
        let base = "/eth/v1/beacon/light_client/";
        let rest = path.strip_prefix(base).ok_or("unknown path")?;
        if let Some(root) = rest.strip_prefix("bootstrap/") {
            Ok(self
                .bootstraps
                .get(root)
                .cloned()
                .unwrap_or_else(|| self.bootstrap.clone()))
        } else if rest.starts_with("updates") {
            Ok(Value::Array(vec![self.update(true, true)?]))
        } else if rest.starts_with("finality_update") {
            self.update(false, true)
        } else if rest.starts_with("optimistic_update") {
            self.update(false, false)
        } else {
            Err("unknown path".into())
        }
    }
}

impl BeaconHarness {
    /// Serve light-client data over the anvil chain at `anvil_url`, behaving as told.
    pub fn start(anvil_url: &str, behaviour: Behaviour) -> Result<BeaconHarness, String> {
        BeaconHarness::start_aged(anvil_url, behaviour, 64)
    }

    /// Like [`BeaconHarness::start`], with the chain's genesis `genesis_age` seconds ago: the checkpoint (slot
    /// 8) is that old, while the served heads are current (a device that was offline past the
    /// weak-subjectivity window). Sync-committee periods are six days long, so the chain stays in one.
    pub fn start_aged(
        anvil_url: &str,
        behaviour: Behaviour,
        genesis_age: u64,
    ) -> Result<BeaconHarness, String> {
        BeaconHarness::serve(anvil_url, behaviour, genesis_age, "127.0.0.1:0")
    }

    /// Like [`BeaconHarness::start_aged`], listening on `bind` (e.g. `0.0.0.0:5052` inside a container, where
    /// the clients are other containers).
    pub fn serve(
        anvil_url: &str,
        behaviour: Behaviour,
        genesis_age: u64,
        bind: &str,
    ) -> Result<BeaconHarness, String> {
        let keys = (0..COMMITTEE)
            .map(|i| key(i as u8 + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let foreign = (0..COMMITTEE)
            .map(|i| key(i as u8 + 101))
            .collect::<Result<Vec<_>, _>>()?;
        let pubkeys: Vec<[u8; 48]> = keys.iter().map(|k| k.sk_to_pk().to_bytes()).collect();
        let pks: Vec<_> = keys.iter().map(|k| k.sk_to_pk()).collect();
        let refs: Vec<_> = pks.iter().collect();
        let aggregate_pubkey = blst::min_pk::AggregatePublicKey::aggregate(&refs, false)
            .map_err(|e| format!("{e:?}"))?
            .to_public_key()
            .to_bytes();
        let committee = SyncCommittee {
            pubkeys,
            aggregate_pubkey,
        };
        let genesis_time = now().saturating_sub(genesis_age);
        let period_epochs = if genesis_age > 8192 * 8 / 2 { 65536 } else { 8192 };
        let genesis = rpc(anvil_url, "eth_getBlockByNumber", json!(["0x0", false]))?;
        let (p, p_root) = payload(&genesis)?;
        let committee_root = committee.hash_tree_root();
        let (header, root, levels) = header(8, &p, &p_root, &committee_root, &[0; 32]);
        let bootstrap = json!({ "version": "deneb", "data": {
            "header": header,
            "current_sync_committee": committee_json(&committee),
            "current_sync_committee_branch": roots_json(&tree_branch(&levels, 22)),
        }});
        let config = format!(
            "CONFIG_NAME: anvil-harness\nPRESET_BASE: minimal\nGENESIS_TIME: {genesis_time}\n\
             GENESIS_VALIDATORS_ROOT: {}\nSECONDS_PER_SLOT: 1\nEPOCHS_PER_SYNC_COMMITTEE_PERIOD: {period_epochs}\n\
             GENESIS_FORK_VERSION: 0x00000001\nALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 0\n\
             BELLATRIX_FORK_VERSION: 0x02000001\nBELLATRIX_FORK_EPOCH: 0\nCAPELLA_FORK_VERSION: 0x03000001\n\
             CAPELLA_FORK_EPOCH: 0\nDENEB_FORK_VERSION: 0x04000001\nDENEB_FORK_EPOCH: 0\n\
             ELECTRA_FORK_VERSION: 0x05000001\nELECTRA_FORK_EPOCH: 18446744073709551615\n",
            hex(&GENESIS_VALIDATORS_ROOT)
        );
        let state = Arc::new(Mutex::new(State {
            anvil: anvil_url.to_owned(),
            genesis_time,
            behaviour,
            keys,
            foreign,
            committee,
            bootstrap,
            bootstraps: std::collections::BTreeMap::new(),
            head: None,
        }));
        let listener = TcpListener::bind(bind).map_err(|e| format!("listen on {bind}: {e}"))?;
        let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        let served = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                let _ = reader.read_line(&mut line);
                // Drain the request headers.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let answer = served
                    .lock()
                    .map_err(|e| e.to_string())
                    .and_then(|mut s| s.answer(&path));
                let (status, body) = match answer {
                    Ok(v) => ("200 OK", v.to_string()),
                    Err(e) => ("500 Internal Server Error", json!({ "message": e }).to_string()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(BeaconHarness {
            url,
            config,
            checkpoint: hex(&root),
            state,
        })
    }

    /// The root of the newest finalized header served (a checkpoint an operator would take from a beacon
    /// node they trust).
    pub fn fresh_checkpoint(&self) -> Result<String, String> {
        let mut s = self.state.lock().map_err(|e| e.to_string())?;
        s.update(false, true)?;
        let slot = |b: &Value| {
            b["data"]["header"]["beacon"]["slot"]
                .as_str()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
        };
        s.bootstraps
            .iter()
            .max_by_key(|(_, b)| slot(b))
            .map(|(root, _)| root.clone())
            .ok_or_else(|| "no finalized header served yet".to_string())
    }

    /// Change how the server behaves from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        if let Ok(mut s) = self.state.lock() {
            s.behaviour = behaviour;
        }
    }

    /// The anvil block the served head carries now (moving it to anvil's latest block when due).
    pub fn head_block(&self) -> Result<u64, String> {
        let mut s = self.state.lock().map_err(|e| e.to_string())?;
        Ok(s.refresh()?.block)
    }
}
