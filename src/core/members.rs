//! The member register (seed 001): validation of every field at once, roles, organization
//! scoping, optimistic concurrency, search and paging, CSV export and all-or-nothing import.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::core::{Core, CoreError, CoreResult, Role, now_ms};
use crate::crypto::jwt::Claims;
use crate::domain::{
    AccountEmail, FieldError, MemberPhone, MemberText, Pesel, PostalCode, Problem, Voivodeship,
    normalize_key,
};
use crate::store::{
    AuditEvent, MemberFilter, MemberRecord, MemberSort, StoreError, UniqueField, VersionedUpdate,
};

/// Who acts on the register: a logged-in account, or the command line (the organization's
/// owner, with no account).
#[derive(Debug, Clone)]
pub struct Actor {
    pub organization_id: String,
    pub account_id: Option<String>,
    pub role: Role,
    pub ip: Option<IpAddr>,
}

impl Actor {
    pub fn from_claims(claims: &Claims, ip: Option<IpAddr>) -> Actor {
        Actor {
            organization_id: claims.org.clone(),
            account_id: Some(claims.sub.clone()),
            role: Core::role_of(claims),
            ip,
        }
    }

    /// The command line acts as the owner of an organization.
    pub fn cli(organization_id: &str) -> Actor {
        Actor {
            organization_id: organization_id.to_string(),
            account_id: None,
            role: Role::Owner,
            ip: None,
        }
    }

    fn require(&self, required: Role) -> CoreResult<()> {
        if self.role >= required {
            Ok(())
        } else {
            Err(CoreError::Forbidden { required })
        }
    }
}

/// The member fields as a client sent them, any JSON type; `None` when absent.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct MemberDraft {
    pub imie: Option<Value>,
    pub nazwisko: Option<Value>,
    pub wyksztalcenie: Option<Value>,
    pub pesel: Option<Value>,
    pub wojewodztwo: Option<Value>,
    pub miejscowosc: Option<Value>,
    pub ulica: Option<Value>,
    pub nrdomulokalu: Option<Value>,
    pub kodpocztowy: Option<Value>,
    pub email: Option<Value>,
    pub tel: Option<Value>,
    /// The version the client last saw (seed's `__v`).
    #[serde(rename = "__v")]
    pub version: Option<Value>,
}

/// The field names in the seed's order; also the CSV columns.
pub const FIELDS: [&str; 11] = [
    "imie",
    "nazwisko",
    "wyksztalcenie",
    "pesel",
    "wojewodztwo",
    "miejscowosc",
    "ulica",
    "nrdomulokalu",
    "kodpocztowy",
    "email",
    "tel",
];

impl MemberDraft {
    fn get(&self, field: &str) -> Option<&Value> {
        match field {
            "imie" => self.imie.as_ref(),
            "nazwisko" => self.nazwisko.as_ref(),
            "wyksztalcenie" => self.wyksztalcenie.as_ref(),
            "pesel" => self.pesel.as_ref(),
            "wojewodztwo" => self.wojewodztwo.as_ref(),
            "miejscowosc" => self.miejscowosc.as_ref(),
            "ulica" => self.ulica.as_ref(),
            "nrdomulokalu" => self.nrdomulokalu.as_ref(),
            "kodpocztowy" => self.kodpocztowy.as_ref(),
            "email" => self.email.as_ref(),
            "tel" => self.tel.as_ref(),
            _ => None,
        }
        .filter(|v| !v.is_null())
    }

    /// A draft from text cells (CSV).
    pub fn from_texts(cells: &HashMap<&'static str, String>) -> MemberDraft {
        let object = cells
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
            .collect();
        // Every value is a string and every key a member field, so this cannot fail.
        serde_json::from_value(Value::Object(object)).unwrap_or_default()
    }
}

/// Every field valid, in stored form.
#[derive(Debug, Clone)]
pub struct MemberFields {
    values: [String; 11],
}

impl MemberFields {
    fn get(&self, field: &str) -> &str {
        FIELDS
            .iter()
            .position(|f| *f == field)
            .map(|i| self.values[i].as_str())
            .unwrap_or_default()
    }

    fn from_record(m: &MemberRecord) -> MemberFields {
        MemberFields {
            values: [
                m.imie.clone(),
                m.nazwisko.clone(),
                m.wyksztalcenie.clone(),
                m.pesel.clone(),
                m.wojewodztwo.clone(),
                m.miejscowosc.clone(),
                m.ulica.clone(),
                m.nrdomulokalu.clone(),
                m.kodpocztowy.clone(),
                m.email.clone(),
                m.tel.clone(),
            ],
        }
    }

    /// The record these fields make, for `organization_id`.
    fn into_record(
        self,
        id: String,
        organization_id: &str,
        version: i64,
        created_by: Option<String>,
        created_at: i64,
        now: i64,
    ) -> MemberRecord {
        let search = search_text(&self);
        let [
            imie,
            nazwisko,
            wyksztalcenie,
            pesel,
            wojewodztwo,
            miejscowosc,
            ulica,
            nrdomulokalu,
            kodpocztowy,
            email,
            tel,
        ] = self.values;
        MemberRecord {
            id,
            organization_id: organization_id.to_string(),
            imie,
            nazwisko,
            wyksztalcenie,
            pesel,
            wojewodztwo,
            miejscowosc,
            ulica,
            nrdomulokalu,
            kodpocztowy,
            email,
            tel,
            search,
            version,
            created_by,
            created_at,
            updated_at: now,
        }
    }
}

/// What `q` searches: imie, nazwisko, miejscowosc, email, normalised like the query.
fn search_text(f: &MemberFields) -> String {
    normalize_key(&format!(
        "{} {} {} {}",
        f.get("imie"),
        f.get("nazwisko"),
        f.get("miejscowosc"),
        f.get("email")
    ))
}

/// Validates every field, reporting all problems at once. With `base`, absent fields keep the
/// base's values (PATCH); without, every field is required.
pub fn parse_member(
    draft: &MemberDraft,
    base: Option<&MemberFields>,
) -> Result<MemberFields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut values: [String; 11] = Default::default();
    for (i, field) in FIELDS.iter().enumerate() {
        let parsed = match (draft.get(field), base) {
            (None, Some(base)) => Ok(base.get(field).to_string()),
            (None, None) => Err(Problem::Required),
            (Some(value), _) => parse_field(field, value),
        };
        match parsed {
            Ok(v) => values[i] = v,
            Err(problem) => errors.push(FieldError { field, problem }),
        }
    }
    if errors.is_empty() {
        Ok(MemberFields { values })
    } else {
        Err(errors)
    }
}

fn parse_field(field: &str, value: &Value) -> Result<String, Problem> {
    if field == "pesel" {
        return Pesel::from_json(value).map(|p| p.as_str().to_string());
    }
    let text = match value {
        Value::String(s) => s.clone(),
        // A phone typed as a number by a client is still a phone.
        Value::Number(n) if field == "tel" => n.to_string(),
        _ => return Err(Problem::Type),
    };
    match field {
        "wojewodztwo" => Voivodeship::parse(&text).map(|v| v.as_str().to_string()),
        "kodpocztowy" => PostalCode::parse(&text).map(|p| p.as_str().to_string()),
        "email" => AccountEmail::parse(&text).map(|e| e.as_str().to_string()),
        "tel" => MemberPhone::parse(&text).map(|p| p.as_str().to_string()),
        _ => MemberText::parse(&text).map(|t| t.as_str().to_string()),
    }
}

/// Which members to list, as the client asked (already typed by the surface).
#[derive(Debug, Default, Clone)]
pub struct MemberQuery {
    pub q: Option<String>,
    pub wojewodztwo: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub page: Option<i64>,
    pub limit: Option<i64>,
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
/// The longest `q` a member search takes, in characters.
pub const MAX_SEARCH: usize = 200;

fn member_not_found() -> CoreError {
    CoreError::MemberNotFound
}

impl Core {
    pub async fn list_members(&self, actor: &Actor, query: &MemberQuery) -> CoreResult<MemberPage> {
        actor.require(Role::Moderator)?;
        let mut errors = Vec::new();
        let wojewodztwo = match query
            .wojewodztwo
            .as_deref()
            .filter(|w| !w.trim().is_empty())
        {
            None => None,
            Some(w) => match Voivodeship::parse(w) {
                Ok(v) => Some(v.as_str().to_string()),
                Err(problem) => {
                    errors.push(FieldError {
                        field: "wojewodztwo",
                        problem,
                    });
                    None
                }
            },
        };
        let sort = match query.sort.as_deref().map(str::trim) {
            None | Some("") | Some("nazwisko") => MemberSort::Nazwisko,
            Some("imie") => MemberSort::Imie,
            Some("miejscowosc") => MemberSort::Miejscowosc,
            Some("wojewodztwo") => MemberSort::Wojewodztwo,
            Some("createdAt") | Some("created_at") => MemberSort::CreatedAt,
            Some(_) => {
                errors.push(FieldError {
                    field: "sort",
                    problem: Problem::Format,
                });
                MemberSort::Nazwisko
            }
        };
        let descending = match query
            .order
            .as_deref()
            .map(|o| o.trim().to_ascii_lowercase())
        {
            None => false,
            Some(o) if o.is_empty() || o == "asc" => false,
            Some(o) if o == "desc" => true,
            Some(_) => {
                errors.push(FieldError {
                    field: "order",
                    problem: Problem::Format,
                });
                false
            }
        };
        if query.page.is_some_and(|p| p < 1) {
            errors.push(FieldError {
                field: "page",
                problem: Problem::Format,
            });
        }
        if query.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
            errors.push(FieldError {
                field: "limit",
                problem: Problem::Format,
            });
        }
        if let Some(q) = &query.q {
            // A search is text a person types: control characters (NUL would cut the FTS5
            // query short) are refused, and so is anything longer than a sentence.
            if q.chars().any(char::is_control) {
                errors.push(FieldError {
                    field: "q",
                    problem: Problem::Characters,
                });
            } else if q.chars().count() > MAX_SEARCH {
                errors.push(FieldError {
                    field: "q",
                    problem: Problem::Length {
                        min: 0,
                        max: MAX_SEARCH,
                    },
                });
            }
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let paged = query.page.is_some() || query.limit.is_some();
        let (page, limit) = if paged {
            (query.page.unwrap_or(1), query.limit.unwrap_or(50))
        } else {
            (1, i64::from(self.config.members_max_unpaged))
        };
        let q = query
            .q
            .as_deref()
            .map(normalize_key)
            .filter(|q| !q.is_empty());
        let filter = MemberFilter {
            q,
            wojewodztwo,
            sort,
            descending,
            offset: (page - 1).saturating_mul(limit),
            limit,
        };
        let (members, total) = self
            .store
            .list_members(&actor.organization_id, &filter)
            .await?;
        Ok(MemberPage {
            members,
            total,
            page: paged.then_some(page),
            limit,
        })
    }

    pub async fn member(&self, actor: &Actor, id: &str) -> CoreResult<MemberRecord> {
        actor.require(Role::Moderator)?;
        self.store
            .member(&actor.organization_id, id)
            .await?
            .ok_or_else(member_not_found)
    }

    pub async fn create_member(
        &self,
        actor: &Actor,
        draft: &MemberDraft,
    ) -> CoreResult<MemberRecord> {
        actor.require(Role::Moderator)?;
        let fields = parse_member(draft, None).map_err(CoreError::Validation)?;
        let now = now_ms();
        let record = fields.into_record(
            new_member_id(),
            &actor.organization_id,
            0,
            actor.account_id.clone(),
            now,
            now,
        );
        self.store
            .insert_member(&record)
            .await
            .map_err(pesel_taken)?;
        self.audit_member(actor, "member_created", Some(record.id.clone()))
            .await;
        Ok(record)
    }

    /// PUT (`partial = false`: every field required) or PATCH (`partial = true`). The version
    /// comes from `__v` in the body or from `If-Match`; a stale one changes nothing.
    pub async fn update_member(
        &self,
        actor: &Actor,
        id: &str,
        draft: &MemberDraft,
        if_match: Option<i64>,
        partial: bool,
    ) -> CoreResult<MemberRecord> {
        actor.require(Role::Moderator)?;
        let body_version = match &draft.version {
            None | Some(Value::Null) => None,
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            {
                Some(n) => Some(n),
                None => {
                    return Err(CoreError::Validation(vec![FieldError {
                        field: "__v",
                        problem: Problem::Format,
                    }]));
                }
            },
        };
        let current = self
            .store
            .member(&actor.organization_id, id)
            .await?
            .ok_or_else(member_not_found)?;
        let base = MemberFields::from_record(&current);
        let fields =
            parse_member(draft, partial.then_some(&base)).map_err(CoreError::Validation)?;
        let expected = body_version.or(if_match).unwrap_or(current.version);
        if expected != current.version {
            return Err(CoreError::VersionConflict {
                current: current.version,
            });
        }
        let record = fields.into_record(
            current.id.clone(),
            &actor.organization_id,
            current.version,
            current.created_by.clone(),
            current.created_at,
            now_ms(),
        );
        match self
            .store
            .update_member(&record, expected)
            .await
            .map_err(pesel_taken)?
        {
            VersionedUpdate::Updated(updated) => {
                self.audit_member(actor, "member_updated", Some(updated.id.clone()))
                    .await;
                Ok(*updated)
            }
            VersionedUpdate::NotFound => Err(member_not_found()),
            VersionedUpdate::Conflict { current } => Err(CoreError::VersionConflict { current }),
        }
    }

    pub async fn delete_member(&self, actor: &Actor, id: &str) -> CoreResult<()> {
        actor.require(Role::Admin)?;
        if !self.store.delete_member(&actor.organization_id, id).await? {
            return Err(member_not_found());
        }
        self.audit_member(actor, "member_deleted", Some(id.to_string()))
            .await;
        Ok(())
    }

    async fn audit_member(&self, actor: &Actor, action: &'static str, target: Option<String>) {
        self.audit(AuditEvent {
            organization_id: Some(actor.organization_id.clone()),
            actor_id: actor.account_id.clone(),
            action,
            target,
            ip: actor.ip.map(|ip| ip.to_string()),
        })
        .await;
    }
}

/// A new member's record for an import.
pub(crate) fn record_for_import(
    fields: MemberFields,
    organization_id: &str,
    created_by: Option<String>,
    now: i64,
) -> MemberRecord {
    fields.into_record(new_member_id(), organization_id, 0, created_by, now, now)
}

/// Member ids: UUIDv7 without dashes (sortable, and a plain token in URLs like the seed's ids).
fn new_member_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn pesel_taken(e: StoreError) -> CoreError {
    match e {
        StoreError::Unique(UniqueField::Pesel) => CoreError::Validation(vec![FieldError {
            field: "pesel",
            problem: Problem::Taken,
        }]),
        other => other.into(),
    }
}
