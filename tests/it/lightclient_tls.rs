//! HTTPS to the RPCs, as public providers serve them: a local HTTPS front (a throwaway CA, rcgen) before anvil
//! and the recorded beacon API. Accepted when the CA comes through `SSL_CERT_FILE` or `chain.ca_file`;
//! refused without it, and when the certificate names another host.

use std::ffi::OsString;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use firmchain_lightclient::execution::verify_header;
use firmchain_lightclient::execution_rpc::{ExecutionRpc, HttpExecutionRpc};
use firmchain_lightclient::http::{HttpOptions, client_with, root_store};
use firmchain_lightclient::rpc::{ConsensusRpc, HttpRpc};
use firmchain_tests::Anvil;
use firmchain_tests::tls::HttpsFront;

const TIMEOUT: Duration = Duration::from_secs(10);

fn options(ca_file: Option<std::path::PathBuf>) -> HttpOptions {
    HttpOptions {
        timeout: Some(TIMEOUT),
        ca_file,
    }
}

async fn latest(rpc: &HttpExecutionRpc) -> Result<u64, String> {
    let (header, hash) = rpc
        .header(BlockNumberOrTag::Latest)
        .await
        .map_err(|e| e.to_string())?;
    verify_header(&header, hash).map_err(|e| e.to_string())?;
    Ok(header.number)
}

#[tokio::test]
async fn an_https_rpc_is_accepted_through_ssl_cert_file() {
    let anvil = Anvil::start().unwrap();
    let front = HttpsFront::start(&anvil.url, &["127.0.0.1", "localhost"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    front.write_ca(&ca).unwrap();
    // The environment as the process would see it (setting the real one is not thread-safe).
    let env = |k: &str| (k == "SSL_CERT_FILE").then(|| OsString::from(&ca));
    let roots = root_store(None, env).unwrap();
    let client = client_with(&options(None), roots).unwrap();
    let rpc = HttpExecutionRpc::with_client(vec![front.url.clone()], client, TIMEOUT).unwrap();
    latest(&rpc).await.unwrap();

    let dirs = dir.path().as_os_str().to_owned();
    let env = |k: &str| (k == "SSL_CERT_DIR").then(|| dirs.clone());
    let client = client_with(&options(None), root_store(None, env).unwrap()).unwrap();
    let rpc = HttpExecutionRpc::with_client(vec![front.url.clone()], client, TIMEOUT).unwrap();
    latest(&rpc).await.unwrap();
}

#[tokio::test]
async fn an_https_rpc_is_accepted_through_the_configured_ca_file() {
    let anvil = Anvil::start().unwrap();
    let front = HttpsFront::start(&anvil.url, &["127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    front.write_ca(&ca).unwrap();
    let rpc = HttpExecutionRpc::with_options(vec![front.url.clone()], &options(Some(ca.clone()))).unwrap();
    latest(&rpc).await.unwrap();
    // The beacon client shares the HTTP setup.
    let beacon =
        HttpsFront::start(&firmchain_tests::serve_beacon_fixtures(|_, b| b), &["127.0.0.1"]).unwrap();
    beacon.write_ca(&ca).unwrap();
    let rpc = HttpRpc::with_options(vec![beacon.url.clone()], &options(Some(ca))).unwrap();
    let update = rpc.finality_update().await.unwrap();
    assert_eq!(update.attested_header.beacon.slot, 7109430);
}

#[tokio::test]
async fn an_https_rpc_with_an_unknown_ca_is_refused() {
    let anvil = Anvil::start().unwrap();
    let front = HttpsFront::start(&anvil.url, &["127.0.0.1"]).unwrap();
    let rpc = HttpExecutionRpc::with_options(vec![front.url.clone()], &options(None)).unwrap();
    let err = latest(&rpc).await.unwrap_err();
    assert!(err.contains(&front.url), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    let beacon = HttpRpc::with_options(vec![front.url.clone()], &options(None)).unwrap();
    let err = beacon.finality_update().await.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn an_https_rpc_whose_certificate_names_another_host_is_refused() {
    let anvil = Anvil::start().unwrap();
    let front = HttpsFront::start(&anvil.url, &["rpc.example.org"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    front.write_ca(&ca).unwrap();
    let rpc = HttpExecutionRpc::with_options(vec![front.url.clone()], &options(Some(ca))).unwrap();
    let err = latest(&rpc).await.unwrap_err();
    assert!(err.contains(&front.url), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
}
