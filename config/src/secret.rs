//! Secrets (the API token, a signing key, a keystore password): given as a value or as a file, never both.
//!
//! A file holds the secret and, optionally, one trailing newline (what `echo` and editors write), which is
//! trimmed. Under systemd, `LoadCredential=NAME:PATH` puts the file in `$CREDENTIALS_DIRECTORY/NAME`; a secret
//! given neither way is read from there when that file exists ([`credential`]).

use std::path::{Path, PathBuf};

/// The environment variable systemd sets for a unit with `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A secret that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set {value} or {file}, not both")]
    Both { value: String, file: String },
    #[error("{name}: reading {path}: {source}")]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name}: {path} is empty")]
    Empty { name: String, path: PathBuf },
    #[error("{name}: {path} is not UTF-8 text")]
    NotText { name: String, path: PathBuf },
}

/// The secret in `path`, without one trailing newline (`\n` or `\r\n`). `name` is what the error calls it.
pub fn read_secret_file(name: &str, path: &Path) -> Result<String, SecretError> {
    let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText {
        name: name.to_owned(),
        path: path.to_owned(),
    })?;
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if trimmed.is_empty() {
        return Err(SecretError::Empty {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// One secret from its two settings: `value` (named `value_name`) or the file `file` (named `file_name`).
/// Both set is an error; neither is `None`. An empty value counts as unset.
pub fn resolve(
    value_name: &str,
    value: Option<&str>,
    file_name: &str,
    file: Option<&Path>,
) -> Result<Option<String>, SecretError> {
    let value = value.filter(|v| !v.is_empty());
    let file = file.filter(|f| !f.as_os_str().is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(SecretError::Both {
            value: value_name.to_owned(),
            file: file_name.to_owned(),
        }),
        (Some(v), None) => Ok(Some(v.to_owned())),
        (None, Some(f)) => read_secret_file(file_name, f).map(Some),
        (None, None) => Ok(None),
    }
}

/// `<credentials_dir>/<name>` when it exists: a systemd credential (`LoadCredential=<name>:…`).
pub fn credential(credentials_dir: Option<&Path>, name: &str) -> Option<PathBuf> {
    let path = credentials_dir?.join(name);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn a_file_secret_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            read_secret_file("t", &file(d, "a", b"s3cret\n")).unwrap(),
            "s3cret"
        );
        assert_eq!(
            read_secret_file("t", &file(d, "b", b"s3cret\r\n")).unwrap(),
            "s3cret"
        );
        assert_eq!(read_secret_file("t", &file(d, "c", b"s3cret")).unwrap(), "s3cret");
        assert_eq!(
            read_secret_file("t", &file(d, "d", b"pass word\n\n")).unwrap(),
            "pass word\n"
        );
        assert_eq!(read_secret_file("t", &file(d, "e", b" lead")).unwrap(), " lead");
    }

    #[test]
    fn value_and_file_together_are_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "token", b"x\n");
        let e = resolve("api.token", Some("y"), "api.token_file", Some(&f)).unwrap_err();
        assert_eq!(e.to_string(), "set api.token or api.token_file, not both");
        assert_eq!(resolve("v", Some("y"), "f", None).unwrap().as_deref(), Some("y"));
        assert_eq!(resolve("v", None, "f", Some(&f)).unwrap().as_deref(), Some("x"));
        assert_eq!(resolve("v", None, "f", None).unwrap(), None);
        assert_eq!(resolve("v", Some(""), "f", None).unwrap(), None);
    }

    #[test]
    fn a_missing_empty_or_binary_secret_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let missing = d.join("nope");
        let e = resolve("v", None, "api.token_file", Some(&missing)).unwrap_err();
        assert!(matches!(e, SecretError::Read { .. }), "{e}");
        assert!(
            e.to_string().contains("api.token_file") && e.to_string().contains("nope"),
            "{e}"
        );
        let e = read_secret_file("t", &file(d, "empty", b"\n")).unwrap_err();
        assert!(matches!(e, SecretError::Empty { .. }), "{e}");
        let e = read_secret_file("t", &file(d, "bin", b"\xff\xfe\n")).unwrap_err();
        assert!(matches!(e, SecretError::NotText { .. }), "{e}");
    }

    #[test]
    fn a_credential_is_found_only_when_its_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), "api_token", b"t\n");
        assert_eq!(
            credential(Some(dir.path()), "api_token"),
            Some(dir.path().join("api_token"))
        );
        assert_eq!(credential(Some(dir.path()), "private_key"), None);
        assert_eq!(credential(None, "api_token"), None);
    }
}
