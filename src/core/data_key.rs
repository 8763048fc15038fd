//! The data key in use (SPEC §12): loaded from `data_key_file` and checked against the database
//! at start; PESELs sealed on their way into the store and opened on their way out, so that
//! everything above the core's member operations sees a clear PESEL and everything below it a
//! ciphertext and a blind index (`crypto::datakey`).
//!
//! The database remembers which key its values are written under (`secrets`:
//! `data_key.current` and a check value per key id). A node whose key file is missing, or holds
//! other keys, refuses to start with a message naming `data_key_file`; it never makes a second
//! key for a database that has one. A new key file is made (0600) only for a database that has
//! none yet.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::core::members::masked;
use crate::core::{Core, CoreError, CoreResult, StartupError, now_ms};
use crate::crypto::datakey::{CipherError, DataKeys};
use crate::store::{DynStore, MemberRecord};

/// How many masked PESELs [`Core::open_masked`] remembers.
const MASKED_CACHE: usize = 32_768;

/// The id of the key the database's values are written under.
const CURRENT: &str = "data_key.current";
/// Members encrypted per transaction by the upgrade.
const UPGRADE_BATCH: i64 = 500;

fn check_name(id: &str) -> String {
    format!("data_key_check.{id}")
}

fn refused(path: &Path, why: String) -> StartupError {
    format!(
        "invalid setting `data_key_file` ({}): {why}",
        path.display()
    )
    .into()
}

/// Reads (or, for a database without one, makes) the data key file and checks it against the
/// database.
pub(crate) async fn load(config: &Config, store: &DynStore) -> Result<DataKeys, StartupError> {
    let path = config.data_key_file();
    let file = DataKeys::read(&path).map_err(|e| refused(&path, e))?;
    let now = now_ms();
    let mut tx = store.begin().await?;
    let current = tx.secret(CURRENT).await?;
    let (keys, made) = match (file, &current) {
        (Some(keys), _) => (keys, false),
        (None, Some(id)) => {
            return Err(refused(
                &path,
                format!(
                    "the file does not exist, but this database's PESELs are encrypted under data \
                     key {id}; restore the key file from its backup (brama makes a new key only \
                     for a database that has none)"
                ),
            ));
        }
        (None, None) => (DataKeys::generate(), true),
    };
    // Two nodes making a key at once: the first to record it wins, the other refuses below.
    let current = match current {
        Some(id) => id,
        None => tx.secret_or_insert(CURRENT, keys.current(), now).await?,
    };
    if !keys.ids().any(|id| id == current) {
        return Err(refused(
            &path,
            format!(
                "it does not hold data key {current}, under which this database's PESELs are \
                 encrypted; every node of one database needs the same key file"
            ),
        ));
    }
    for id in keys.ids() {
        let check = keys.check_value(id).expect("an id of the file");
        let stored = tx.secret_or_insert(&check_name(id), &check, now).await?;
        if stored != check {
            return Err(refused(
                &path,
                format!("its key {id} is not the key of that id this database was written under"),
            ));
        }
    }
    if made {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| refused(&path, e.to_string()))?;
        }
        keys.write(&path).map_err(|e| refused(&path, e))?;
    }
    tx.commit().await?;
    if made {
        tracing::info!(file = %path.display(), key = keys.current(), "made a new data key file; back it up apart from the database");
    }
    Ok(keys)
}

/// Encrypts the PESELs still in clear (a database from before encryption came in), a batch per
/// transaction; how many.
pub(crate) async fn encrypt_clear_pesels(
    store: &DynStore,
    keys: &DataKeys,
) -> Result<u64, StartupError> {
    let mut done = 0u64;
    loop {
        let mut tx = store.begin().await?;
        let batch = tx.clear_pesels(UPGRADE_BATCH).await?;
        for (id, organization_id, pesel) in &batch {
            tx.seal_pesel(
                id,
                &keys.encrypt(id, pesel),
                &keys.blind_index(organization_id, pesel),
            )
            .await?;
        }
        tx.commit().await?;
        done += batch.len() as u64;
        if batch.len() < UPGRADE_BATCH as usize {
            break;
        }
    }
    if done > 0 {
        store.after_rewrite().await?;
        tracing::info!(
            members = done,
            "encrypted the PESELs stored in clear before this version"
        );
    }
    Ok(done)
}

/// How long `brama data-key rotate` waits after adding a key before it re-encrypts: running
/// nodes read the key file again every 5 s (with the signing keys), so by then every one of
/// them encrypts under the new key, and none writes under the old one after it is retired.
pub const ROTATION_WAIT: std::time::Duration = std::time::Duration::from_secs(11);

/// What `brama data-key rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key that encrypts now.
    pub key: String,
    /// Whether this run added it (false: it went on with a rotation cut short).
    pub added: bool,
    /// Values re-encrypted by this run.
    pub reencrypted: u64,
    /// Keys dropped from the file once nothing was under them.
    pub retired: Vec<String>,
}

impl Core {
    /// The keys in use.
    pub(crate) fn keys(&self) -> Arc<DataKeys> {
        Arc::clone(&self.data_keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Re-reads the key file, picking up a rotation done on any node. A file that cannot be read
    /// is logged and the node keeps what it has.
    pub fn reload_data_keys(&self) {
        let path = self.config.data_key_file();
        match DataKeys::read(&path) {
            Ok(Some(keys)) => {
                *self.data_keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
            }
            Ok(None) => {
                tracing::error!(file = %path.display(), "the data key file is gone; keeping the keys read before")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read the data key file; keeping the keys read before")
            }
        }
    }

    /// Adds a data key and re-encrypts every PESEL under it, in batches (`progress(done,
    /// total)` after each), then drops the older keys from the file. A run cut short (killed)
    /// is resumed by the next: while values remain under an older key, no key is added.
    pub async fn rotate_data_key(
        &self,
        wait: std::time::Duration,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> CoreResult<Rotation> {
        let path = self.config.data_key_file();
        let mut keys = DataKeys::read(&path)
            .map_err(CoreError::Internal)?
            .ok_or_else(|| CoreError::Internal(format!("{} does not exist", path.display())))?;
        let under = |id: &str| format!("v1.{id}.%");
        let mut added = false;
        if self.sealed_not_under(&under(keys.current())).await? == 0 {
            let id = keys.rotate();
            keys.write(&path).map_err(CoreError::Internal)?;
            let mut tx = self.begin().await?;
            let check = keys.check_value(&id).expect("the key just added");
            tx.secret_or_insert(&check_name(&id), &check, now_ms())
                .await?;
            tx.set_secret(CURRENT, &id, now_ms()).await?;
            tx.commit().await?;
            added = true;
            *self.data_keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys.clone());
            tokio::time::sleep(wait).await;
        }
        let current = keys.current().to_string();
        let total = self.store.pesels_not_under(&under(&current)).await?;
        let mut done = 0u64;
        let mut after = String::new();
        loop {
            let mut tx = self.begin().await?;
            let batch = tx
                .members_not_under(&under(&current), &after, UPGRADE_BATCH)
                .await?;
            for (id, organization_id, stored) in &batch {
                let pesel = keys
                    .decrypt(id, stored)
                    .map_err(|e| CoreError::Internal(format!("member {id}: its PESEL {e}")))?;
                tx.seal_pesel(
                    id,
                    &keys.encrypt(id, &pesel),
                    &keys.blind_index(organization_id, &pesel),
                )
                .await?;
            }
            tx.commit().await?;
            done += batch.len() as u64;
            progress(done, total.max(done));
            match batch.last() {
                Some((id, _, _)) if batch.len() == UPGRADE_BATCH as usize => after = id.clone(),
                _ => break,
            }
        }
        // The accounts' TOTP secrets (SPEC §13) are under the same key.
        let mut after = String::new();
        loop {
            let mut tx = self.begin().await?;
            let batch = tx
                .totp_secrets_not_under(&under(&current), &after, UPGRADE_BATCH)
                .await?;
            for (account_id, stored) in &batch {
                let aad = crate::core::mfa::sealed_for(account_id);
                let secret = keys.decrypt(&aad, stored).map_err(|e| {
                    CoreError::Internal(format!("account {account_id}: its TOTP secret {e}"))
                })?;
                tx.seal_totp(account_id, &keys.encrypt(&aad, &secret))
                    .await?;
            }
            tx.commit().await?;
            done += batch.len() as u64;
            match batch.last() {
                Some((id, _)) if batch.len() == UPGRADE_BATCH as usize => after = id.clone(),
                _ => break,
            }
        }
        // Retire the older keys only once nothing is under them (a node that had not yet read
        // the new key may have written one meanwhile: the next run takes it).
        let mut retired = Vec::new();
        if self.sealed_not_under(&under(&current)).await? == 0 {
            retired = keys
                .ids()
                .filter(|id| *id != current)
                .map(str::to_owned)
                .collect();
            if !retired.is_empty() {
                keys.retire_old();
                keys.write(&path).map_err(CoreError::Internal)?;
            }
        }
        self.store.after_rewrite().await?;
        Ok(Rotation {
            key: current,
            added,
            reencrypted: done,
            retired,
        })
    }

    /// How many sealed values (PESELs, TOTP secrets) are stored other than as `pattern`.
    async fn sealed_not_under(&self, pattern: &str) -> CoreResult<u64> {
        Ok(self.store.pesels_not_under(pattern).await?
            + self.store.totp_secrets_not_under(pattern).await?)
    }

    /// The blind index of a PESEL within an organization.
    pub(crate) fn pesel_index(&self, organization_id: &str, pesel: &str) -> String {
        self.keys().blind_index(organization_id, pesel)
    }

    /// The member as stored: its PESEL encrypted, with its blind index.
    pub(crate) fn seal(&self, member: &MemberRecord) -> MemberRecord {
        let keys = self.keys();
        MemberRecord {
            pesel: keys.encrypt(&member.id, &member.pesel),
            pesel_index: Some(keys.blind_index(&member.organization_id, &member.pesel)),
            ..member.clone()
        }
    }

    /// The member as stored, with its PESEL in clear. A value that does not decrypt is an
    /// error naming the member, never a PESEL made up of garbage.
    pub(crate) fn open(&self, member: MemberRecord) -> CoreResult<MemberRecord> {
        Ok(self.open_all(vec![member])?.remove(0))
    }

    /// Each member with its PESEL masked (`*******1359`), as a list answers it.
    ///
    /// A masked value is remembered by member id together with the ciphertext it came from, so
    /// a page read again (a register's first page is read each time someone opens it) costs no
    /// decryption: 20 decryptions were an eighth of a list's CPU. Only a value that decrypted,
    /// under the id it is bound to, is remembered, and it is used only while the row holds that
    /// same ciphertext: a tampered row still fails as [`Core::open`] does. The memory holds the
    /// four digits a list shows anyway, never a whole PESEL; at [`MASKED_CACHE`] entries
    /// (under 10 MiB) it starts again empty.
    pub(crate) fn open_masked(&self, members: Vec<MemberRecord>) -> CoreResult<Vec<MemberRecord>> {
        let mut known = Vec::with_capacity(members.len());
        let mut unknown = Vec::new();
        {
            let cache = self.masked_pesels.lock().unwrap_or_else(|p| p.into_inner());
            for (n, member) in members.into_iter().enumerate() {
                match cache.get(&member.id) {
                    Some((sealed, mask)) if *sealed == member.pesel => known.push((
                        n,
                        MemberRecord {
                            pesel: mask.clone(),
                            ..member
                        },
                    )),
                    _ => unknown.push((n, member)),
                }
            }
        }
        if !unknown.is_empty() {
            let sealed: Vec<String> = unknown.iter().map(|(_, m)| m.pesel.clone()).collect();
            let (places, records): (Vec<usize>, Vec<MemberRecord>) = unknown.into_iter().unzip();
            let opened = self.open_all(records)?;
            let mut cache = self.masked_pesels.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() + opened.len() > MASKED_CACHE {
                cache.clear();
            }
            for ((n, mut member), sealed) in places.into_iter().zip(opened).zip(sealed) {
                member.pesel = masked(&member.pesel);
                cache.insert(member.id.clone(), (sealed, member.pesel.clone()));
                known.push((n, member));
            }
        }
        known.sort_unstable_by_key(|(n, _)| *n);
        Ok(known.into_iter().map(|(_, m)| m).collect())
    }

    /// Drops a member's masked PESEL from [`Core::open_masked`]'s memory: erased means erased
    /// on this node too, not even the four digits a list showed.
    pub(crate) fn forget_masked(&self, member_id: &str) {
        self.masked_pesels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(member_id);
    }

    /// [`Core::open`] for each, with the keys read once for the lot.
    pub(crate) fn open_all(&self, members: Vec<MemberRecord>) -> CoreResult<Vec<MemberRecord>> {
        let mut keys = self.keys();
        members
            .into_iter()
            .map(|mut member| {
                let mut opened = keys.decrypt(&member.id, &member.pesel);
                // Written under a key this node has not read yet (a rotation on another node).
                if matches!(opened, Err(CipherError::UnknownKey(_))) {
                    self.reload_data_keys();
                    keys = self.keys();
                    opened = keys.decrypt(&member.id, &member.pesel);
                }
                member.pesel = opened.map_err(|e| {
                    CoreError::Internal(format!("member {}: its PESEL {e}", member.id))
                })?;
                Ok(member)
            })
            .collect()
    }
}
