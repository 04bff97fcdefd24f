//! Storage proofs of the FirmwareIndex on a real anvil, verified against block headers (the `rpc` mode of
//! dev chains: headers from a trusted RPC, state still proven): the honest proof verifies, a forged value, a
//! forged proof node and a header from another block are rejected.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{B256, U256};
use alloy::providers::{DynProvider, Provider};
use firmchain_contracts::{provider, slots};
use firmchain_lightclient::execution::{ExecutionError, verify_header, verify_storage_values};
use firmchain_tests::Anvil;
use firmchain_update::Sequence;

fn release(seq: u64, image: &[u8]) -> firmchain_update::ReleaseRecord {
    firmchain_tests::sample_release(seq, image)
}

/// The header of block `n`, checked against its hash.
async fn header(reader: &DynProvider, n: u64) -> alloy::consensus::Header {
    let block = reader
        .get_block_by_number(BlockNumberOrTag::Number(n))
        .await
        .unwrap()
        .unwrap();
    verify_header(&block.header.inner, block.header.hash).unwrap();
    block.header.inner
}

#[tokio::test]
async fn firmware_index_head_is_proven_against_the_state_root() {
    let anvil = Anvil::start().unwrap();
    let index = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let first = release(1, b"image one");
    let published = index.publish(&first).await.unwrap();
    let n = published.block.unwrap();

    let reader = provider(&anvil.url, None).unwrap();
    let at_n = header(&reader, n).await;
    let keys = [
        slots::head(&first.product),
        slots::digest(&first.product, Sequence(1)),
    ];
    let proof = reader
        .get_proof(index.address(), keys.to_vec())
        .number(n)
        .await
        .unwrap();
    let values = verify_storage_values(at_n.state_root, index.address(), &keys, &proof).unwrap();
    assert_eq!(values[0], U256::from(1), "head");
    assert_eq!(
        B256::from(values[1]),
        B256::from(first.digest()),
        "digest equals the record's keccak"
    );

    // A forged value.
    let mut forged = proof.clone();
    forged.storage_proof[0].value = U256::from(2);
    assert!(matches!(
        verify_storage_values(at_n.state_root, index.address(), &keys, &forged),
        Err(ExecutionError::StorageProof { .. })
    ));
    // A forged proof node.
    let mut forged = proof.clone();
    let node = forged.storage_proof[1].proof[0].to_vec();
    let mut node = node;
    let last = node.len() - 1;
    node[last] ^= 1;
    forged.storage_proof[1].proof[0] = node.into();
    assert!(verify_storage_values(at_n.state_root, index.address(), &keys, &forged).is_err());
    // A slot other than the one asked for.
    let swapped = [keys[1], keys[0]];
    assert!(matches!(
        verify_storage_values(at_n.state_root, index.address(), &swapped, &proof),
        Err(ExecutionError::WrongSlot { .. })
    ));

    // A proof from a later block (head = 2) against the header of block n.
    let later = index
        .publish(&release(2, b"image two"))
        .await
        .unwrap()
        .block
        .unwrap();
    let newer = reader
        .get_proof(index.address(), keys.to_vec())
        .number(later)
        .await
        .unwrap();
    assert_eq!(newer.storage_proof[0].value, U256::from(2));
    assert!(verify_storage_values(at_n.state_root, index.address(), &keys, &newer).is_err());
    let at_later = header(&reader, later).await;
    let values = verify_storage_values(at_later.state_root, index.address(), &keys, &newer).unwrap();
    assert_eq!(values[0], U256::from(2));
}

#[tokio::test]
async fn execution_rpc_fails_over_to_the_next_endpoint_and_times_out_silent_ones() {
    use firmchain_lightclient::execution::verify_receipts;
    use firmchain_lightclient::execution_rpc::{ExecutionRpc, HttpExecutionRpc};
    let anvil = Anvil::start().unwrap();
    let index = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let n = index.publish(&release(1, b"one")).await.unwrap().block.unwrap();

    // A port that accepts connections and never answers, then a refused port, then anvil.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}", refused.local_addr().unwrap());
    drop(refused);
    let rpc = HttpExecutionRpc::new(
        vec![silent_url.clone(), refused_url, anvil.url.clone()],
        std::time::Duration::from_millis(500),
    )
    .unwrap();
    let (header, hash) = rpc.header(BlockNumberOrTag::Number(n)).await.unwrap();
    verify_header(&header, hash).unwrap();
    let keys = vec![slots::head(&release(1, b"one").product)];
    let proof = rpc.proof(index.address(), keys.clone(), n).await.unwrap();
    assert_eq!(
        verify_storage_values(header.state_root, index.address(), &keys, &proof).unwrap()[0],
        U256::from(1)
    );
    let receipts = rpc.block_receipts(n).await.unwrap();
    verify_receipts(header.receipts_root, &receipts).unwrap();

    // Only the silent endpoint: the error names it and the timeout.
    let only_silent =
        HttpExecutionRpc::new(vec![silent_url.clone()], std::time::Duration::from_millis(300)).unwrap();
    let err = only_silent
        .header(BlockNumberOrTag::Latest)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&silent_url) && err.contains("timed out"), "{err}");
    assert!(HttpExecutionRpc::new(vec![], std::time::Duration::from_secs(1)).is_err());
}
