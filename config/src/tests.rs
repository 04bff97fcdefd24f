use super::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn devnet() -> Sources {
    Sources {
        file: Some(example("devnet.toml")),
        ..Sources::default()
    }
}

#[test]
fn every_example_config_loads_and_validates() {
    for name in [
        "devnet.toml",
        "sepolia.toml",
        "mainnet.toml",
        "rauc.toml",
        "swupdate.toml",
        "peers.toml",
    ] {
        let c = Config::load(&Sources {
            file: Some(example(name)),
            ..Sources::default()
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.chain.product, "acme-sensor", "{name}");
    }
    let dev = Config::load(&devnet()).unwrap();
    assert_eq!(dev.chain.mode, ChainMode::Rpc);
    assert_eq!(dev.p2p.store_budget_mib, 256);
    // Unset keys keep their defaults.
    assert_eq!(dev.chain.timeout_secs, 30);
    assert!(!dev.p2p.mdns);
}

#[test]
fn layers_apply_in_order_defaults_file_env_overrides() {
    let sources = Sources {
        env: vec![
            ("FIRMCHAIN_CHAIN__POLL_INTERVAL_SECS".into(), "5".into()),
            (
                "FIRMCHAIN_P2P__BOOTSTRAP".into(),
                "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE, ".into(),
            ),
            ("FIRMCHAIN_DATA_DIR".into(), "/tmp/fc".into()),
            ("FIRMCHAIN_LOG".into(), "debug".into()),
            ("FIRMCHAIN_P2P__MDNS".into(), "true".into()),
        ],
        overrides: vec![
            "chain.poll_interval_secs=7".into(),
            "api.listen=127.0.0.1:9000".into(),
        ],
        ..devnet()
    };
    let c = Config::load(&sources).unwrap();
    assert_eq!(c.chain.poll_interval_secs, 7, "overrides beat the environment");
    assert_eq!(c.p2p.bootstrap.len(), 1);
    assert!(c.p2p.mdns);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/fc"));
    assert_eq!(c.api.listen, "127.0.0.1:9000");
    assert_eq!(c.chain.mode, ChainMode::Rpc, "from the file");
}

#[test]
fn unknown_keys_are_refused_naming_the_layer() {
    let err = Config::load(&Sources {
        toml: Some("[chain]\nmoed = \"rpc\"\n".into()),
        ..devnet()
    })
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("TOML") && err.contains("moed"), "{err}");
    let err = Config::load(&Sources {
        env: vec![("FIRMCHAIN_P2P__LISTN".into(), "/ip4/1.2.3.4/tcp/1".into())],
        ..devnet()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("FIRMCHAIN_P2P__LISTN") && err.contains("listn"),
        "{err}"
    );
    let err = Config::load(&Sources {
        overrides: vec!["chain.mode=fast".into()],
        ..devnet()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("--set chain.mode") && err.contains("fast"), "{err}");
    let err = Config::load(&Sources {
        overrides: vec!["chain.mode".into()],
        ..devnet()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("section.field=value"), "{err}");
}

#[test]
fn validation_names_the_key() {
    let cases = [
        ("chain.contract=0x1234", "chain.contract"),
        ("chain.product=", "chain.product"),
        ("chain.mode=light", "chain.consensus_rpc"),
        ("chain.execution_rpc=ftp://x", "chain.execution_rpc"),
        ("p2p.bootstrap=/ip4/1.2.3.4/tcp/1", "p2p.bootstrap"),
        ("p2p.listen=not-a-multiaddr", "p2p.listen"),
        ("install.mode=command", "install.command"),
        ("install.command=rauc install \"$1\"", "install.command"),
        ("install.health_check=test -f x && exit 0", "install.health_check"),
        (
            "install.health_check=FOO=1 /usr/bin/check",
            "install.health_check",
        ),
        ("install.reboot=[]", "install.reboot"),
        ("install.confirm_env=ustate", "install.confirm_env"),
        ("install.install_timeout_secs=0", "install.install_timeout_secs"),
        ("api.listen=localhost", "api.listen"),
        ("device.hardware_class=has space", "device.hardware_class"),
        ("device.name=a\u{7}b", "device.name"),
        ("chain.network=goerli", "chain.network"),
        ("chain.log_range=0", "chain.log_range"),
        ("p2p.reserved_outbound=256", "p2p.reserved_outbound"),
        ("p2p.max_connections_per_ip=0", "p2p.max_connections_per_ip"),
        ("p2p.fetch_window=1025", "p2p.fetch_window"),
        ("api.max_body_bytes=1000", "api.max_body_bytes"),
        ("api.max_connections=0", "api.max_connections"),
    ];
    for (set, key) in cases {
        let err = Config::load(&Sources {
            overrides: vec![set.into()],
            ..devnet()
        })
        .unwrap_err();
        match err {
            ConfigError::Invalid(i) => assert_eq!(i.key, key, "{set}: {i}"),
            other => panic!("{set}: {other}"),
        }
    }
    // A repository's API beyond loopback needs a token.
    let open = Sources {
        overrides: vec!["repository=true".into(), "api.listen=0.0.0.0:8420".into()],
        ..devnet()
    };
    assert!(matches!(
        Config::load(&open),
        Err(ConfigError::Invalid(Invalid { key: "api.token", .. }))
    ));
    let with_token = Sources {
        overrides: [open.overrides.clone(), vec!["api.token=s3cret".into()]].concat(),
        ..devnet()
    };
    Config::load(&with_token).unwrap();
    // The limits are read as set.
    let limits = Config::load(&Sources {
        overrides: vec![
            "p2p.max_connections=64".into(),
            "p2p.reserved_outbound=8".into(),
            "p2p.max_connections_per_ip=4".into(),
            "api.max_body_bytes=67108864".into(),
            "api.max_connections=8".into(),
            "p2p.fetch_window=4".into(),
        ],
        ..devnet()
    })
    .unwrap();
    assert_eq!(limits.p2p.fetch_window, 4);
    assert_eq!(Config::load(&devnet()).unwrap().p2p.fetch_window, 0);
    assert_eq!(
        (limits.p2p.reserved_outbound, limits.p2p.max_connections_per_ip),
        (8, 4)
    );
    assert_eq!(
        (limits.api.max_body_bytes, limits.api.max_connections),
        (64 << 20, 8)
    );
    // Light mode needs a checkpoint.
    let light = Sources {
        overrides: vec![
            "chain.mode=light".into(),
            "chain.consensus_rpc=http://127.0.0.1:5052".into(),
        ],
        ..devnet()
    };
    assert!(matches!(
        Config::load(&light),
        Err(ConfigError::Invalid(Invalid {
            key: "chain.checkpoint",
            ..
        }))
    ));
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::load(&Sources {
        file: Some(PathBuf::from("/nonexistent/firmchain.toml")),
        ..Sources::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/firmchain.toml"), "{err}");
}

#[test]
fn validation_names_the_layer_that_set_the_key() {
    let layer_of = |sources: Sources| match Config::load(&sources).unwrap_err() {
        ConfigError::Invalid(i) => (i.key, i.layer.clone().unwrap(), i.to_string()),
        other => panic!("{other}"),
    };
    let (key, layer, msg) = layer_of(Sources {
        env: vec![("FIRMCHAIN_CHAIN__CONTRACT".into(), "0x12".into())],
        ..devnet()
    });
    assert_eq!(
        (key, layer.as_str()),
        ("chain.contract", "FIRMCHAIN_CHAIN__CONTRACT")
    );
    assert!(msg.contains("(set by FIRMCHAIN_CHAIN__CONTRACT)"), "{msg}");
    let (_, layer, _) = layer_of(Sources {
        overrides: vec!["chain.contract=0x12".into()],
        ..devnet()
    });
    assert_eq!(layer, "--set chain.contract");
    let (key, layer, _) = layer_of(Sources {
        flags: Flags {
            data_dir: Some(PathBuf::new()),
            ..Flags::default()
        },
        ..devnet()
    });
    assert_eq!((key, layer.as_str()), ("data_dir", "--data"));
    let (key, layer, _) = layer_of(Sources {
        overrides: vec!["install.mode=command".into()],
        ..devnet()
    });
    assert_eq!((key, layer.as_str()), ("install.command", "the defaults"));
    let (_, layer, _) = layer_of(Sources {
        toml: Some("[chain]\ncontract = \"0x12\"\n".into()),
        ..devnet()
    });
    assert_eq!(layer, "TOML");
    let (_, layer, _) = layer_of(Sources {
        overrides: vec!["repository=true".into(), "api.listen=0.0.0.0:8420".into()],
        ..devnet()
    });
    assert_eq!(layer, "the defaults", "api.token was never set");
}

#[test]
fn validate_returns_the_typed_values_and_flags_are_typed() {
    let c = Config::load(&Sources {
        flags: Flags {
            repository: true,
            data_dir: Some(PathBuf::from("/tmp/fc-flags")),
        },
        ..devnet()
    })
    .unwrap();
    assert!(c.repository);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/fc-flags"));
    let s = c.validate().unwrap();
    assert_eq!(s.product.to_string(), c.chain.product);
    assert_eq!(
        format!("0x{}", hex_lower(&s.contract)),
        c.chain.contract.to_lowercase()
    );
    assert_eq!(s.listen.len(), c.p2p.listen.len());
    assert_eq!(s.api.map(|a| a.to_string()), Some(c.api.listen.clone()));
    assert_eq!(s.checkpoint, None, "rpc mode has no checkpoint");
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn device_name_and_hardware_class_are_typed() {
    let c = Config::load(&Sources {
        overrides: vec![
            "device.name=sensor-0042".into(),
            "device.hardware_class=board-a".into(),
        ],
        ..devnet()
    })
    .unwrap();
    assert_eq!(c.device.name, "sensor-0042");
    let s = c.validate().unwrap();
    assert_eq!(
        s.hardware_class.map(|h| h.to_string()).as_deref(),
        Some("board-a")
    );
    let none = Config::load(&devnet()).unwrap().validate().unwrap();
    assert_eq!(none.hardware_class, None, "no class unless configured");
}

#[test]
fn the_api_token_comes_from_exactly_one_of_value_file_and_credential() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    let over = |extra: &[String]| Sources {
        overrides: [
            vec!["repository=true".into(), "api.listen=0.0.0.0:8420".into()],
            extra.to_vec(),
        ]
        .concat(),
        ..devnet()
    };
    let token_file = format!("api.token_file={}", file.display());
    // The file alone satisfies a repository's open API, and the token loses its trailing newline.
    let c = Config::load(&over(std::slice::from_ref(&token_file))).unwrap();
    assert_eq!(c.api_token().unwrap().as_deref(), Some("from-file"));
    // Both: refused, naming the keys.
    let err = Config::load(&over(&["api.token=v".into(), token_file.clone()])).unwrap_err();
    assert!(
        err.to_string()
            .contains("set api.token or api.token_file, not both"),
        "{err}"
    );
    // Neither, but a systemd credential `api_token`: it is used.
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("api_token"), "from-credential\n").unwrap();
    let with_creds = |extra: &[String]| Sources {
        env: vec![(CREDENTIALS_DIRECTORY.into(), creds.display().to_string())],
        ..over(extra)
    };
    let c = Config::load(&with_creds(&[])).unwrap();
    assert_eq!(c.api_token().unwrap().as_deref(), Some("from-credential"));
    // A value given in the configuration wins over the credential (no "both" error: the credential is a default).
    let c = Config::load(&with_creds(&["api.token=v".into()])).unwrap();
    assert_eq!(c.api_token().unwrap().as_deref(), Some("v"));
    // `run --check` prints no token.
    assert_eq!(c.redacted().api.token.as_deref(), Some("<redacted>"));
}

#[test]
fn the_default_config_file_is_used_only_when_nothing_else_is_named_and_it_exists() {
    let flag = Some(PathBuf::from("/x.toml"));
    assert_eq!(config_path(flag.clone(), Some("/y.toml".into()), true), flag);
    assert_eq!(
        config_path(None, Some("/y.toml".into()), true),
        Some(PathBuf::from("/y.toml"))
    );
    assert_eq!(config_path(None, None, true), Some(PathBuf::from(DEFAULT_CONFIG)));
    assert_eq!(config_path(None, Some(String::new()), false), None);
    assert_eq!(config_path(None, None, false), None);
}

/// Commands are argument vectors, run without a shell: a list as given, a plain string split on spaces, and a
/// list in `--set` written as TOML.
#[test]
fn commands_are_argument_vectors_without_a_shell() {
    let load = |sets: &[&str]| {
        Config::load(&Sources {
            overrides: sets.iter().map(|s| (*s).to_owned()).collect(),
            ..devnet()
        })
        .unwrap()
        .validate()
        .unwrap()
        .install
    };
    let s = load(&[
        "install.mode=command",
        "install.command=/usr/bin/flash  --verbose",
        r#"install.health_check=["sh", "-c", "test -f \"$FIRMCHAIN_IMAGE\" || exit 3"]"#,
    ]);
    assert_eq!(
        s.command.unwrap(),
        ["/usr/bin/flash", "--verbose"].map(String::from)
    );
    assert_eq!(
        s.health_check.unwrap(),
        ["sh", "-c", "test -f \"$FIRMCHAIN_IMAGE\" || exit 3"].map(String::from)
    );
    // The defaults of the two-phase modes.
    let s = load(&["install.mode=rauc"]);
    assert_eq!(s.rauc, ["rauc"]);
    assert_eq!(s.reboot, ["systemctl", "reboot"]);
    assert_eq!(s.confirm_env[0], ("upgrade_available".to_owned(), "0".to_owned()));
    // A shell line is refused with the way out in the message.
    let err = Config::load(&Sources {
        overrides: vec!["install.command=/usr/bin/rauc install; reboot".into()],
        ..devnet()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("install.command") && err.contains("needs a shell") && err.contains("[\"sh\", \"-c\""),
        "{err}"
    );
}

#[test]
fn swupdate_mode_needs_a_slot_variable() {
    let err = Config::load(&Sources {
        overrides: vec!["install.mode=swupdate".into(), "install.slot_variable=".into()],
        ..devnet()
    })
    .unwrap_err();
    match err {
        ConfigError::Invalid(i) => assert_eq!(i.key, "install.slot_variable", "{i}"),
        other => panic!("{other}"),
    }
}

#[test]
fn peers_mode_needs_no_rpc_but_a_checkpoint_and_no_repository_role() {
    let with = |extra: &[&str], repository: bool| {
        let mut o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        o.push("chain.execution_rpc=".into());
        Config::load(&Sources {
            file: Some(example("peers.toml")),
            overrides: o,
            flags: Flags {
                repository,
                data_dir: None,
            },
            ..Sources::default()
        })
    };
    let base = |extra: &[&str]| with(extra, false);
    let c = base(&[]).unwrap();
    assert_eq!(c.chain.mode, ChainMode::Peers);
    assert!(c.chain.execution_rpc.is_empty() && c.chain.consensus_rpc.is_empty());
    assert_eq!(c.chain.serve_proofs, ServeProofs::Auto);
    let key = |e: ConfigError| match e {
        ConfigError::Invalid(i) => i.key,
        other => panic!("{other}"),
    };
    assert_eq!(
        key(base(&["chain.checkpoint=nope"]).unwrap_err()),
        "chain.checkpoint"
    );
    assert_eq!(key(with(&[], true).unwrap_err()), "chain.mode");
    // serve_proofs: auto follows the role; on and off are explicit.
    assert!(ServeProofs::Auto.serves(true) && !ServeProofs::Auto.serves(false));
    assert!(ServeProofs::On.serves(false) && !ServeProofs::Off.serves(true));
    let c = base(&["chain.serve_proofs=off"]).unwrap();
    assert_eq!(c.chain.serve_proofs, ServeProofs::Off);
    // A fallback to peers is a light-mode option: peers mode has no other source to fall back from.
    assert!(!c.chain.peers_fallback);
    assert_eq!(
        key(base(&["chain.peers_fallback=true"]).unwrap_err()),
        "chain.peers_fallback"
    );
}

#[test]
fn peers_fallback_is_a_light_mode_option() {
    let load = |file: &str| {
        Config::load(&Sources {
            file: Some(example(file)),
            overrides: vec!["chain.peers_fallback=true".into()],
            ..Sources::default()
        })
    };
    assert!(load("sepolia.toml").unwrap().chain.peers_fallback);
    match load("devnet.toml").unwrap_err() {
        ConfigError::Invalid(i) => assert_eq!(i.key, "chain.peers_fallback", "{i}"),
        other => panic!("{other}"),
    }
}

/// `p2p.fetch_window` comes from `--set` and the environment as a number.
#[test]
fn the_fetch_window_is_read_from_the_environment() {
    let c = Config::load(&Sources {
        env: vec![("FIRMCHAIN_P2P__FETCH_WINDOW".into(), "32".into())],
        ..devnet()
    })
    .unwrap();
    assert_eq!(c.p2p.fetch_window, 32);
}
