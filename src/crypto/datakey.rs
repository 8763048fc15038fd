//! The data key (SPEC §12): encrypts members' PESELs at rest and keys their blind index.
//!
//! The key file (`data_key_file`, default `{data_dir}/data.key`, mode 0600) lives outside the
//! database, so a copy of the database alone, or a backup of it, holds no PESEL in clear. It is
//! text, one line per item:
//!
//! ```text
//! key 3f9a1c2e <base64 of 32 random bytes>     (the newest `key` line encrypts; older ones decrypt)
//! index <base64 of 32 bytes>                   (the blind index's key; never rotated)
//! ```
//!
//! - **Encryption**: XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`), a random 24-byte
//!   nonce per value, the member's id as associated data (a ciphertext copied onto another row
//!   does not decrypt there). Stored as `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
//! - **Blind index**: HMAC-SHA256 under the index key of `organization id ‖ 0 ‖ PESEL`, hex. It
//!   makes a PESEL unique within its organization and finds a member by PESEL, without the clear
//!   value. The index key is derived from the first data key when the file is made, and kept in
//!   the file, so rotating the data key does not change it.
//! - **Key check values** in the database (`secrets`, `data_key_check.<key id>`): a node started
//!   with a missing or different key file refuses to start instead of writing under a second key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::hex;

/// What a stored value starts with.
const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;

/// A data key, by id.
#[derive(Clone)]
struct Key {
    id: String,
    bytes: [u8; 32],
}

/// The keys of the key file.
#[derive(Clone)]
pub struct DataKeys {
    /// Oldest first; the last encrypts.
    keys: Vec<Key>,
    index: [u8; 32],
}

/// Shows the key ids only, never a key.
impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A stored value that does not decrypt: damaged, moved from another row, or under a key the
/// file does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error("not an encrypted value")]
    Malformed,
    #[error("encrypted under key {0}, which the data key file does not have")]
    UnknownKey(String),
    #[error("does not decrypt (damaged, or not this row's)")]
    Damaged,
}

fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn new_key() -> Key {
    let mut id = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut id);
    Key {
        id: hex(&id),
        bytes: random32(),
    }
}

impl DataKeys {
    /// A new file's keys: one data key and the index key derived from it.
    pub fn generate() -> DataKeys {
        let key = new_key();
        let index = hmac(&key.bytes, &[b"brama blind index v1"]);
        DataKeys {
            keys: vec![key],
            index,
        }
    }

    /// Reads a key file's text.
    pub fn parse(text: &str) -> Result<DataKeys, String> {
        let mut keys = Vec::new();
        let mut index = None;
        let decode = |b64: &str, line: usize| -> Result<[u8; 32], String> {
            STANDARD
                .decode(b64)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| format!("line {line}: not 32 bytes of base64"))
        };
        for (n, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["key", id, b64] if id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    keys.push(Key {
                        id: id.to_string(),
                        bytes: decode(b64, n + 1)?,
                    })
                }
                ["index", b64] => index = Some(decode(b64, n + 1)?),
                _ => {
                    return Err(format!(
                        "line {}: not `key <id> <base64>` or `index <base64>`",
                        n + 1
                    ));
                }
            }
        }
        match (keys.is_empty(), index) {
            (false, Some(index)) => Ok(DataKeys { keys, index }),
            _ => Err("it needs at least one `key` line and the `index` line".into()),
        }
    }

    /// The key file's text.
    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# brama's data key file (SPEC §12): keep it private (0600) and back it up apart from\n\
             # the database; without it the members' PESELs cannot be read. The last key encrypts.\n",
        );
        for key in &self.keys {
            text.push_str(&format!("key {} {}\n", key.id, STANDARD.encode(key.bytes)));
        }
        text.push_str(&format!("index {}\n", STANDARD.encode(self.index)));
        text
    }

    /// Reads the key file at `path`; `None` if there is none.
    pub fn read(path: &Path) -> Result<Option<DataKeys>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => DataKeys::parse(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the key file at `path` with mode 0600, replacing it at once (a file written next
    /// to it, then renamed), so that a kill never leaves half a key file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        let tmp = path.with_extension("key.new");
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(self.to_text().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds a new data key, which encrypts from now on; its id.
    pub fn rotate(&mut self) -> String {
        let key = new_key();
        let id = key.id.clone();
        self.keys.push(key);
        id
    }

    /// Drops the keys other than the newest (once nothing is encrypted under them).
    pub fn retire_old(&mut self) {
        let newest = self.keys.pop().expect("a key file has a key");
        self.keys = vec![newest];
    }

    /// The id of the key that encrypts.
    pub fn current(&self) -> &str {
        &self.keys.last().expect("a key file has a key").id
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The check value of key `id` (`None` if the file has no such key): tells a node whether
    /// its file holds the key the database was written under, and reveals nothing of the key.
    pub fn check_value(&self, id: &str) -> Option<String> {
        let key = self.keys.iter().find(|k| k.id == id)?;
        Some(hex(&hmac(&key.bytes, &[b"brama data key check v1"])[..16]))
    }

    /// Encrypts the PESEL of the member `member_id` under the current key.
    pub fn encrypt(&self, member_id: &str, pesel: &str) -> String {
        let key = self.keys.last().expect("a key file has a key");
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new((&key.bytes).into());
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: pesel.as_bytes(),
                    aad: member_id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length up to 256 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(out))
    }

    /// The key id a stored value was encrypted under.
    pub fn key_of(stored: &str) -> Option<&str> {
        let mut parts = stored.splitn(3, '.');
        (parts.next() == Some(VERSION)).then_some(())?;
        parts.next()
    }

    /// Decrypts a stored PESEL of the member `member_id`.
    pub fn decrypt(&self, member_id: &str, stored: &str) -> Result<String, CipherError> {
        let mut parts = stored.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CipherError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CipherError::UnknownKey(id.to_string()))?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CipherError::Malformed)?;
        if raw.len() <= NONCE_LEN {
            return Err(CipherError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce =
            XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| CipherError::Malformed)?);
        let cipher = XChaCha20Poly1305::new((&key.bytes).into());
        let clear = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: member_id.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Damaged)?;
        String::from_utf8(clear).map_err(|_| CipherError::Damaged)
    }

    /// The blind index of a PESEL within an organization.
    pub fn blind_index(&self, organization_id: &str, pesel: &str) -> String {
        hex(&hmac(
            &self.index,
            &[organization_id.as_bytes(), &[0], pesel.as_bytes()],
        ))
    }
}

/// Whether a stored PESEL is still in clear (written before encryption came in).
pub fn is_clear(stored: &str) -> bool {
    stored.len() == 11 && stored.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pesel_round_trips_and_its_ciphertext_says_nothing_of_it() {
        let keys = DataKeys::generate();
        let stored = keys.encrypt("member-1", "44051401359");
        assert!(!stored.contains("44051401359"));
        assert!(stored.starts_with(&format!("v1.{}.", keys.current())));
        assert_eq!(keys.decrypt("member-1", &stored).unwrap(), "44051401359");
        // A fresh nonce each time.
        assert_ne!(stored, keys.encrypt("member-1", "44051401359"));
    }

    #[test]
    fn a_damaged_or_moved_ciphertext_is_an_error_never_garbage() {
        let keys = DataKeys::generate();
        let stored = keys.encrypt("member-1", "44051401359");
        assert_eq!(
            keys.decrypt("member-2", &stored),
            Err(CipherError::Damaged),
            "another row's ciphertext"
        );
        let mut flipped = stored.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.decrypt("member-1", std::str::from_utf8(&flipped).unwrap()),
            Err(CipherError::Damaged)
        );
        for junk in [
            "",
            "44051401359",
            "v1.",
            "v1.abcd1234",
            "v1.abcd1234.!!",
            "v2.x.y",
        ] {
            assert!(keys.decrypt("member-1", junk).is_err(), "{junk:?}");
        }
        let other = DataKeys::generate();
        assert_eq!(
            other.decrypt("member-1", &stored),
            Err(CipherError::UnknownKey(keys.current().to_string()))
        );
    }

    #[test]
    fn rotation_encrypts_under_the_new_key_and_still_reads_the_old() {
        let mut keys = DataKeys::generate();
        let old = keys.encrypt("m", "02070803628");
        let index = keys.blind_index("org", "02070803628");
        let new_id = keys.rotate();
        let new = keys.encrypt("m", "02070803628");
        assert_eq!(DataKeys::key_of(&new), Some(new_id.as_str()));
        assert_eq!(keys.decrypt("m", &old).unwrap(), "02070803628");
        assert_eq!(
            keys.blind_index("org", "02070803628"),
            index,
            "the index key stays"
        );
        keys.retire_old();
        assert!(keys.decrypt("m", &old).is_err());
        assert_eq!(keys.decrypt("m", &new).unwrap(), "02070803628");
    }

    #[test]
    fn the_blind_index_is_per_organization_and_keyed() {
        let keys = DataKeys::generate();
        let a = keys.blind_index("org-a", "44051401359");
        assert_eq!(a, keys.blind_index("org-a", "44051401359"));
        assert_ne!(a, keys.blind_index("org-b", "44051401359"));
        assert_ne!(a, DataKeys::generate().blind_index("org-a", "44051401359"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn the_key_file_round_trips_and_bad_files_are_named() {
        let mut keys = DataKeys::generate();
        keys.rotate();
        let text = keys.to_text();
        let read = DataKeys::parse(&text).unwrap();
        assert_eq!(
            read.ids().collect::<Vec<_>>(),
            keys.ids().collect::<Vec<_>>()
        );
        let id = keys.current().to_string();
        assert_eq!(read.check_value(&id), keys.check_value(&id));
        assert_eq!(read.blind_index("o", "1"), keys.blind_index("o", "1"));
        assert!(DataKeys::parse("").is_err());
        assert!(
            DataKeys::parse("key abcd1234 AAAA\nindex AAAA\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert_ne!(
            DataKeys::generate().check_value(DataKeys::generate().current()),
            Some(String::new())
        );
    }
}
