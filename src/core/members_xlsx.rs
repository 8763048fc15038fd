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

/// A workbook being written, one member per row.
pub struct Sheet {
    book: Workbook,
    text: Format,
    rows: u32,
}

impl Sheet {
    /// The sheet with its header row.
    pub fn new() -> Result<Self, XlsxError> {
        let mut book = Workbook::new();
        book.set_properties(&DocProperties::new().set_title("Rejestr członków"));
        let text = Format::new().set_num_format("@");
        let header = Format::new().set_bold().set_num_format("@");
        let sheet = book.add_worksheet();
        sheet.set_name(SHEET)?;
        for (col, (title, width)) in (0u16..).zip(COLUMNS) {
            sheet.set_column_width(col, width)?;
            if TEXT_COLUMNS.contains(&col) {
                sheet.set_column_format(col, &text)?;
            }
            sheet.write_string_with_format(0, col, title, &header)?;
        }
        Ok(Self {
            book,
            text,
            rows: 0,
        })
    }

    /// Adds `member` as the next row.
    pub fn push(&mut self, member: &MemberRecord) -> Result<(), XlsxError> {
        if self.rows as usize >= MAX_ROWS {
            return Err(XlsxError::RowColumnLimitError);
        }
        self.rows += 1;
        let sheet = self.book.worksheet_from_index(0)?;
        for (col, value) in (0u16..).zip(cells(member)) {
            if TEXT_COLUMNS.contains(&col) {
                sheet.write_string_with_format(self.rows, col, value, &self.text)?;
            } else {
                sheet.write_string(self.rows, col, value)?;
            }
        }
        Ok(())
    }

    /// The workbook's bytes, with the header row frozen and an autofilter over every row.
    pub fn finish(mut self) -> Result<Vec<u8>, XlsxError> {
        let sheet = self.book.worksheet_from_index(0)?;
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofilter(0, 0, self.rows, COLUMNS.len() as u16 - 1)?;
        self.book.save_to_buffer()
    }
}

fn xlsx_error(e: XlsxError) -> CoreError {
    CoreError::Internal(format!("the workbook: {e}"))
}

impl Core {
    /// Every member of the organization as an `.xlsx` workbook, audited as `member.export`.
    /// The rows are added as the members are read; compressing the workbook, which takes a
    /// while for a large register, runs on a blocking thread.
    pub async fn export_members_xlsx(
        &self,
        granted: &Granted<TransferMembers>,
    ) -> CoreResult<Vec<u8>> {
        let mut sheet = Sheet::new().map_err(xlsx_error)?;
        let count = self
            .for_each_exported(granted, |m| sheet.push(m).map_err(xlsx_error))
            .await?;
        let bytes = tokio::task::spawn_blocking(move || {
            let bytes = sheet.finish();
            // The workbook and its cells are gone; their memory goes back to the system.
            crate::app::trim_heap();
            bytes
        })
        .await
        .map_err(|e| CoreError::Internal(format!("the workbook's thread: {e}")))?
        .map_err(xlsx_error)?;
        self.audit_export(granted, count, "xlsx").await;
        Ok(bytes)
    }
}
