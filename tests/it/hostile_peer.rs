//! A hostile libp2p peer for tests: a bare swarm (TCP, noise, yamux) with only libp2p-stream, so a test can
//! write any bytes it likes on Bitswap streams, and the memory high-water mark of this process.

use std::time::Duration;

use cid::Cid;
use firmchain_p2p::bitswap::PROTOCOLS;
use firmchain_p2p::bitswap::proto::{Entry, Message, WantType};
use firmchain_p2p::{Multiaddr, PeerId};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Stream, noise, tcp, yamux};

/// A libp2p swarm over TCP with only the stream behaviour: the test speaks the protocols by hand.
pub fn stream_swarm() -> libp2p::Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// A connected hostile peer. Whatever the node sends back on Bitswap is read and thrown away, so the node is
/// never slowed down by a full window: the attack costs it all it can.
pub struct HostilePeer {
    pub peer_id: PeerId,
    pub node: PeerId,
    control: libp2p_stream::Control,
    _swarm: tokio::task::JoinHandle<()>,
}

impl HostilePeer {
    /// Connect to the node at `addr`.
    pub async fn connect(addr: &Multiaddr) -> HostilePeer {
        Self::try_connect(addr).await.unwrap()
    }

    /// Connect to the node at `addr`, or say why not.
    pub async fn try_connect(addr: &Multiaddr) -> Result<HostilePeer, String> {
        Self::try_connect_with(addr, true).await
    }

    /// Connect without speaking Bitswap at all (a bare connection: the node cannot ask it for blocks).
    pub async fn try_connect_bare(addr: &Multiaddr) -> Result<HostilePeer, String> {
        Self::try_connect_with(addr, false).await
    }

    async fn try_connect_with(addr: &Multiaddr, bitswap: bool) -> Result<HostilePeer, String> {
        let mut swarm = stream_swarm();
        let peer_id = *swarm.local_peer_id();
        let mut control = swarm.behaviour().new_control();
        for protocol in PROTOCOLS.into_iter().filter(|_| bitswap) {
            let mut incoming = control.accept(protocol).unwrap();
            tokio::spawn(async move {
                while let Some((_, mut s)) = incoming.next().await {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    });
                }
            });
        }
        swarm.dial(addr.clone()).map_err(|e| e.to_string())?;
        let node = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => break Ok(peer_id),
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        break Err(format!("dialing {addr}: {error}"));
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| "connecting timed out".to_string())??;
        let task = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        Ok(HostilePeer {
            peer_id,
            node,
            control,
            _swarm: task,
        })
    }

    /// Open a stream of `protocol` to the node (e.g. the proof protocols).
    pub async fn open_on(&self, protocol: libp2p::StreamProtocol) -> Result<Stream, String> {
        let mut control = self.control.clone();
        tokio::time::timeout(Duration::from_secs(20), control.open_stream(self.node, protocol))
            .await
            .map_err(|_| "opening a stream timed out".to_string())?
            .map_err(|e| e.to_string())
    }

    /// Open a Bitswap 1.2.0 stream to the node.
    pub async fn open(&self) -> Result<Stream, String> {
        let mut control = self.control.clone();
        tokio::time::timeout(
            Duration::from_secs(20),
            control.open_stream(self.node, PROTOCOLS[0].clone()),
        )
        .await
        .map_err(|_| "opening a stream timed out".to_string())?
        .map_err(|e| e.to_string())
    }
}

/// Write `msg` with its length prefix.
pub async fn write_message(s: &mut Stream, msg: &Message) -> std::io::Result<()> {
    let body = msg.encode();
    let mut frame = Vec::with_capacity(body.len() + 5);
    firmchain_update::varint::encode(body.len() as u64, &mut frame);
    frame.extend_from_slice(&body);
    s.write_all(&frame).await?;
    s.flush().await
}

/// A message of want-block entries (with `send_dont_have`) for `cids`, repeats and all.
pub fn wants(cids: impl IntoIterator<Item = Cid>) -> Message {
    Message {
        wantlist: cids
            .into_iter()
            .map(|cid| Entry {
                cid,
                priority: 1,
                cancel: false,
                want: WantType::Block,
                send_dont_have: true,
            })
            .collect(),
        ..Message::default()
    }
}

/// The peak resident set of this process (`VmHWM`), in bytes.
pub fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("no VmHWM in /proc/self/status");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    put_varint((field << 3) | 2, out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A length-prefixed Kademlia `ADD_PROVIDER` message: `provider` provides `key` at `addrs`.
pub fn add_provider(key: &[u8], provider: PeerId, addrs: &[Multiaddr]) -> Vec<u8> {
    let mut peer = Vec::new();
    put_bytes(1, &provider.to_bytes(), &mut peer);
    for a in addrs {
        put_bytes(2, &a.to_vec(), &mut peer);
    }
    let mut msg = vec![0x08, 2]; // type = ADD_PROVIDER
    put_bytes(2, key, &mut msg);
    put_bytes(9, &peer, &mut msg);
    let mut frame = Vec::with_capacity(msg.len() + 3);
    put_varint(msg.len() as u64, &mut frame);
    frame.extend_from_slice(&msg);
    frame
}

/// A length-prefixed Kademlia `GET_PROVIDERS` message for `key`.
pub fn get_providers(key: &[u8]) -> Vec<u8> {
    let mut msg = vec![0x08, 3];
    put_bytes(2, key, &mut msg);
    let mut frame = Vec::new();
    put_varint(msg.len() as u64, &mut frame);
    frame.extend_from_slice(&msg);
    frame
}

impl HostilePeer {
    /// Open a stream of `protocol` to the node.
    pub async fn open_protocol(&self, protocol: &'static str) -> Result<Stream, String> {
        let mut control = self.control.clone();
        tokio::time::timeout(
            Duration::from_secs(20),
            control.open_stream(self.node, libp2p::StreamProtocol::new(protocol)),
        )
        .await
        .map_err(|_| "opening a stream timed out".to_string())?
        .map_err(|e| e.to_string())
    }

    /// Ask the node to store `count` provider records of ours, for random keys, each with `addrs` addresses,
    /// then wait until it has read them all (it answers a `GET_PROVIDERS` sent after them). Returns how many
    /// messages were written before the node closed the stream.
    pub async fn flood_provider_records(&self, count: usize, addrs: usize) -> usize {
        let addrs: Vec<Multiaddr> = (0..addrs)
            .map(|i| {
                format!("/ip4/10.0.{}.{}/tcp/4001", i / 250, i % 250 + 1)
                    .parse()
                    .unwrap()
            })
            .collect();
        let mut written = 0;
        let mut s = None;
        let mut key = [0u8; 34];
        key[0] = 0x12;
        key[1] = 32;
        while written < count {
            if s.is_none() {
                // The node may close a stream (a limit, an idle timeout): open another.
                match self.open_protocol("/ipfs/kad/1.0.0").await {
                    Ok(st) => s = Some(st),
                    Err(_) => break,
                }
            }
            let Some(st) = s.as_mut() else { break };
            let mut batch = Vec::new();
            for _ in 0..256.min(count - written) {
                key[2..10].copy_from_slice(&(written as u64).to_le_bytes());
                key[10..18].copy_from_slice(&self.peer_id.to_bytes()[6..14]);
                batch.extend_from_slice(&add_provider(&key, self.peer_id, &addrs));
                written += 1;
            }
            if st.write_all(&batch).await.is_err() {
                s = None;
            }
        }
        if let Some(mut st) = s {
            let _ = st.write_all(&get_providers(&key)).await;
            let _ = st.flush().await;
            let mut b = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_secs(60), st.read(&mut b)).await;
        }
        written
    }
}
