//! The member register (seed 001): organization scoping, optimistic concurrency, search and
//! paging. CSV export and import are in `members_csv`.

use crate::config::MemberListPesel;
use crate::core::actor::{DeleteMembers, Granted, ManageMembers, TransferMembers};
use crate::core::{AuditAction, Core, CoreError, CoreResult, now_ms};
use crate::domain::{
    FieldError, MemberPatch, NewMember, Pesel, Problem, SearchText, Voivodeship, search_key,
    sort_key,
};
use crate::store::{
    MemberFilter, MemberRecord, MemberSort, StoreError, TrailEntry, UniqueField, VersionedUpdate,
};

/// Which members to list, as the client asked.
#[derive(Debug, Clone)]
pub struct MemberListing {
    pub q: Option<SearchText>,
    pub wojewodztwo: Option<Voivodeship>,
    /// Exactly the member with this PESEL (found by its blind index).
    pub pesel: Option<Pesel>,
    pub sort: MemberSort,
    pub descending: bool,
    /// 1-based; with `limit`, `None` means no paging was asked for.
    pub page: Option<i64>,
    pub limit: Option<i64>,
}

impl Default for MemberListing {
    fn default() -> Self {
        MemberListing {
            q: None,
            wojewodztwo: None,
            pesel: None,
            sort: MemberSort::Nazwisko,
            descending: false,
            page: None,
            limit: None,
        }
    }
}

/// One page of members and what a client needs to page on.
#[derive(Debug)]
pub struct MemberPage {
    pub members: Vec<MemberRecord>,
    pub total: i64,
    /// `Some` when the client asked for paging.
    pub page: Option<i64>,
    pub limit: i64,
}

/// The largest page a client may ask for.
pub const MAX_LIMIT: i64 = 1000;
/// A page's size when a client pages without saying how many.
const DEFAULT_LIMIT: i64 = 50;

/// What `q` searches: imie, nazwisko, miejscowosc and email, in the form the query is put in
/// ([`search_key`]: lower-case, without diacritics).
pub fn search_text(member: &MemberRecord) -> String {
    search_of(
        &member.imie,
        &member.nazwisko,
        &member.miejscowosc,
        &member.email,
    )
}

fn search_of(imie: &str, nazwisko: &str, miejscowosc: &str, email: &str) -> String {
    search_key(&format!("{imie} {nazwisko} {miejscowosc} {email}"))
}

/// Which form of search text and sort keys the stored rows hold; a start that finds an older
/// one makes them anew (2: search without diacritics; 3: Polish sort keys).
const SEARCH_VERSION: &str = "3";
const SEARCH_VERSION_NAME: &str = "member_search.version";

/// Makes the members' search text and sort keys anew when an older version made them, in
/// batches; how many rows it went through.
pub(crate) async fn refresh_search_texts(
    store: &crate::store::DynStore,
) -> Result<u64, crate::core::StartupError> {
    let mut tx = store.begin().await?;
    if tx.secret(SEARCH_VERSION_NAME).await?.as_deref() == Some(SEARCH_VERSION) {
        return Ok(0);
    }
    drop(tx);
    let mut changed = 0u64;
    let mut after = String::new();
    loop {
        let mut tx = store.begin().await?;
        let batch = tx.member_texts(&after, 500).await?;
        for m in &batch {
            let search = search_of(&m.imie, &m.nazwisko, &m.miejscowosc, &m.email);
            let keys = [&m.imie, &m.nazwisko, &m.miejscowosc, &m.wojewodztwo].map(|t| sort_key(t));
            if search != m.search || m.nazwisko_sort.as_deref() != Some(keys[1].as_str()) {
                tx.set_member_derived(&m.id, &search, keys.each_ref().map(String::as_str))
                    .await?;
                changed += 1;
            }
        }
        match batch.last() {
            Some(last) if batch.len() == 500 => {
                after = last.id.clone();
                tx.commit().await?;
            }
            _ => {
                tx.set_secret(SEARCH_VERSION_NAME, SEARCH_VERSION, now_ms())
                    .await?;
                tx.commit().await?;
                break;
            }
        }
    }
    if changed > 0 {
        tracing::info!(
            members = changed,
            "made the members' search text anew (diacritics ignored)"
        );
    }
    Ok(changed)
}

/// Places the members that have no place in their organization's surname order (SQLite: the
/// rows of a database older than migration 0021, or whose surname key was just made anew), in
/// one transaction, before the server answers a search.
pub(crate) async fn place_members(
    store: &crate::store::DynStore,
) -> Result<u64, crate::core::StartupError> {
    let mut tx = store.begin().await?;
    let placed = tx.place_unplaced_members().await?;
    tx.commit().await?;
    if placed > 0 {
        tracing::info!(
            members = placed,
            "placed members in surname order for search"
        );
    }
    Ok(placed)
}

/// Writes the fields a patch sets into a stored member, and its search text.
fn apply(member: &mut MemberRecord, patch: MemberPatch) {
    let text = |v: Option<crate::domain::MemberText>, slot: &mut String| {
        if let Some(v) = v {
            *slot = v.as_str().to_string();
        }
    };
    text(patch.imie, &mut member.imie);
    text(patch.nazwisko, &mut member.nazwisko);
    text(patch.wyksztalcenie, &mut member.wyksztalcenie);
    text(patch.miejscowosc, &mut member.miejscowosc);
    text(patch.ulica, &mut member.ulica);
    text(patch.nrdomulokalu, &mut member.nrdomulokalu);
    if let Some(v) = patch.pesel {
        member.pesel = v.as_str().to_string();
    }
    if let Some(v) = patch.wojewodztwo {
        member.wojewodztwo = v.as_str().to_string();
    }
    if let Some(v) = patch.kodpocztowy {
        member.kodpocztowy = v.as_str().to_string();
    }
    if let Some(v) = patch.email {
        member.email = v.as_str().to_string();
    }
    if let Some(v) = patch.tel {
        member.tel = v.as_str().to_string();
    }
    member.search = search_text(member);
    member.imie_sort = Some(sort_key(&member.imie));
    member.nazwisko_sort = Some(sort_key(&member.nazwisko));
    member.miejscowosc_sort = Some(sort_key(&member.miejscowosc));
    member.wojewodztwo_sort = Some(sort_key(&member.wojewodztwo));
}

/// A new member of `organization_id`, as stored.
pub(crate) fn new_record(
    member: NewMember,
    organization_id: &str,
    created_by: Option<String>,
    now: i64,
) -> MemberRecord {
    let mut record = MemberRecord {
        id: new_member_id(),
        organization_id: organization_id.to_string(),
        imie: String::new(),
        nazwisko: String::new(),
        wyksztalcenie: String::new(),
        pesel: String::new(),
        wojewodztwo: String::new(),
        miejscowosc: String::new(),
        ulica: String::new(),
        nrdomulokalu: String::new(),
        kodpocztowy: String::new(),
        email: String::new(),
        tel: String::new(),
        search: String::new(),
        version: 0,
        created_by,
        created_at: now,
        updated_at: now,
        pesel_index: None,
        imie_sort: None,
        nazwisko_sort: None,
        miejscowosc_sort: None,
        wojewodztwo_sort: None,
    };
    apply(&mut record, member.into_patch());
    record
}

impl Core {
    /// The trigrams of `q` a search asks the index for ([`crate::core::search_plan`]).
    async fn search_trigrams(&self, q: &str) -> CoreResult<Vec<String>> {
        Ok(self.search_sample.choose(&self.store, q).await?)
    }

    /// At start-up, takes a sample of the search texts in the background, so that the first
    /// search need not wait for one: where the page's default search (by surname) is planned
    /// from it. Not on SQLite, whose search by surname is not (a sample there reads a thousand
    /// rows at random through the readers' map of the file: 92 of the 96 MiB an idle server
    /// held a second after its start, at a million members, before its reader closed).
    pub fn sample_search_texts_in_background(&self) {
        let default_search = MemberFilter {
            q: Some("search".to_string()),
            index_trigrams: Vec::new(),
            wojewodztwo: None,
            pesel_index: None,
            sort: MemberSort::Nazwisko,
            descending: false,
            offset: 0,
            limit: DEFAULT_LIMIT,
        };
        if default_search.wants_trigrams(self.store.search_index()) {
            self.search_sample.take_in_background(&self.store);
        }
    }

    /// Makes the next search take a new sample (after an import changed the register).
    pub(crate) fn forget_search_sample(&self) {
        self.search_sample.forget();
    }

    pub async fn list_members(
        &self,
        granted: &Granted<ManageMembers>,
        listing: MemberListing,
    ) -> CoreResult<MemberPage> {
        let paged = listing.page.is_some() || listing.limit.is_some();
        let (page, limit) = if paged {
            (
                listing.page.unwrap_or(1),
                listing.limit.unwrap_or(DEFAULT_LIMIT),
            )
        } else {
            (1, i64::from(self.config.members_max_unpaged))
        };
        let q = listing
            .q
            .as_ref()
            .map(|q| search_key(q.as_str()))
            .filter(|q| !q.is_empty());
        let mut filter = MemberFilter {
            q,
            index_trigrams: Vec::new(),
            wojewodztwo: listing.wojewodztwo.map(|w| w.as_str().to_string()),
            pesel_index: listing
                .pesel
                .map(|p| self.pesel_index(&granted.organization_id, p.as_str())),
            sort: listing.sort,
            descending: listing.descending,
            offset: (page - 1).saturating_mul(limit),
            limit,
        };
        if let Some(q) = filter.q.as_deref()
            && filter.wants_trigrams(self.store.search_index())
        {
            filter.index_trigrams = self.search_trigrams(q).await?;
        }
        let (members, total) = self
            .store
            .list_members(&granted.organization_id, &filter)
            .await?;
        let members = match self.config.member_list_pesel {
            MemberListPesel::Masked => self.open_masked(members)?,
            MemberListPesel::Full => self.open_all(members)?,
        };
        Ok(MemberPage {
            members,
            total,
            page: paged.then_some(page),
            limit,
        })
    }

    pub async fn member(
        &self,
        granted: &Granted<ManageMembers>,
        id: &str,
    ) -> CoreResult<MemberRecord> {
        let member = self.stored_member(&granted.organization_id, id).await?;
        // The whole PESEL was shown to someone: the trail says who (never the PESEL). Written
        // behind the answer, in a batch with other reads (see `audit_queue`).
        self.audit_later(member_event(granted, AuditAction::MemberPeselRead, id));
        Ok(member)
    }

    /// One member of the organization, its PESEL decrypted.
    async fn stored_member(&self, organization_id: &str, id: &str) -> CoreResult<MemberRecord> {
        let member = self
            .store
            .member(organization_id, id)
            .await?
            .ok_or(CoreError::MemberNotFound)?;
        self.open(member)
    }

    /// Everything held about one member and every audit event about it, for the member's right
    /// of access (GDPR Art. 15); audited as `member.rodo_export`.
    pub async fn member_access_export(
        &self,
        granted: &Granted<TransferMembers>,
        id: &str,
    ) -> CoreResult<(MemberRecord, Vec<TrailEntry>)> {
        let member = self.stored_member(&granted.organization_id, id).await?;
        self.flush_audit().await;
        let trail = self.store.audit_trail(&granted.organization_id, id).await?;
        self.audit_alone(member_event(granted, AuditAction::MemberRodoExport, id))
            .await;
        Ok((member, trail))
    }

    pub async fn create_member(
        &self,
        granted: &Granted<ManageMembers>,
        member: NewMember,
    ) -> CoreResult<MemberRecord> {
        let now = now_ms();
        let record = new_record(
            member,
            &granted.organization_id,
            granted.account_id.clone(),
            now,
        );
        let mut tx = self.begin().await?;
        tx.insert_member(&self.seal(&record))
            .await
            .map_err(pesel_taken)?;
        tx.record_audit(
            &member_event(granted, AuditAction::MemberCreated, &record.id),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Changes the fields `patch` sets (PUT sends a patch of every field). `expected` is the
    /// version the client last saw (`__v` or `If-Match`); a stale one changes nothing.
    pub async fn update_member(
        &self,
        granted: &Granted<ManageMembers>,
        id: &str,
        patch: MemberPatch,
        expected: Option<i64>,
    ) -> CoreResult<MemberRecord> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let mut record = self.open(
            tx.member(&granted.organization_id, id)
                .await?
                .ok_or(CoreError::MemberNotFound)?,
        )?;
        let expected = expected.unwrap_or(record.version);
        if expected != record.version {
            return Err(CoreError::VersionConflict {
                current: record.version,
            });
        }
        apply(&mut record, patch);
        record.updated_at = now;
        let updated = match tx
            .update_member(&self.seal(&record), expected)
            .await
            .map_err(pesel_taken)?
        {
            VersionedUpdate::Updated(updated) => updated,
            VersionedUpdate::NotFound => return Err(CoreError::MemberNotFound),
            VersionedUpdate::Conflict { current } => {
                return Err(CoreError::VersionConflict { current });
            }
        };
        tx.record_audit(
            &member_event(granted, AuditAction::MemberUpdated, &updated.id),
            now,
        )
        .await?;
        tx.commit().await?;
        self.open(*updated)
    }

    pub async fn delete_member(
        &self,
        granted: &Granted<DeleteMembers>,
        id: &str,
    ) -> CoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        if !tx.delete_member(&granted.organization_id, id).await? {
            return Err(CoreError::MemberNotFound);
        }
        tx.record_audit(&member_event(granted, AuditAction::MemberDeleted, id), now)
            .await?;
        tx.commit().await?;
        self.forget_masked(id);
        Ok(())
    }
}

fn member_event<P: crate::core::actor::Permission>(
    granted: &Granted<P>,
    action: AuditAction,
    member_id: &str,
) -> crate::store::AuditEvent {
    action.event(
        Some(&granted.organization_id),
        granted.account_id.as_deref(),
        Some(member_id.to_string()),
        granted.ip,
    )
}

/// A PESEL as lists show it: seven asterisks and its last four digits (SPEC §12).
pub fn masked(pesel: &str) -> String {
    let tail: String = pesel
        .chars()
        .skip(pesel.chars().count().saturating_sub(4))
        .collect();
    format!("*******{tail}")
}

/// Member ids: UUIDv7 without dashes (sortable, and a plain token in URLs like the seed's ids).
fn new_member_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A PESEL is unique within an organization: a collision is the client's field error.
fn pesel_taken(e: StoreError) -> CoreError {
    match e {
        StoreError::Unique(UniqueField::Pesel) => CoreError::Validation(vec![FieldError {
            field: "pesel",
            problem: Problem::Taken,
        }]),
        other => other.into(),
    }
}
