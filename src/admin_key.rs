//! The admin key: read from `admin.key_file`, or made at start (32 random bytes as hex) and
//! written there (mode 0600) when the file does not exist yet, or only kept in memory when no
//! file is configured. Where it can be found is logged (at info level, also when it is
//! nowhere: that is the default config's normal state, not a fault); the key itself only
//! with `admin.print_key = true`. The start mail (`supervisor/mail.rs`) carries it.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tether_config::Settings;

/// Where the key came from, for the log line and the start mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Read from this file.
    Read(String),
    /// Made now and written to this file.
    Written(String),
    /// Made now, kept in memory only.
    Memory,
}

/// The key for this run, and where it came from.
pub fn obtain(settings: &Settings) -> io::Result<(String, KeySource)> {
    let Some(path) = settings.ops.admin.key_file.as_deref() else {
        return Ok((fresh()?, KeySource::Memory));
    };
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim().to_string();
            if key.is_empty() || key.chars().any(|c| c.is_whitespace()) {
                return Err(io::Error::other(format!(
                    "admin key file {shown}: empty, or not one word"
                )));
            }
            Ok((key, KeySource::Read(shown)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = fresh()?;
            write_new(path, &key)
                .map_err(|e| io::Error::new(e.kind(), format!("admin key file {shown}: {e}")))?;
            Ok((key, KeySource::Written(shown)))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("admin key file {shown}: {e}"),
        )),
    }
}

/// Log where the key is (never the key, unless `print_key`); `mailed_to` lists the
/// recipients of the start mail, if any.
pub fn log_where(settings: &Settings, key: &str, source: &KeySource, mailed_to: &[String]) {
    let mut places = Vec::new();
    match source {
        KeySource::Read(p) => places.push(format!("read from {p}")),
        KeySource::Written(p) => places.push(format!("new, written to {p} (mode 0600)")),
        KeySource::Memory => {}
    }
    if !mailed_to.is_empty() {
        places.push(format!("mailed to {}", mailed_to.join(", ")));
    }
    if settings.ops.admin.print_key {
        log::info!("admin key: {key}");
    } else if places.is_empty() {
        // The default config's case: nothing is wrong (the admin listener serves the
        // supervisor's /healthz), so it is said at info level, with how to get a key.
        log::info!(
            "admin key: kept in memory for this run only; to use the admin API, set \
             admin.key_file (the key is written there) or [supervisor.mail]; /healthz \
             answers without a key"
        );
        return;
    }
    if !places.is_empty() {
        log::info!("admin key: {}", places.join("; "));
    }
}

/// 32 random bytes from the OS, as 64 hex digits (also `tether genkey`'s sealing key).
pub(crate) fn fresh() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| io::Error::other(format!("no randomness for a key: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Create `path` (it must not exist) readable by its owner only, holding `key`.
fn write_new(path: &Path, key: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{key}\n").as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_with(file: Option<&Path>) -> Settings {
        let mut s = tether_config::parse("", "t.toml").expect("empty config");
        s.ops.admin.key_file = file.map(Path::to_path_buf);
        s
    }

    #[test]
    fn fresh_keys_are_hex_and_differ() {
        let (a, src) = obtain(&settings_with(None)).expect("key");
        let (b, _) = obtain(&settings_with(None)).expect("key");
        assert_eq!(src, KeySource::Memory);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn key_file_is_written_then_read() {
        let dir = std::env::temp_dir().join(format!("tether-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("admin.key");
        let s = settings_with(Some(&file));
        let (k1, src) = obtain(&s).expect("written");
        assert!(matches!(src, KeySource::Written(_)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (k2, src) = obtain(&s).expect("read");
        assert!(matches!(src, KeySource::Read(_)));
        assert_eq!(k1, k2);
        std::fs::write(&file, "  \n").expect("write");
        assert!(obtain(&s).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
