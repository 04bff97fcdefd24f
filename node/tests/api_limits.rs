//! The HTTP API's limits on a running repository node (`firmchain run`, the ApiState that `cmd/serve.rs`
//! builds from the configuration): an over-cap body, a product name that is a path, a second publish while
//! one is in flight, and a slow client; afterwards an honest publish still goes through.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Fleet;
use firmchain_tests::fleet::{NodeSpec, http};

fn post_head(api: &str, len: usize) -> String {
    format!("POST /publish HTTP/1.1\r\nHost: {api}\r\nContent-Length: {len}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_running_api_refuses_oversized_pathlike_concurrent_and_slow_requests() {
    let fleet = Fleet::new(256 * 1024, 2).await;
    let repo = fleet.spawn(NodeSpec {
        dir: fleet.dir.path().join("repo"),
        repository: true,
        key: Some(fleet.chain.key().to_owned()),
        set: vec!["api.max_body_bytes=1048576".into()],
        ..NodeSpec::default()
    });

    // Over the configured cap: 413, answered from Content-Length before the body is read.
    let (code, v) = http(&repo.api, "POST", "/publish", &vec![7u8; 2 << 20], None).unwrap();
    assert_eq!(code, 413, "{v}");
    assert!(
        v.to_string().contains("1048576"),
        "the answer names the limit: {v}"
    );

    // A product name that is a path: 400, nothing written.
    let (code, v) = http(&repo.api, "POST", "/publish?product=../x", &fleet.images[1], None).unwrap();
    assert_eq!(code, 400, "{v}");
    assert!(!fleet.dir.path().join("x").exists());

    // One publish in flight (its body still arriving): a second one is told to come back.
    let mut first = TcpStream::connect(&repo.api).unwrap();
    first
        .write_all(post_head(&repo.api, fleet.images[1].len()).as_bytes())
        .unwrap();
    first.write_all(&fleet.images[1][..1024]).unwrap();
    // It holds the gate once its body is being spooled (a file in the data folder's spool).
    let spool = fleet.dir.path().join("repo").join("spool");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&spool).is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            Instant::now() < deadline,
            "the first publish never started spooling"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, busy) = http(&repo.api, "POST", "/publish", &fleet.images[1], None).unwrap();
    assert_eq!(
        code, 429,
        "a second publish was accepted while one was in flight: {busy}"
    );
    assert!(busy.to_string().contains("in flight"), "{busy}");

    // A client that never finishes its headers is cut off, while /status stays served.
    let mut slow = TcpStream::connect(&repo.api).unwrap();
    slow.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (code, _) = http(&repo.api, "GET", "/status", b"", None).unwrap();
    assert_eq!(code, 200);
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).expect("the node kept a slow client for 60 s");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.contains("408"), "{answer}");

    // The abandoned publish frees the gate; an honest publish goes through.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, v) = http(&repo.api, "POST", "/publish", &fleet.images[2], None).unwrap();
        if code == 200 {
            break;
        }
        assert!(
            code == 429 && Instant::now() < deadline,
            "honest publish: {code} {v}"
        );
    }
}
