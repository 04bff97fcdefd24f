//! Bitswap messages from peers: decoding never panics, stays within the limits, and what decodes re-encodes
//! to a message that decodes to the same thing.
#![no_main]

use firmchain_p2p::bitswap::proto::{MAX_ENTRIES, Message};
const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;
use firmchain_p2p::bitswap::proto::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::decode(&Bytes::copy_from_slice(data)) else { return };
    assert!(msg.wantlist.len() <= MAX_ENTRIES);
    assert!(msg.blocks.iter().all(|b| b.data.len() <= MAX_BLOCK_SIZE));
    let again = Message::decode(&Bytes::from(msg.encode())).expect("re-encoded message decodes");
    assert_eq!(again, msg);
    for b in &msg.blocks {
        // Hashing under the claimed prefix either fails cleanly or yields a CID with that prefix.
        if let Ok(cid) = b.prefix.cid_of(&b.data) {
            assert_eq!(cid.codec(), b.prefix.codec);
        }
    }
});
