//! The register as CSV, for spreadsheets: UTF-8 with a BOM and `;` by default, so it opens in a
//! Polish Excel; and all-or-nothing import of the same format.
//!
//! Cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) are
//! written with a leading `'`, which spreadsheets show as text; import removes that `'` again,
//! so export followed by import gives the same members.

use std::collections::{HashMap, HashSet};

use crate::core::actor::{Granted, TransferMembers};
use crate::core::members::new_record;
use crate::core::{AuditAction, Core, CoreError, CoreResult, now_ms};
use crate::domain::{FieldInput, MEMBER_FIELDS as FIELDS, MemberForm, NewMember, Problem};
use crate::store::MemberRecord;

const BOM: &str = "\u{feff}";
/// Import errors listed in full; beyond this only their count is given.
pub const MAX_REPORTED_ERRORS: usize = 1000;
/// Members an export reads from the database at a time.
const EXPORT_BATCH: usize = 500;
/// How many ids an export reads a statement, along the sort index.
const EXPORT_ID_PAGE: i64 = 1_000;

/// A problem with one cell (or one whole row, `field = "row"`) of an import. `row` is the line
/// number in the file, the header being line 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub field: String,
    pub problem: Problem,
}

/// Separators a client may choose; anything else would make a file no spreadsheet reads.
pub fn parse_separator(sep: &str) -> Option<u8> {
    match sep {
        ";" => Some(b';'),
        "," => Some(b','),
        "\t" | "tab" | "\\t" => Some(b'\t'),
        "|" => Some(b'|'),
        _ => None,
    }
}

fn escape_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    }
}

fn unescape_cell(value: &str) -> &str {
    match value.strip_prefix('\'') {
        Some(rest)
            if matches!(
                rest.chars().next(),
                Some('=' | '+' | '-' | '@' | '\t' | '\r')
            ) =>
        {
            rest
        }
        _ => value,
    }
}

impl Core {
    /// Every member of the organization as CSV.
    pub async fn export_members_csv(
        &self,
        granted: &Granted<TransferMembers>,
        separator: u8,
    ) -> CoreResult<Vec<u8>> {
        let mut out = BOM.as_bytes().to_vec();
        let mut writer = csv::WriterBuilder::new()
            .delimiter(separator)
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        let mut header = vec!["_id"];
        header.extend(FIELDS);
        header.push("__v");
        writer.write_record(&header).map_err(csv_error)?;
        let count = self
            .for_each_exported(granted, |m| {
                let version = m.version.to_string();
                let cells = [
                    m.id.as_str(),
                    &m.imie,
                    &m.nazwisko,
                    &m.wyksztalcenie,
                    &m.pesel,
                    &m.wojewodztwo,
                    &m.miejscowosc,
                    &m.ulica,
                    &m.nrdomulokalu,
                    &m.kodpocztowy,
                    &m.email,
                    &m.tel,
                    &version,
                ];
                writer
                    .write_record(cells.iter().map(|c| escape_cell(c)))
                    .map_err(csv_error)
            })
            .await?;
        writer
            .flush()
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        drop(writer);
        self.audit_export(granted, count, "csv").await;
        Ok(out)
    }

    /// Calls `row` for every member of the organization, PESEL opened, in the order of an
    /// export (surname, Polish alphabet), and answers how many there were. The members are read
    /// [`EXPORT_BATCH`] at a time, so a large register is never held in memory whole: only the
    /// file being written grows.
    pub(crate) async fn for_each_exported(
        &self,
        granted: &Granted<TransferMembers>,
        mut row: impl FnMut(&MemberRecord) -> CoreResult<()>,
    ) -> CoreResult<usize> {
        let organization = &granted.organization_id;
        // Every id first, so that a member renamed during the export is neither written twice
        // nor left out.
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .member_ids(organization, after.as_ref(), EXPORT_ID_PAGE)
                .await?;
            let full = page.len() as i64 == EXPORT_ID_PAGE;
            after = page.last().cloned();
            ids.extend(page.into_iter().map(|key| key.id));
            if !full {
                break;
            }
        }
        let mut count = 0;
        for batch in ids.chunks(EXPORT_BATCH) {
            let place: HashMap<&str, usize> = batch
                .iter()
                .enumerate()
                .map(|(n, id)| (id.as_str(), n))
                .collect();
            let mut members = self.store.members_by_ids(organization, batch).await?;
            members.sort_by_key(|m| place.get(m.id.as_str()).copied());
            // A member deleted since the ids were read is left out; one changed since is
            // written as it is now.
            for member in self.open_all(members)? {
                row(&member)?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// The audit event `member.export`: who took the whole register, how many members, in
    /// which format. It holds no member data.
    pub(crate) async fn audit_export(
        &self,
        granted: &Granted<TransferMembers>,
        count: usize,
        format: &str,
    ) {
        self.audit_alone(AuditAction::MembersExported.event(
            Some(&granted.organization_id),
            granted.account_id.as_deref(),
            Some(format!("{count} members as {format}")),
            granted.ip,
        ))
        .await;
    }

    /// Imports every row or none. `progress(done, total)` is called while rows are checked,
    /// for the command line's progress bar.
    pub async fn import_members_csv(
        &self,
        granted: &Granted<TransferMembers>,
        data: &[u8],
        separator: Option<u8>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> CoreResult<usize> {
        let file_error = |problem| CoreError::Import {
            errors: vec![RowError {
                row: 1,
                field: "file".into(),
                problem,
            }],
            total: 1,
        };
        let Ok(text) = std::str::from_utf8(data) else {
            return Err(file_error(Problem::Characters));
        };
        let text = text.strip_prefix(BOM).unwrap_or(text);
        let separator = separator.unwrap_or_else(|| detect_separator(text));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());

        let mut errors = Vec::new();
        let headers = reader
            .headers()
            .map_err(|_| file_error(Problem::Format))?
            .clone();
        let mut columns: Vec<Option<&'static str>> = Vec::new();
        for name in headers.iter() {
            let name = name.trim().to_ascii_lowercase();
            match FIELDS.iter().find(|f| **f == name) {
                Some(f) => columns.push(Some(f)),
                None if name == "_id" || name == "__v" => columns.push(None),
                None => {
                    errors.push(RowError {
                        row: 1,
                        field: name,
                        problem: Problem::Unknown,
                    });
                    columns.push(None);
                }
            }
        }
        for field in FIELDS {
            if !columns.contains(&Some(field)) {
                errors.push(RowError {
                    row: 1,
                    field: field.into(),
                    problem: Problem::Required,
                });
            }
        }
        if !errors.is_empty() {
            let total = errors.len();
            return Err(CoreError::Import { errors, total });
        }

        let total_lines = text.lines().count().saturating_sub(1) as u64;
        let now = now_ms();
        let mut parsed: Vec<(u64, NewMember)> = Vec::new();
        let mut seen_pesels: HashMap<String, u64> = HashMap::new();
        let mut error_count = 0usize;
        for (n, row) in reader.records().enumerate() {
            let line = n as u64 + 2;
            if n % 1000 == 0 {
                progress(n as u64, total_lines);
            }
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let row = e.position().map(|p| p.line()).unwrap_or(line);
                    error_count += 1;
                    push_capped(
                        &mut errors,
                        RowError {
                            row,
                            field: "row".into(),
                            problem: Problem::Format,
                        },
                    );
                    continue;
                }
            };
            let line = row.position().map(|p| p.line()).unwrap_or(line);
            let mut form = MemberForm::default();
            for (column, cell) in columns.iter().zip(row.iter()) {
                if let Some(slot) = column.and_then(|c| form.slot(c)) {
                    *slot = Some(FieldInput::Text(unescape_cell(cell).to_string()));
                }
            }
            match NewMember::parse(form) {
                Ok(member) => parsed.push((line, member)),
                Err(fields) => {
                    for f in fields {
                        error_count += 1;
                        push_capped(
                            &mut errors,
                            RowError {
                                row: line,
                                field: f.field.into(),
                                problem: f.problem,
                            },
                        );
                    }
                }
            }
        }
        progress(total_lines, total_lines);

        // Each row as stored, with its PESEL encrypted and blind-indexed (by which a taken one
        // is found), made on every core: for a million rows this was a fifth of the import.
        let built = self.build_records(parsed, granted, now);
        let mut records: Vec<MemberRecord> = Vec::with_capacity(built.len());
        let mut sealed: Vec<MemberRecord> = Vec::with_capacity(built.len());
        for (line, record, stored) in built {
            if let Some(first) = seen_pesels.insert(record.pesel.clone(), line) {
                error_count += 1;
                push_capped(
                    &mut errors,
                    RowError {
                        row: line,
                        field: "pesel".into(),
                        problem: Problem::Taken,
                    },
                );
                // Keep the first row's claim on the number.
                seen_pesels.insert(record.pesel.clone(), first);
                continue;
            }
            records.push(record);
            sealed.push(stored);
        }
        let indexes: Vec<String> = sealed
            .iter()
            .filter_map(|r| r.pesel_index.clone())
            .collect();
        let taken: HashSet<String> = self
            .store
            .taken_pesel_indexes(&granted.organization_id, &indexes)
            .await?
            .into_iter()
            .collect();
        if !taken.is_empty() {
            for (record, stored) in records.iter().zip(&sealed) {
                if stored
                    .pesel_index
                    .as_ref()
                    .is_some_and(|i| taken.contains(i))
                {
                    error_count += 1;
                    let row = seen_pesels.get(&record.pesel).copied().unwrap_or(0);
                    push_capped(
                        &mut errors,
                        RowError {
                            row,
                            field: "pesel".into(),
                            problem: Problem::Taken,
                        },
                    );
                }
            }
        }
        if error_count > 0 {
            errors.sort_by_key(|e| e.row);
            return Err(CoreError::Import {
                errors,
                total: error_count,
            });
        }
        let mut tx = self.begin().await?;
        tx.insert_members(&sealed).await.map_err(|e| match e {
            crate::store::StoreError::Unique(_) => CoreError::Import {
                errors: vec![RowError {
                    row: 0,
                    field: "pesel".into(),
                    problem: Problem::Taken,
                }],
                total: 1,
            },
            other => other.into(),
        })?;
        let event = AuditAction::MembersImported.event(
            Some(&granted.organization_id),
            granted.account_id.as_deref(),
            Some(format!("{} members", records.len())),
            granted.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_search_sample();
        let imported = records.len();
        // Freed on a thread of their own: a million rows (twice, in clear and as stored) and
        // their numbers took one to two seconds to free, which the answer (or the command
        // line's exit) need not wait for. They are not freed sooner on purpose: freeing a
        // million small blocks before the insert left the allocator's lists so cut up that
        // the insert's own allocations made it half again as long (17 -> 25 s of a
        // million-row import).
        let _ = std::thread::Builder::new()
            .name("import-free".into())
            .spawn(move || drop((records, sealed, seen_pesels, indexes)));
        Ok(imported)
    }

    /// The rows' records, in file order: `(line, record, record as stored)`, made by one
    /// thread per core (scoped threads, a contiguous share each; the import is a command-line
    /// or admin job that may use the machine).
    fn build_records(
        &self,
        parsed: Vec<(u64, NewMember)>,
        granted: &Granted<TransferMembers>,
        now: i64,
    ) -> Vec<(u64, MemberRecord, MemberRecord)> {
        let build = |(line, member): (u64, NewMember)| {
            let record = new_record(
                member,
                &granted.organization_id,
                granted.account_id.clone(),
                now,
            );
            let stored = self.seal(&record);
            (line, record, stored)
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads == 1 || parsed.len() < 2_000 {
            return parsed.into_iter().map(build).collect();
        }
        let share = parsed.len().div_ceil(threads);
        let mut parsed = parsed.into_iter();
        let shares: Vec<Vec<(u64, NewMember)>> = (0..threads)
            .map(|_| parsed.by_ref().take(share).collect())
            .collect();
        std::thread::scope(|scope| {
            let running: Vec<_> = shares
                .into_iter()
                .map(|share| scope.spawn(move || share.into_iter().map(build).collect::<Vec<_>>()))
                .collect();
            running
                .into_iter()
                .flat_map(|thread| match thread.join() {
                    Ok(built) => built,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        })
    }
}

fn push_capped(errors: &mut Vec<RowError>, error: RowError) {
    if errors.len() < MAX_REPORTED_ERRORS {
        errors.push(error);
    }
}

/// The separator the header line uses most: `;`, `,` or tab.
fn detect_separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    [b';', b',', b'\t']
        .into_iter()
        .max_by_key(|s| header.bytes().filter(|b| b == s).count())
        .unwrap_or(b';')
}

fn csv_error(e: csv::Error) -> CoreError {
    CoreError::Internal(format!("writing CSV: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_restored() {
        for v in ["=1+1", "+48 768 895 832", "-5", "@SUM(A1)"] {
            let escaped = escape_cell(v);
            assert!(escaped.starts_with('\''));
            assert_eq!(unescape_cell(&escaped), v);
        }
        assert_eq!(escape_cell("Kowalski"), "Kowalski");
        assert_eq!(unescape_cell("'quoted"), "'quoted");
    }

    #[test]
    fn separator_is_detected_from_the_header() {
        assert_eq!(detect_separator("a;b;c\n1,2;3"), b';');
        assert_eq!(detect_separator("a,b,c"), b',');
        assert_eq!(detect_separator("a\tb\tc"), b'\t');
    }
}
