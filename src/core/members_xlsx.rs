//! The register as an Excel workbook, for the people who open the export in Excel: a CSV's
//! `02070803628` becomes the number 2070803628 there, and every PESEL of someone born 2000–2009
//! loses its leading zero. Here every cell is a text cell, the PESEL, postcode and phone columns
//! are formatted as text too (so a value typed into them later stays text), the headers are the
//! page's Polish labels, the header row is frozen and carries an autofilter.
//!
//! Text cells are never run as formulas, so no cell needs the CSV's leading `'`. The workbook is
//! built on a blocking thread: compressing a large register takes a while and must not hold up
//! the async runtime.

use rust_xlsxwriter::{DocProperties, Format, Workbook, XlsxError};

use crate::core::actor::{Granted, TransferMembers};
use crate::core::{Core, CoreError, CoreResult};
use crate::store::MemberRecord;

/// The workbook's one sheet.
pub const SHEET: &str = "Członkowie";

/// Column headers, as the page labels the fields, with the width each column opens with.
const COLUMNS: [(&str, f64); 12] = [
    ("Nazwisko", 20.0),
    ("Imię", 14.0),
    ("PESEL", 13.0),
    ("Wykształcenie", 16.0),
    ("Województwo", 20.0),
    ("Miejscowość", 18.0),
    ("Ulica", 22.0),
    ("Nr domu / lokalu", 10.0),
    ("Kod pocztowy", 8.0),
    ("E-mail", 28.0),
    ("Telefon", 14.0),
    ("Identyfikator", 38.0),
];

/// Columns whose values look like numbers but are not: PESEL, postcode, phone.
const TEXT_COLUMNS: [u16; 3] = [2, 8, 10];

/// Excel's last row, the header being the first.
const MAX_ROWS: usize = 1_048_575;

fn cells(m: &MemberRecord) -> [&str; 12] {
    [
        &m.nazwisko,
        &m.imie,
        &m.pesel,
        &m.wyksztalcenie,
        &m.wojewodztwo,
        &m.miejscowosc,
        &m.ulica,
        &m.nrdomulokalu,
        &m.kodpocztowy,
        &m.email,
        &m.tel,
        &m.id,
    ]
}

/// The workbook's bytes.
pub fn workbook(members: &[MemberRecord]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    book.set_properties(&DocProperties::new().set_title("Rejestr członków"));
    let sheet = book.add_worksheet();
    sheet.set_name(SHEET)?;
    let text = Format::new().set_num_format("@");
    let header = Format::new().set_bold().set_num_format("@");
    for (col, (title, width)) in (0u16..).zip(COLUMNS) {
        sheet.set_column_width(col, width)?;
        if TEXT_COLUMNS.contains(&col) {
            sheet.set_column_format(col, &text)?;
        }
        sheet.write_string_with_format(0, col, title, &header)?;
    }
    for (row, member) in (1u32..).zip(members) {
        for (col, value) in (0u16..).zip(cells(member)) {
            if TEXT_COLUMNS.contains(&col) {
                sheet.write_string_with_format(row, col, value, &text)?;
            } else {
                sheet.write_string(row, col, value)?;
            }
        }
    }
    let last_row = u32::try_from(members.len()).unwrap_or(u32::MAX);
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, last_row, COLUMNS.len() as u16 - 1)?;
    book.save_to_buffer()
}

impl Core {
    /// Every member of the organization as an `.xlsx` workbook, audited as `member.export`.
    pub async fn export_members_xlsx(
        &self,
        granted: &Granted<TransferMembers>,
    ) -> CoreResult<Vec<u8>> {
        let members = self.members_for_export(granted).await?;
        if members.len() > MAX_ROWS {
            return Err(CoreError::Internal(format!(
                "{} members do not fit in one Excel sheet; use the CSV export",
                members.len()
            )));
        }
        let (members, built) = tokio::task::spawn_blocking(move || {
            let built = workbook(&members);
            (members.len(), built)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("the workbook's thread: {e}")))?;
        let bytes = built.map_err(|e| CoreError::Internal(format!("the workbook: {e}")))?;
        self.audit_export(granted, members, "xlsx").await;
        Ok(bytes)
    }
}
