//! The secrets the CLI reads from its environment, each as a value or as a file, never both, else a systemd
//! credential (`LoadCredential=NAME:PATH`, read from `$CREDENTIALS_DIRECTORY/NAME`):
//!
//! | secret | value | file | credential |
//! |---|---|---|---|
//! | signing key | `FIRMCHAIN_PRIVATE_KEY` | `FIRMCHAIN_PRIVATE_KEY_FILE` | `private_key` |
//! | keystore password | `FIRMCHAIN_KEYSTORE_PASSWORD` | `FIRMCHAIN_KEYSTORE_PASSWORD_FILE` or `--password-file` | `keystore_password` |
//! | API token (client) | `FIRMCHAIN_API_TOKEN` | `FIRMCHAIN_API_TOKEN_FILE` | `api_token` |
//!
//! The node's own API token is `api.token` / `api.token_file` in its configuration (see `firmchain-config`).

use std::path::{Path, PathBuf};

use firmchain_config::{CREDENTIALS_DIRECTORY, SecretError, credential, read_secret_file, resolve};

/// One secret's names.
#[derive(Debug, Clone, Copy)]
pub struct SecretVar {
    /// The variable holding the value.
    pub value: &'static str,
    /// The variable naming a file that holds it.
    pub file: &'static str,
    /// The systemd credential's name.
    pub credential: &'static str,
}

pub const PRIVATE_KEY: SecretVar = SecretVar {
    value: "FIRMCHAIN_PRIVATE_KEY",
    file: "FIRMCHAIN_PRIVATE_KEY_FILE",
    credential: "private_key",
};

#[cfg(feature = "publisher")]
pub const KEYSTORE_PASSWORD: SecretVar = SecretVar {
    value: "FIRMCHAIN_KEYSTORE_PASSWORD",
    file: "FIRMCHAIN_KEYSTORE_PASSWORD_FILE",
    credential: "keystore_password",
};

pub const API_TOKEN: SecretVar = SecretVar {
    value: "FIRMCHAIN_API_TOKEN",
    file: "FIRMCHAIN_API_TOKEN_FILE",
    credential: "api_token",
};

/// The secret from `env` (a lookup of variables): the value, the file, else the credential. `flag_file` is a
/// file given on the command line, counted as the file variable.
pub fn secret_in(
    var: SecretVar,
    flag_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, SecretError> {
    let file_var = env(var.file).filter(|f| !f.is_empty()).map(PathBuf::from);
    let file = match (flag_file, file_var) {
        (Some(_), Some(_)) => {
            return Err(SecretError::Both {
                value: "--password-file".to_owned(),
                file: var.file.to_owned(),
            });
        }
        (Some(f), None) => Some(f.to_owned()),
        (None, f) => f,
    };
    let file_name = if flag_file.is_some() {
        "--password-file"
    } else {
        var.file
    };
    if let Some(found) = resolve(var.value, env(var.value).as_deref(), file_name, file.as_deref())? {
        return Ok(Some(found));
    }
    let dir = env(CREDENTIALS_DIRECTORY).map(PathBuf::from);
    match credential(dir.as_deref(), var.credential) {
        Some(path) => read_secret_file(&format!("credential {}", var.credential), &path).map(Some),
        None => Ok(None),
    }
}

/// [`secret_in`] this process's environment.
pub fn secret(var: SecretVar, flag_file: Option<&Path>) -> Result<Option<String>, SecretError> {
    secret_in(var, flag_file, |k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn each_secret_comes_from_its_value_its_file_or_its_credential() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "0xabc\n").unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("private_key"), "0xdef\n").unwrap();
        let file = key_file.display().to_string();
        let cred_dir = creds.display().to_string();

        let got = |pairs: &[(&str, String)]| secret_in(PRIVATE_KEY, None, env(pairs));
        assert_eq!(
            got(&[("FIRMCHAIN_PRIVATE_KEY", "0x1".into())])
                .unwrap()
                .as_deref(),
            Some("0x1")
        );
        assert_eq!(
            got(&[("FIRMCHAIN_PRIVATE_KEY_FILE", file.clone())])
                .unwrap()
                .as_deref(),
            Some("0xabc")
        );
        assert_eq!(
            got(&[("CREDENTIALS_DIRECTORY", cred_dir.clone())])
                .unwrap()
                .as_deref(),
            Some("0xdef")
        );
        // An explicit setting wins over the credential.
        let explicit = got(&[
            ("FIRMCHAIN_PRIVATE_KEY_FILE", file.clone()),
            ("CREDENTIALS_DIRECTORY", cred_dir),
        ]);
        assert_eq!(explicit.unwrap().as_deref(), Some("0xabc"));
        assert_eq!(got(&[]).unwrap(), None);
        let both = got(&[
            ("FIRMCHAIN_PRIVATE_KEY", "0x1".into()),
            ("FIRMCHAIN_PRIVATE_KEY_FILE", file),
        ]);
        assert_eq!(
            both.unwrap_err().to_string(),
            "set FIRMCHAIN_PRIVATE_KEY or FIRMCHAIN_PRIVATE_KEY_FILE, not both"
        );
    }

    #[test]
    fn the_password_file_flag_is_the_file_variant_of_the_keystore_password() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "correct horse\n").unwrap();
        let got = secret_in(KEYSTORE_PASSWORD, Some(&pw), env(&[])).unwrap();
        assert_eq!(got.as_deref(), Some("correct horse"));
        let both = secret_in(
            KEYSTORE_PASSWORD,
            Some(&pw),
            env(&[("FIRMCHAIN_KEYSTORE_PASSWORD", "x".into())]),
        );
        assert_eq!(
            both.unwrap_err().to_string(),
            "set FIRMCHAIN_KEYSTORE_PASSWORD or --password-file, not both"
        );
        let file = pw.display().to_string();
        let two_files = secret_in(
            KEYSTORE_PASSWORD,
            Some(&pw),
            env(&[("FIRMCHAIN_KEYSTORE_PASSWORD_FILE", file)]),
        );
        assert!(two_files.is_err());
    }
}
