//! The key directory of generated signing keys (`<data dir>/auth/keys/`): one
//! `<created ms>-<kid>.pem` (PKCS#8, mode 0600) per key, in a directory of mode 0700, written
//! through a temporary file and a rename.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::keys::{RetiredKey, SigningKey, still_verifies};

/// Reads the key directory: the newest key signs, older ones verify until their window closes
/// (a key retired when the next one was made); keys past their window are deleted. Creates a
/// key when there is none.
pub(crate) fn load_or_create_dir(
    dir: &Path,
    now: DateTime<Utc>,
    window: Duration,
) -> anyhow::Result<(SigningKey, Vec<RetiredKey>)> {
    create_private_dir(dir)?;
    let mut keys: Vec<SigningKey> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else { continue };
        let Some(stem) = name.strip_suffix(".pem") else { continue };
        let Some(created_ms) = stem.split('-').next().and_then(|millis| millis.parse::<i64>().ok()) else {
            tracing::warn!(file = %path.display(), "ignoring a key file whose name is not <created ms>-<kid>.pem");
            continue;
        };
        let created_at = DateTime::from_timestamp_millis(created_ms).unwrap_or(now);
        let pem = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let key = SigningKey::from_pem(&pem, created_at).with_context(|| format!("{} is unusable", path.display()))?;
        warn_if_readable_by_others(&path);
        keys.push(key);
    }
    keys.sort_by_key(|key| (key.created_at(), key.kid().to_string()));
    let Some(current) = keys.pop() else {
        let key = SigningKey::generate(now)?;
        write_key_file(dir, &key)?;
        tracing::info!(kid = %key.kid(), dir = %dir.display(), "generated the access token signing key");
        return Ok((key, Vec::new()));
    };
    let mut retired = Vec::new();
    let mut next_created = current.created_at();
    for key in keys.into_iter().rev() {
        let retired_at = next_created;
        next_created = key.created_at();
        if still_verifies(retired_at, now, window) {
            retired.push(RetiredKey { kid: key.kid().to_string(), x: key.public_x(), retired_at });
        } else {
            remove_key_files(dir, key.kid());
        }
    }
    Ok((current, retired))
}

fn key_file_name(key: &SigningKey) -> String {
    format!("{:013}-{}.pem", key.created_at().timestamp_millis(), key.kid())
}

/// Writes `key` as `<created ms>-<kid>.pem`, mode 0600, through a temporary file and a rename.
pub(crate) fn write_key_file(dir: &Path, key: &SigningKey) -> anyhow::Result<()> {
    use std::io::Write as _;
    create_private_dir(dir)?;
    let path = dir.join(key_file_name(key));
    let temporary = dir.join(format!(".{}.tmp", key_file_name(key)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(key.to_pem().expose().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(crate) fn remove_key_files(dir: &Path, kid: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.ends_with(&format!("-{kid}.pem"))) {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(kid, "deleted a signing key past its verification window"),
                Err(error) => tracing::warn!(kid, error = %error, "could not delete an expired signing key"),
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("cannot create the key directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let private = std::fs::Permissions::from_mode(0o700);
        if let Err(error) = std::fs::set_permissions(dir, private) {
            tracing::warn!(dir = %dir.display(), error = %error, "could not make the key directory private");
        }
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "a signing key file is readable by others than its owner; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
