//! What an operator meets: the systemd unit (verified by systemd-analyze), readiness and watchdog over a real
//! notification socket, JSON logs, exit codes in `--help`, completions and the man page, `status` from the data
//! folder, `node health`, secrets from files and credentials, and snake_case JSON keys everywhere.

mod common;
use common::NO_CHAIN;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use firmchain_actors::slots::Slots;
use firmchain_actors::state::NodeState;
use firmchain_update::{Blake3Hash, Sequence};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_firmchain")
}

/// `firmchain ARGS` with none of this process's configuration variables.
fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("FIRMCHAIN_") || k == "CREDENTIALS_DIRECTORY" || k == "NOTIFY_SOCKET" {
            c.env_remove(k);
        }
    }
    c
}

fn run(args: &[&str]) -> Output {
    cmd(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// The settings of a device node that starts without any chain (nothing listens on the RPC; it retries).
fn node_settings(factory: &Path) -> Vec<String> {
    [
        "chain.mode=rpc",
        "chain.execution_rpc=http://127.0.0.1:9",
        "chain.contract=0x5FbDB2315678afecb367f032c93F642f64180aa3",
        "chain.product=acme-sensor",
        "chain.poll_interval_secs=3600",
        "p2p.listen=/ip4/127.0.0.1/tcp/0",
        "api.listen=127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("install.initial_image={}", factory.display())])
    .flat_map(|s| ["--set".to_owned(), s])
    .collect()
}

fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < until, "the node did not stop within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next datagram on `socket` that contains `needle`, within `within`.
fn wait_datagram(socket: &UnixDatagram, needle: &str, within: Duration) -> String {
    let until = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {needle:?} from the node within {within:?}");
        socket.set_read_timeout(Some(left)).unwrap();
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == needle) {
            return msg;
        }
    }
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd/firmchain.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=60",
        "StateDirectory=firmchain",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX",
        "ExecStart=/usr/local/bin/firmchain run",
    ] {
        assert!(text.lines().any(|l| l == line), "the unit lacks {line:?}");
    }
    // No secret in the environment: only credentials.
    assert!(
        !text.lines().any(|l| l.starts_with("Environment=")
            && (l.contains("KEY") || l.contains("TOKEN") || l.contains("PASSWORD"))),
        "a secret in Environment="
    );
    let Ok(which) = Command::new("systemd-analyze").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing in CI: scripts/setup installs Debian's systemd"
        );
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (Debian package systemd); the unit was not verified"
        );
        return;
    };
    assert!(which.status.success());
    // systemd-analyze checks that ExecStart names an executable: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("firmchain.service");
    std::fs::write(
        &copy,
        text.replace(
            "ExecStart=/usr/local/bin/firmchain run",
            &format!("ExecStart={} run", bin()),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    // Unknown or misspelt keys are only warnings (exit 0): any output at all fails the test.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
    // And it does catch a mistake: the check above is not vacuous.
    std::fs::write(
        &copy,
        text.replace("ProtectHome=yes", "ProtectHome=yes\nProtecHome=yes"),
    )
    .unwrap();
    let bad = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(stderr(&bad).contains("ProtecHome"), "{}", stderr(&bad));
}

#[test]
fn run_tells_systemd_it_is_ready_once_the_api_listens_feeds_the_watchdog_and_says_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let factory = dir.path().join("factory.bin");
    std::fs::write(&factory, vec![7u8; 200_000]).unwrap();
    let data = dir.path().join("data");
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();

    let mut args = vec![
        "--json",
        "--log-format",
        "json",
        "--log-level",
        "info",
        "run",
        "--data",
    ];
    args.push(data.to_str().unwrap());
    let settings = node_settings(&factory);
    args.extend(settings.iter().map(String::as_str));
    let mut child = cmd(&args)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ready = wait_datagram(&socket, "READY=1", Duration::from_secs(60));
    let api = ready
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no API address in {ready:?}"))
        .trim_end_matches(',')
        .to_owned();
    // READY=1 means the API answers now.
    let health = run(&["--json", "node", "health", "--api", &api]);
    assert_eq!(health.status.code(), Some(0), "{}", stderr(&health));
    assert_eq!(json(&health)["healthy"], true);
    // With the API on, `status` asks it.
    let status = json(&run(&[
        "--json",
        "status",
        "--api",
        &api,
        "--data",
        data.to_str().unwrap(),
    ]));
    assert_eq!(status["source"], "api");
    assert_eq!(status["role"], "device");
    // A watch is a stream: JSON Lines, one status a line.
    let mut watch = cmd(&["--json", "node", "status", "--api", &api, "--watch", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(watch.stdout.take().unwrap()));
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["role"], "device", "{line}");
    }
    terminate(&watch);
    assert!(wait_exit(&mut watch, Duration::from_secs(10)).success());
    // The chain was never read: a health check that needs it fails, with exit code 9.
    let chain = run(&["node", "health", "--api", &api, "--chain"]);
    assert_eq!(chain.status.code(), Some(9), "{}", stderr(&chain));
    assert!(stderr(&chain).contains("never verified"), "{}", stderr(&chain));

    wait_datagram(&socket, "WATCHDOG=1", Duration::from_secs(10));
    wait_datagram(&socket, "WATCHDOG=1", Duration::from_secs(10));
    terminate(&child);
    wait_datagram(&socket, "STOPPING=1", Duration::from_secs(30));
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status}");

    // Every log line is one JSON object with level, target and message.
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 3, "{err}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing in {line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""target":"firmchain_actors::node""#)),
        "module targets are kept: {err}"
    );

    // Stopped, the node's status comes from its data folder, and health fails.
    let gone = run(&["node", "health", "--api", &api]);
    assert_eq!(gone.status.code(), Some(9));
    let offline = json(&run(&[
        "--json",
        "status",
        "--api",
        &api,
        "--data",
        data.to_str().unwrap(),
    ]));
    assert_eq!(offline["source"], "data_dir");
    assert_eq!(offline["installed"]["sequence"], 0);
    assert_eq!(
        offline["installed"]["hash"],
        Blake3Hash::of(&vec![7u8; 200_000]).to_string()
    );
    assert!(offline["api_error"].as_str().unwrap().contains(&api), "{offline}");
}

/// `firmchain --json [LOG] run` of a device with its data folder in `dir`, stdout and stderr piped; the
/// child and its data folder.
fn spawn_device(dir: &Path, log: &[&str]) -> (Child, PathBuf) {
    let factory = dir.join("factory.bin");
    std::fs::write(&factory, b"factory").unwrap();
    let data = dir.join("data");
    let mut args = vec!["--json"];
    args.extend(log);
    args.extend(["run", "--data", data.to_str().unwrap()]);
    let settings = node_settings(&factory);
    args.extend(settings.iter().map(String::as_str));
    let child = cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, data)
}

#[test]
fn without_a_notify_socket_the_node_runs_as_before() {
    // (The socket is optional: a node outside systemd must not fail or log about it.)
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = spawn_device(dir.path(), &["--log-level", "warn"]);
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    let started: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(started["running"], "device");
    terminate(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!err.contains("systemd"), "{err}");
}

#[test]
fn a_sigterm_while_the_node_starts_stops_it_cleanly() {
    // A supervisor may stop a node at any time after it began to open its data folder: the
    // signal is caught from then on, so the node still stops through its own shutdown.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, data) = spawn_device(dir.path(), &[]);
    let store = data.join("blocks.redb");
    let until = Instant::now() + Duration::from_secs(30);
    while !store.exists() {
        assert!(
            Instant::now() < until,
            "the node never opened {}",
            store.display()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the node exited before it opened its store: {status}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
}

#[test]
fn text_logs_keep_the_module_target_and_a_bad_level_is_a_usage_error() {
    // A one-off p2p fetch that finds nobody logs its start at info.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out");
    let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let args = [
        "--log-level",
        "info",
        "p2p",
        "get",
        cid,
        "-o",
        out_file.to_str().unwrap(),
        "--stall-timeout",
        "1",
    ];
    let out = run(&args);
    assert!(
        stderr(&out).contains(" INFO firmchain::p2p: p2p node started"),
        "{}",
        stderr(&out)
    );
    let json_args = [&["--log-format", "json"][..], &args[..]].concat();
    let out = run(&json_args);
    let events: Vec<Value> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events.iter().any(|e| e["target"] == "firmchain::p2p"
            && e["message"] == "p2p node started"
            && e["level"] == "INFO"),
        "{}",
        stderr(&out)
    );
    let bad = run(&["--log-level", "loud=[", "hash", "/dev/null"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--log-level"), "{}", stderr(&bad));
}

#[test]
fn help_lists_every_exit_code() {
    let help = stdout(&run(&["--help"]));
    for (code, meaning) in [
        (0, "success"),
        (1, "I/O or other failure"),
        (2, "usage or configuration error"),
        (5, "hash mismatch"),
        (8, "chain data failed verification"),
        (9, "the node is not healthy"),
    ] {
        assert!(
            help.contains(&format!("{code:>4}  {meaning}")),
            "{code} {meaning}:\n{help}"
        );
    }
}

#[test]
fn completions_and_the_man_page_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["status", "completions", "log-format", "health"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // The bash script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("firmchain.bash");
    std::fs::write(&script, run(&["completions", "bash"]).stdout).unwrap();
    if let Ok(check) = Command::new("bash").arg("-n").arg(&script).output() {
        assert!(check.status.success(), "{}", stderr(&check));
    }
    let man = stdout(&run(&["man"]));
    assert!(man.contains(".TH firmchain 1"), "{man}");
    for word in ["completions", "status", "Exit codes", "the node is not healthy"] {
        assert!(man.contains(word), "the man page lacks {word}");
    }
    assert!(run(&["completions", "tcsh"]).status.code() == Some(2));
}

/// A data folder as a stopped node leaves it: slots with two images and a rolled-back release.
fn stopped_node(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let factory = dir.join("factory.bin");
    std::fs::write(&factory, b"factory image").unwrap();
    let mut slots = Slots::open(&data.join("slots"), Some(&factory)).unwrap();
    let (_, mut f) = slots.begin().unwrap();
    std::io::Write::write_all(&mut f, b"release one").unwrap();
    drop(f);
    slots.commit(Sequence(1), Blake3Hash::of(b"release one")).unwrap();
    let state = NodeState::open(&data.join("state.redb")).unwrap();
    state
        .record_rollback(
            &"acme-sensor".parse().unwrap(),
            Sequence(2),
            "health check exited with code 1",
        )
        .unwrap();
    data
}

#[test]
fn status_reads_the_data_folder_when_the_api_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = stopped_node(dir.path());
    let d = data.to_str().unwrap();
    // Nothing listens on port 1.
    let v = json(&run(&[
        "--json",
        "status",
        "--api",
        "http://127.0.0.1:1",
        "--data",
        d,
    ]));
    assert_eq!(v["source"], "data_dir");
    assert_eq!(v["installed"]["sequence"], 1);
    assert_eq!(v["installed"]["slot"], "b");
    assert_eq!(v["installed"]["hash"], Blake3Hash::of(b"release one").to_string());
    assert_eq!(v["previous"]["sequence"], 0);
    assert_eq!(v["rollbacks"][0]["sequence"], 2);
    assert!(v["api_error"].as_str().unwrap().contains("127.0.0.1:1"));
    let human = stdout(&run(&["status", "--api", "http://127.0.0.1:1", "--data", d]));
    assert!(human.contains("installed  release 1 in slot b"), "{human}");
    assert!(
        human.contains("rolled back release 2: health check exited with code 1"),
        "{human}"
    );
    // --offline does not ask the API.
    let v = json(&run(&["--json", "status", "--offline", "--data", d]));
    assert!(v.get("api_error").is_none());
    // From the node's configuration file: its data_dir.
    let conf = dir.path().join("node.toml");
    std::fs::write(
        &conf,
        format!(
            // Incomplete (no contract: the service may get it from its environment): status needs two keys.
            "data_dir = {:?}\n[api]\nlisten = \"127.0.0.1:1\"\n[chain]\nproduct = \"acme-sensor\"\n",
            d
        ),
    )
    .unwrap();
    let v = json(&run(&["--json", "status", "--config", conf.to_str().unwrap()]));
    assert_eq!(v["installed"]["sequence"], 1);
    assert!(v["api_error"].as_str().unwrap().contains("127.0.0.1:1"), "{v}");
    // No folder: a usage error that says what was tried.
    let none = run(&[
        "status",
        "--api",
        "http://127.0.0.1:1",
        "--data",
        "/nonexistent/firmchain",
    ]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("/nonexistent/firmchain") && stderr(&none).contains("127.0.0.1:1"));
}

#[test]
fn secrets_come_from_one_of_value_file_or_credential() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(
        &key,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n",
    )
    .unwrap();
    let deploy = || {
        let mut c = cmd(&[
            "contract",
            "deploy",
            "--rpc",
            "http://127.0.0.1:9",
            "--rpc-timeout",
            "2",
        ]);
        c.stdin(Stdio::null());
        c
    };
    // Both the value and the file: refused before any network work, naming both.
    let both = deploy()
        .env("FIRMCHAIN_PRIVATE_KEY", "0x01")
        .env("FIRMCHAIN_PRIVATE_KEY_FILE", &key)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(stderr(&both).contains("set FIRMCHAIN_PRIVATE_KEY or FIRMCHAIN_PRIVATE_KEY_FILE, not both"));
    // The file (with its newline): the key parses, and the command gets as far as the (absent) RPC.
    let file = deploy().env("FIRMCHAIN_PRIVATE_KEY_FILE", &key).output().unwrap();
    assert_eq!(file.status.code(), Some(1), "{}", stderr(&file));
    assert!(!stderr(&file).contains("private key"), "{}", stderr(&file));
    // A systemd credential: read from $CREDENTIALS_DIRECTORY/private_key; a bad one is named, not echoed.
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("private_key"), "not-a-key-4242\n").unwrap();
    let cred = deploy().env("CREDENTIALS_DIRECTORY", &creds).output().unwrap();
    assert!(
        stderr(&cred).contains("not a 32-byte hex private key"),
        "{}",
        stderr(&cred)
    );
    assert!(
        !stderr(&cred).contains("4242"),
        "the key was echoed: {}",
        stderr(&cred)
    );

    // The node's API token: api.token_file, checked by `run --check`, which never prints the token.
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-secret-77\n").unwrap();
    let base = [
        &["--json", "run", "--check", "--repository"][..],
        &NO_CHAIN,
        &["--set", "api.listen=0.0.0.0:8420"],
    ]
    .concat();
    let token_file = format!("api.token_file={}", token.display());
    let ok = run(&[&base[..], &["--set", &token_file]].concat());
    assert!(ok.status.success(), "{}", stderr(&ok));
    let both = run(&[
        &base[..],
        &["--set", &token_file, "--set", "api.token=tok-secret-77"],
    ]
    .concat());
    assert_eq!(both.status.code(), Some(2));
    assert!(
        stderr(&both).contains("set api.token or api.token_file, not both"),
        "{}",
        stderr(&both)
    );
    let shown = run(&[&base[..], &["--set", "api.token=tok-secret-77"]].concat());
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(
        !stdout(&shown).contains("tok-secret-77"),
        "run --check printed the token"
    );
    let missing = run(&[&base[..], &["--set", "api.token_file=/nonexistent/token"]].concat());
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("/nonexistent/token"),
        "{}",
        stderr(&missing)
    );
    // A repository without any token on an open API is refused; with the credential it is not.
    let none = run(&base);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    std::fs::write(creds.join("api_token"), "tok\n").unwrap();
    let cred = cmd(&base).env("CREDENTIALS_DIRECTORY", &creds).output().unwrap();
    assert!(cred.status.success(), "{}", stderr(&cred));
}

#[test]
fn the_config_file_comes_from_the_flag_or_firmchain_config_and_a_missing_default_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("node.toml");
    std::fs::write(
        &conf,
        "[chain]\nmode = \"rpc\"\nexecution_rpc = [\"http://127.0.0.1:9\"]\ncontract = \"0x5FbDB2315678afecb367f032c93F642f64180aa3\"\nproduct = \"from-env\"\n",
    )
    .unwrap();
    let v = json(
        &cmd(&["--json", "run", "--check"])
            .env("FIRMCHAIN_CONFIG", &conf)
            .output()
            .unwrap(),
    );
    assert_eq!(v["chain"]["product"], "from-env");
    let missing = cmd(&["run", "--check"])
        .env("FIRMCHAIN_CONFIG", "/nonexistent/f.toml")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/f.toml"));
    if Path::new("/etc/firmchain/firmchain.toml").exists() {
        eprintln!("SKIPPED the absent-default part: /etc/firmchain/firmchain.toml exists on this machine");
        return;
    }
    // No file anywhere: the settings alone, and no complaint about the default path.
    let out = run(&[&["--json", "run", "--check"][..], &NO_CHAIN].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("/etc/firmchain"));
}

fn assert_snake_case(v: &Value, path: &str) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let ok = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit());
                assert!(ok, "key {path}.{k} is not snake_case");
                assert_snake_case(inner, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_snake_case(i, path)),
        _ => {}
    }
}

#[test]
fn every_json_output_uses_snake_case_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(p("old.bin"), vec![1u8; 50_000]).unwrap();
    let mut new = vec![1u8; 50_000];
    new[100] = 9;
    std::fs::write(p("new.bin"), &new).unwrap();
    let data = stopped_node(dir.path());
    let d = data.to_str().unwrap();
    let outputs = [
        run(&["--json", "hash", &p("new.bin")]),
        run(&["--json", "diff", &p("old.bin"), &p("new.bin"), "-o", &p("u.fcp")]),
        run(&["--json", "apply", &p("old.bin"), &p("u.fcp"), "-o", &p("out.bin")]),
        run(&["--json", "pack", &p("new.bin"), "-o", &p("new.car")]),
        run(&["--json", "unpack", &p("new.car"), "-o", &p("back.bin")]),
        run(&["--json", "state", "show", "--data", d]),
        run(&["--json", "status", "--offline", "--data", d]),
        run(&[&["--json", "run", "--check"][..], &NO_CHAIN].concat()),
    ];
    for out in &outputs {
        let v = json(out);
        assert_snake_case(&v, "");
    }
    // Failures too: one JSON object with the error and the exit code.
    let failed = run(&["--json", "node", "health", "--api", "http://127.0.0.1:1"]);
    assert_eq!(failed.status.code(), Some(9));
    let v: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(v["exit_code"], 9);
    assert_snake_case(&v, "");
}
