//! SPEC §12: members' PESELs are encrypted at rest. The tests read what an attacker with a copy
//! of the database would: the SQLite file and its WAL, or a `pg_dump`.

use std::path::Path;
use std::process::Command;

use brama::core::Role;
use brama::crypto::datakey::DataKeys;
use brama::domain::Pesel;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDb};
use crate::{app, both_backends};

both_backends!(
    no_pesel_is_in_clear_in_the_database_files_or_a_dump,
    the_upgrade_encrypts_the_pesels_a_database_from_before_holds_in_clear,
    a_missing_or_different_key_file_stops_start_up,
    lists_mask_pesels_one_read_shows_it_whole_and_is_audited,
    a_tampered_pesel_is_an_error_even_in_a_list_read_before,
    the_excel_export_keeps_pesels_postcodes_and_phones_as_text,
    rotating_the_data_key_reencrypts_every_pesel_and_survives_a_kill,
    a_member_gets_its_data_and_access_log_and_is_erased_without_a_trace,
    an_account_exports_its_data_and_deletes_itself_but_not_the_last_owner,
);

/// PESELs of people born in 1944 and 2002 (the second starts with 0, as Excel's victims do).
fn pesels() -> Vec<String> {
    [
        (1944, 5, 14, 135u16),
        (2002, 7, 8, 362),
        (1987, 12, 31, 4411),
    ]
    .iter()
    .map(|&(y, m, d, serial)| {
        Pesel::from_parts(y, m, d, serial)
            .expect("valid")
            .as_str()
            .to_string()
    })
    .collect()
}

fn member(n: usize, pesel: &str) -> Value {
    json!({
        "imie": "Anna", "nazwisko": format!("Kowalska{n}"), "wyksztalcenie": "Średnie",
        "pesel": pesel, "wojewodztwo": "mazowieckie", "miejscowosc": "Warszawa",
        "ulica": "Prosta", "nrdomulokalu": "5", "kodpocztowy": "00-950",
        "email": format!("anna{n}@example.com"), "tel": "600100200",
    })
}

/// Creates a member for each PESEL as `token`; their ids.
async fn create_members(app: &TestApp, token: &str, pesels: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for (n, pesel) in pesels.iter().enumerate() {
        let r = app
            .request(
                "POST",
                "/api/membership/members",
                Some(member(n, pesel)),
                &[("x-access-token", token)],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["_id"].as_str().unwrap().to_string());
    }
    ids
}

/// Which of `pesels` occur anywhere in `bytes`.
fn found_in(bytes: &[u8], pesels: &[String]) -> Vec<String> {
    pesels
        .iter()
        .filter(|p| bytes.windows(11).any(|w| w == p.as_bytes()))
        .cloned()
        .collect()
}

/// Everything an attacker with the database would read: the SQLite file and its WAL (before
/// and after a checkpoint), or PostgreSQL's dump.
async fn database_bytes(db_url: &str, backend: Backend, dir: &Path) -> Vec<u8> {
    database_bytes_since(db_url, backend, dir, false).await
}

/// [`database_bytes`]; with `checkpointed_only`, only what is left once the WAL was checkpointed
/// (a deleted row is in the WAL's older frames until then, as SQLite's design has it).
async fn database_bytes_since(
    db_url: &str,
    backend: Backend,
    dir: &Path,
    checkpointed_only: bool,
) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let file = dir.join("brama.db");
            let read = || {
                let mut all = std::fs::read(&file).expect("the database file");
                all.extend(std::fs::read(dir.join("brama.db-wal")).unwrap_or_default());
                all
            };
            let mut all = if checkpointed_only {
                Vec::new()
            } else {
                read()
            };
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(db_url)
                .await
                .expect("the database opens");
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await
                .expect("checkpoint");
            all.extend(read());
            all
        }
        Backend::Postgres => {
            let dump = Command::new("pg_dump")
                .arg(db_url)
                .output()
                .expect("pg_dump runs");
            assert!(
                dump.status.success(),
                "{}",
                String::from_utf8_lossy(&dump.stderr)
            );
            dump.stdout
        }
    }
}

async fn no_pesel_is_in_clear_in_the_database_files_or_a_dump(backend: Backend) {
    let app = app!(backend);
    app.user("owner1").await;
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let token = moderator["accessToken"].as_str().unwrap().to_string();
    let pesels = pesels();
    let ids = create_members(&app, &token, &pesels).await;
    // Read back whole by whoever may, and still unique within the organization.
    let r = app
        .get(
            &format!("/api/membership/members/{}", ids[1]),
            &[("x-access-token", &token)],
        )
        .await;
    assert_eq!(r.body["pesel"], pesels[1].as_str(), "{}", r.text);
    let r = app
        .request(
            "POST",
            "/api/membership/members",
            Some(member(9, &pesels[0])),
            &[("x-access-token", &token)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("pesel"), "{}", r.text);

    let stored = app
        .query_text("SELECT pesel FROM members WHERE id = $1", &[&ids[0]])
        .await
        .expect("a row");
    assert!(stored.starts_with("v1."), "{stored}");
    let bytes = database_bytes(&app.core.config.database_url(), backend, app.dir()).await;
    assert!(
        bytes.len() > 10_000,
        "read the database ({} bytes)",
        bytes.len()
    );
    assert_eq!(found_in(&bytes, &pesels), Vec::<String>::new());
    // The test would see one: the surname is there in clear.
    assert!(bytes.windows(9).any(|w| w == b"Kowalska0"));
}

/// A database written before encryption came in (the schema up to migration 0011, PESELs in
/// clear) is upgraded at start: every PESEL encrypted under the data key, with its blind index,
/// and none left in clear in the files.
async fn the_upgrade_encrypts_the_pesels_a_database_from_before_holds_in_clear(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let before = db.dir().join("migrations-before");
    std::fs::create_dir_all(&before).unwrap();
    for entry in std::fs::read_dir(format!("migrations/{folder}")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0012" {
            std::fs::copy(&path, before.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(before.as_path())
        .await
        .expect("migrations");
    let url = match backend {
        Backend::Sqlite => format!("{}?mode=rwc", db.url),
        Backend::Postgres => db.url.clone(),
    };
    let pesels = pesels();
    match backend {
        Backend::Sqlite => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            migrator.run(&mut conn).await.expect("today's schema");
        }
        Backend::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            migrator.run(&mut conn).await.expect("today's schema");
        }
    }
    db.execute(
        "INSERT INTO organizations (id, name, state, status, created_at) \
         VALUES ('org-old', 'Stare', 1, 'active', 1)",
        &[],
    )
    .await;
    for (n, pesel) in pesels.iter().enumerate() {
        let id = format!("old{n}");
        let surname = format!("Nowak{n}");
        db.execute(
            "INSERT INTO members (id, organization_id, imie, nazwisko, wyksztalcenie, pesel, \
             wojewodztwo, miejscowosc, ulica, nrdomulokalu, kodpocztowy, email, tel, search, \
             version, created_at, updated_at) VALUES ($1, 'org-old', 'Jan', $2, 'Wyższe', $3, \
             'Mazowieckie', 'Warszawa', 'Prosta', '1', '00-950', 'jan@example.com', '600100200', \
             'jan', 0, 1, 1)",
            &[&id, &surname, pesel],
        )
        .await;
    }

    let app = TestApp::spawn_on(db, |_| {}).await;
    let keys = DataKeys::read(&app.dir().join("data.key"))
        .expect("a key file")
        .expect("made at start");
    for (n, pesel) in pesels.iter().enumerate() {
        let id = format!("old{n}");
        let stored = app
            .query_text("SELECT pesel FROM members WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(keys.decrypt(&id, &stored).as_deref(), Ok(pesel.as_str()));
        let index = app
            .query_text("SELECT pesel_index FROM members WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(index, keys.blind_index("org-old", pesel));
    }
    let bytes = database_bytes(&app.core.config.database_url(), backend, app.dir()).await;
    assert_eq!(found_in(&bytes, &pesels), Vec::<String>::new());
}

/// A node never writes under a second key: without its key file, or with another one, it does
/// not start, and the message names the setting.
async fn a_missing_or_different_key_file_stops_start_up(backend: Backend) {
    let app = app!(backend);
    let config = app.core.config.clone();
    let key_file = app.dir().join("data.key");
    let kept = app.dir().join("data.key.kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let refusal =
        async |config: &brama::Config| match brama::Application::build(config.clone()).await {
            Ok(_) => panic!("started"),
            Err(e) => e.to_string(),
        };

    std::fs::rename(&key_file, &kept).unwrap();
    let e = refusal(&config).await;
    assert!(
        e.contains("invalid setting `data_key_file`") && e.contains("does not exist"),
        "{e}"
    );
    assert!(!key_file.exists(), "no second key was made");

    DataKeys::generate().write(&key_file).unwrap();
    let e = refusal(&config).await;
    assert!(
        e.contains("invalid setting `data_key_file`") && e.contains("does not hold data key"),
        "{e}"
    );

    // The right key id with other key bytes: the check value tells them apart.
    let text = std::fs::read_to_string(&kept).unwrap();
    let forged: String = text
        .lines()
        .map(|line| match line.strip_prefix("key ") {
            Some(rest) => {
                let id = rest.split_whitespace().next().unwrap();
                format!("key {id} {}\n", "A".repeat(43) + "=")
            }
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&key_file, forged).unwrap();
    let e = refusal(&config).await;
    assert!(e.contains("is not the key of that id"), "{e}");

    // Its own key back: it starts.
    std::fs::rename(&kept, &key_file).unwrap();
    assert!(brama::Application::build(config).await.is_ok());
}

async fn lists_mask_pesels_one_read_shows_it_whole_and_is_audited(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let owner = owner["accessToken"].as_str().unwrap().to_string();
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let token = moderator["accessToken"].as_str().unwrap().to_string();
    let auth = [("x-access-token", token.as_str())];
    let pesels = pesels();
    let ids = create_members(&app, &token, &pesels).await;

    let r = app.get("/api/membership/members", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for listed in r.body.as_array().unwrap() {
        let id = listed["_id"].as_str().unwrap();
        let n = ids.iter().position(|i| i == id).unwrap();
        assert_eq!(listed["pesel"], format!("*******{}", &pesels[n][7..]));
    }
    for pesel in &pesels {
        assert!(!r.text.contains(pesel.as_str()), "a whole PESEL in a list");
    }
    // Exact search by the whole PESEL finds that member alone (by its blind index).
    let r = app
        .get(
            &format!("/api/membership/members?pesel={}", pesels[1]),
            &auth,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let found = r.body.as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", r.text);
    assert_eq!(found[0]["_id"], ids[1].as_str());
    let r = app
        .get("/api/membership/members?pesel=44051401358", &auth)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("pesel"), "{}", r.text);

    // One member read alone: whole, and the trail says who read it, without the PESEL.
    let r = app
        .get(&format!("/api/membership/members/{}", ids[2]), &auth)
        .await;
    assert_eq!(r.body["pesel"], pesels[2].as_str());
    let r = app
        .get(
            "/api/membership/members/export.csv",
            &[("x-access-token", &owner)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains(pesels[0].as_str()),
        "the export holds whole PESELs"
    );
    let r = app
        .get("/api/admin/audit", &[("x-access-token", &owner)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.body.as_array().unwrap();
    let read = events
        .iter()
        .find(|e| e["action"] == "member.pesel_read")
        .unwrap_or_else(|| panic!("no member.pesel_read in {}", r.text));
    assert_eq!(read["target"], ids[2].as_str());
    let export = events
        .iter()
        .find(|e| e["action"] == "member.export")
        .unwrap_or_else(|| panic!("no member.export in {}", r.text));
    assert!(
        export["target"].as_str().unwrap().starts_with("3 "),
        "{export}"
    );
    for pesel in &pesels {
        assert!(
            !r.text.contains(pesel.as_str()),
            "a PESEL in the audit trail"
        );
    }

    // Reads are audited behind their answers, yet each is in the trail as soon as it has been
    // answered: reading the trail waits for the node's queue.
    for round in 1..=20 {
        let r = app
            .get(&format!("/api/membership/members/{}", ids[0]), &auth)
            .await;
        assert_eq!(r.status, 200);
        let r = app
            .get("/api/admin/audit?limit=100", &[("x-access-token", &owner)])
            .await;
        let reads = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "member.pesel_read" && e["target"] == ids[0].as_str())
            .count();
        assert_eq!(reads, round, "read {round} is not in the trail yet");
    }

    // An organization that wants whole PESELs in its lists says so.
    let full = app
        .sibling(|c| c.member_list_pesel = brama::config::MemberListPesel::Full)
        .await;
    let r = full.get("/api/membership/members", &auth).await;
    assert!(r.text.contains(pesels[0].as_str()), "{}", r.text);
}

/// A list remembers the masked PESELs it has shown (`Core::open_masked`); a row changed behind
/// brama's back must still fail to open, not be answered from that memory: neither a value with
/// a byte changed nor another member's valid ciphertext (bound to that member's id) copied in.
async fn a_tampered_pesel_is_an_error_even_in_a_list_read_before(backend: Backend) {
    let app = app!(backend);
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let token = moderator["accessToken"].as_str().unwrap().to_string();
    let auth = [("x-access-token", token.as_str())];
    let pesels = pesels();
    let ids = create_members(&app, &token, &pesels).await;
    let listed = |r: &crate::helpers::Resp| -> Vec<String> {
        r.body
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| m["pesel"].as_str().unwrap().to_string())
            .collect()
    };
    let first = app.get("/api/membership/members", &auth).await;
    assert_eq!(first.status, 200, "{}", first.text);
    // Read again, now from the memory: the same answer.
    let again = app.get("/api/membership/members", &auth).await;
    assert_eq!(listed(&again), listed(&first));
    assert!(listed(&first).iter().all(|p| p.starts_with("*******")));

    let ok = |r: &crate::helpers::Resp| (r.status, r.code().to_string());
    let broken = (500, "internal".to_string());
    // One character of the stored value changed (its last, inside the tag).
    app.execute_sql(
        "UPDATE members SET pesel = substr(pesel, 1, length(pesel) - 1) || \
         CASE WHEN substr(pesel, length(pesel)) = 'A' THEN 'B' ELSE 'A' END WHERE id = $1",
        &[&ids[0]],
    )
    .await;
    let r = app.get("/api/membership/members", &auth).await;
    assert_eq!(ok(&r), broken, "{}", r.text);
    for pesel in &pesels {
        assert!(!r.text.contains(&pesel[7..]), "{}", r.text);
    }
    let r = app
        .get(&format!("/api/membership/members/{}", ids[0]), &auth)
        .await;
    assert_eq!(ok(&r), broken, "{}", r.text);

    // Member 3's own ciphertext moved into member 2's row: valid, but bound to member 3's id.
    // (Moved, not copied: SQLite's table keeps the old unique constraint on the stored value.)
    app.execute_sql("DELETE FROM members WHERE id = $1", &[&ids[0]])
        .await;
    app.execute_sql(
        "UPDATE members SET pesel = pesel || '.' WHERE id = $1",
        &[&ids[2]],
    )
    .await;
    app.execute_sql(
        "UPDATE members SET pesel = (SELECT substr(pesel, 1, length(pesel) - 1) FROM members \
         WHERE id = $1) WHERE id = $2",
        &[&ids[2], &ids[1]],
    )
    .await;
    app.execute_sql("DELETE FROM members WHERE id = $1", &[&ids[2]])
        .await;
    let r = app.get("/api/membership/members", &auth).await;
    assert_eq!(ok(&r), broken, "{}", r.text);

    // Without the tampered row, the list answers again.
    app.execute_sql("DELETE FROM members WHERE id = $1", &[&ids[1]])
        .await;
    let fresh = create_members(&app, &token, &pesels[..1]).await;
    let r = app.get("/api/membership/members", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed(&r), vec![format!("*******{}", &pesels[0][7..])]);
    assert_eq!(r.body[0]["_id"], fresh[0].as_str());
}

/// The sheet's XML file `name` (`xl/worksheets/sheet1.xml`, …) read out of the workbook.
fn part_of(book: &[u8], name: &str) -> String {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(book)).expect("an xlsx is a zip");
    let mut text = String::new();
    zip.by_name(name)
        .unwrap_or_else(|_| panic!("{name} in the workbook"))
        .read_to_string(&mut text)
        .expect("utf-8 xml");
    text
}

/// `export.xlsx`, read back with calamine (another project's reader): the PESEL of someone
/// born in 2002 keeps its leading zero, postcode and phone stay text, nothing is a formula
/// (a street typed as `=1+1` is the text `=1+1`), the headers are Polish, the header row is
/// frozen and carries an autofilter. Admins only, audited as `member.export`.
async fn the_excel_export_keeps_pesels_postcodes_and_phones_as_text(backend: Backend) {
    use calamine::{Data, Reader, Xlsx};

    let app = app!(backend);
    let owner = app.user("owner1").await;
    let owner = owner["accessToken"].as_str().unwrap().to_string();
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let moderator = moderator["accessToken"].as_str().unwrap().to_string();
    let pesels = pesels();
    assert!(pesels[1].starts_with('0'));
    let ids = create_members(&app, &owner, &pesels).await;
    let r = app
        .request(
            "PATCH",
            &format!("/api/membership/members/{}", ids[0]),
            Some(json!({ "ulica": "=1+1", "tel": "+48 600 100 200" })),
            &[("x-access-token", &owner)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = app
        .get(
            "/api/membership/members/export.xlsx",
            &[("x-access-token", &moderator)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.message(), "Require Admin Role!");

    let response = app
        .client
        .get(app.url("/api/membership/members/export.xlsx"))
        .header("x-access-token", &owner)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("members.xlsx")
    );
    let book = response.bytes().await.expect("body").to_vec();

    let mut xlsx: Xlsx<_> =
        Xlsx::new(std::io::Cursor::new(book.clone())).expect("calamine opens it");
    assert_eq!(xlsx.sheet_names(), ["Członkowie"]);
    let cells = xlsx.worksheet_range("Członkowie").expect("the sheet");
    let rows: Vec<&[Data]> = cells.rows().collect();
    let text = |cell: &Data| match cell {
        Data::String(s) => s.clone(),
        other => panic!("a cell that is not text: {other:?}"),
    };
    let header: Vec<String> = rows[0].iter().map(text).collect();
    assert_eq!(
        header,
        [
            "Nazwisko",
            "Imię",
            "PESEL",
            "Wykształcenie",
            "Województwo",
            "Miejscowość",
            "Ulica",
            "Nr domu / lokalu",
            "Kod pocztowy",
            "E-mail",
            "Telefon",
            "Identyfikator"
        ]
    );
    assert_eq!(rows.len(), 4, "a header and three members");
    for (n, row) in rows[1..].iter().enumerate() {
        // Every cell is a text cell, in the order of surnames.
        let row: Vec<String> = row.iter().map(text).collect();
        assert_eq!(row[0], format!("Kowalska{n}"));
        assert_eq!(row[2], pesels[n], "the PESEL whole, as text");
        assert_eq!(row[8], "00-950");
        assert_eq!(row[11], ids[n]);
    }
    assert_eq!(text(&rows[1][6]), "=1+1", "a formula-like street is text");
    assert_eq!(text(&rows[1][10]), "+48 600 100 200");
    assert_eq!(text(&rows[2][10]), "600100200", "a phone stays text");
    let formulas = xlsx.worksheet_formula("Członkowie").expect("formulas");
    assert!(
        formulas.used_cells().all(|(_, _, f)| f.is_empty()),
        "no formula in the workbook"
    );
    // PESEL, postcode and phone columns are formatted as text, so a value typed in later
    // stays text too.
    let styles = xlsx.worksheet_style("Członkowie").expect("styles");
    for col in [2, 8, 10] {
        let style = styles.get((2, col)).expect("a styled cell");
        let format = style.number_format.as_ref().expect("a number format");
        assert_eq!(format.format_code, "@", "column {col}");
    }
    let sheet = part_of(&book, "xl/worksheets/sheet1.xml");
    assert!(
        sheet.contains(r#"state="frozen""#),
        "a frozen header row: {sheet}"
    );
    assert!(sheet.contains(r#"ySplit="1""#), "{sheet}");
    assert!(sheet.contains(r#"<autoFilter ref="A1:L4"/>"#), "{sheet}");

    let r = app
        .get("/api/admin/audit", &[("x-access-token", &owner)])
        .await;
    let export = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "member.export")
        .unwrap_or_else(|| panic!("no member.export in {}", r.text));
    assert_eq!(export["target"], "3 members as xlsx");
    for pesel in &pesels {
        assert!(!r.text.contains(pesel.as_str()), "a PESEL in the audit");
    }
}

/// `brama data-key rotate` (the core's operation, with the wait for other nodes set to zero):
/// cut short after its first batch, as a kill would, it leaves every PESEL readable (under the
/// old key or the new); run again, it goes on, and then drops the old key from the file. A node
/// that still has the old keys in memory reads the new values by reading the file again.
async fn rotating_the_data_key_reencrypts_every_pesel_and_survives_a_kill(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let owner = owner["accessToken"].as_str().unwrap().to_string();
    let auth = [("x-access-token", owner.as_str())];
    let other_node = app.sibling(|_| {}).await;
    let header = "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n";
    let mut file = String::from(header);
    let pesel = |n: u32| {
        Pesel::from_parts(
            1950 + (n % 70) as i32,
            1 + (n % 12) as u8,
            1 + (n % 28) as u8,
            n as u16,
        )
        .unwrap()
        .as_str()
        .to_string()
    };
    for n in 0..1_200u32 {
        file.push_str(&format!(
            "Jan;Nowak{n};Wyższe;{};pomorskie;Gdańsk;Długa;1;80-001;j{n}@example.com;600100200\n",
            pesel(n)
        ));
    }
    let r = app
        .read(
            app.client
                .post(app.url("/api/membership/members/import"))
                .header("x-access-token", &owner)
                .header("content-type", "text/csv")
                .body(file)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key_file = app.dir().join("data.key");
    let old = DataKeys::read(&key_file).unwrap().unwrap();
    let old_key = old.current().to_string();

    // Killed after its first batch of 500.
    let core = app.core.clone();
    let killed = tokio::spawn(async move {
        core.rotate_data_key(std::time::Duration::ZERO, &|done, _| {
            assert!(done < 500, "killed after the first batch");
        })
        .await
    })
    .await;
    assert!(killed.is_err(), "the run was cut short");
    let both = DataKeys::read(&key_file).unwrap().unwrap();
    assert_eq!(
        both.ids().count(),
        2,
        "the new key is added, the old one kept"
    );
    let new_key = both.current().to_string();
    let under = |key: &str| {
        let app = &app;
        let key = key.to_string();
        async move {
            app.query_text(
                "SELECT CAST(COUNT(*) AS TEXT) FROM members WHERE pesel LIKE $1",
                &[&format!("v1.{key}.%")],
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(under(&new_key).await, "500");
    assert_eq!(under(&old_key).await, "700");
    // Every member reads whole meanwhile, on this node and the other.
    let r = other_node
        .get("/api/membership/members?limit=1000&page=1", &auth)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Run again: it goes on, and then the old key goes.
    let rotation = app
        .core
        .rotate_data_key(std::time::Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert!(!rotation.added, "{rotation:?}");
    assert_eq!(rotation.key, new_key);
    assert_eq!(rotation.reencrypted, 700);
    assert_eq!(rotation.retired, vec![old_key.clone()]);
    assert_eq!(under(&new_key).await, "1200");
    let now = DataKeys::read(&key_file).unwrap().unwrap();
    assert_eq!(now.ids().collect::<Vec<_>>(), vec![new_key.as_str()]);
    // The blind index did not change: exact search still finds them.
    let r = other_node
        .get(
            &format!("/api/membership/members?pesel={}", pesel(7)),
            &auth,
        )
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.text);
    let id = r.body[0]["_id"].as_str().unwrap().to_string();
    let r = other_node
        .get(&format!("/api/membership/members/{id}"), &auth)
        .await;
    assert_eq!(r.body["pesel"], pesel(7).as_str(), "{}", r.text);
    // A rotation with nothing left to go on with adds the next key.
    let next = app
        .core
        .rotate_data_key(std::time::Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert!(next.added && next.key != new_key && next.reencrypted == 1200);
}

/// GDPR Art. 15 and 17 for a member: the admin's export answers the member's data and every
/// audit event about it, with who did it; a delete leaves neither its surname nor its PESEL in
/// the database file (after a checkpoint), and the audit trail keeps only its id.
async fn a_member_gets_its_data_and_access_log_and_is_erased_without_a_trace(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let owner = owner["accessToken"].as_str().unwrap().to_string();
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let moderator = moderator["accessToken"].as_str().unwrap().to_string();
    let pesel = pesels()[1].clone();
    let mut body = member(0, &pesel);
    body["nazwisko"] = json!("Zażółćkowska");
    let r = app
        .request(
            "POST",
            "/api/membership/members",
            Some(body),
            &[("x-access-token", &moderator)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["_id"].as_str().unwrap().to_string();
    let path = format!("/api/membership/members/{id}");
    app.get(&path, &[("x-access-token", &moderator)]).await;

    // Moderators may not; admins get the data and the trail.
    let export = format!("{path}/export");
    let r = app.get(&export, &[("x-access-token", &moderator)]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.get(&export, &[("x-access-token", &owner)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["member"]["pesel"], pesel.as_str());
    assert_eq!(r.body["member"]["nazwisko"], "Zażółćkowska");
    let log: Vec<(String, String)> = r.body["accessLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["at"].as_str().unwrap().contains('T'), "{e}");
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        log,
        [
            ("mod1".to_string(), "member_created".to_string()),
            ("mod1".to_string(), "member.pesel_read".to_string())
        ]
    );
    let r = app.get(&export, &[("x-access-token", &owner)]).await;
    let actions: Vec<&str> = r.body["accessLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.last(),
        Some(&"member.rodo_export"),
        "the export itself is audited"
    );
    let r = app
        .get(
            "/api/membership/members/nosuchmember/export",
            &[("x-access-token", &owner)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Erased: nothing of it left in the files, and the trail holds its id alone.
    let r = app
        .request("DELETE", &path, None, &[("x-access-token", &owner)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bytes =
        database_bytes_since(&app.core.config.database_url(), backend, app.dir(), true).await;
    assert_eq!(
        found_in(&bytes, std::slice::from_ref(&pesel)),
        Vec::<String>::new()
    );
    let surname = "Zażółćkowska".as_bytes();
    assert!(
        !bytes.windows(surname.len()).any(|w| w == surname),
        "the surname is still in the database"
    );
    let lowered = "zażółćkowska".as_bytes();
    assert!(!bytes.windows(lowered.len()).any(|w| w == lowered));
    let r = app
        .get("/api/admin/audit", &[("x-access-token", &owner)])
        .await;
    assert!(r.text.contains(&id) && !r.text.contains("Zażółćkowska") && !r.text.contains(&pesel));
}

/// GDPR Art. 15 and 17 for one's own account: `GET /api/auth/me/export` answers the account,
/// its sessions and its audit events; `DELETE /api/auth/me` with the password deletes it and
/// its sessions, except for an organization's last owner (409 `last_owner`).
async fn an_account_exports_its_data_and_deletes_itself_but_not_the_last_owner(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let owner_token = owner["accessToken"].as_str().unwrap().to_string();
    let alice = app.user("alice").await;
    let token = alice["accessToken"].as_str().unwrap().to_string();
    let mut refresh = alice["refreshToken"].as_str().unwrap().to_string();
    let auth = [("x-access-token", token.as_str())];

    let r = app.get("/api/auth/me/export", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["account"]["username"], "alice");
    assert_eq!(
        r.body["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    assert_eq!(r.body["sessions"][0]["current"], true);
    assert_eq!(r.body["secondFactors"], json!([]));
    let actions: Vec<&str> = r.body["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"account_registered"), "{actions:?}");
    assert!(
        !r.text.contains("password_hash") && !r.text.contains("$argon2"),
        "{}",
        r.text
    );

    // Her session's tokens are a chain of three; a second login has one of its own.
    for _ in 0..2 {
        let r = app.refresh(&refresh).await;
        assert_eq!(r.status, 200, "{}", r.text);
        refresh = r.body["refreshToken"].as_str().unwrap().to_string();
    }
    let r = app.login("alice", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tokens = || async {
        app.query_text("SELECT CAST(COUNT(*) AS TEXT) FROM refresh_tokens", &[])
            .await
            .unwrap()
    };
    assert_eq!(
        app.query_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM refresh_tokens t JOIN sessions s \
             ON s.id = t.session_id JOIN accounts a ON a.id = s.account_id \
             WHERE a.username = 'alice'",
            &[]
        )
        .await
        .as_deref(),
        Some("4")
    );
    let before: i64 = tokens().await.parse().unwrap();

    // The password is checked first; without it nothing happens.
    let delete = |body: Value, token: String| {
        let app = &app;
        async move {
            app.request(
                "DELETE",
                "/api/auth/me",
                Some(body),
                &[("x-access-token", &token)],
            )
            .await
        }
    };
    let r = delete(json!({}), token.clone()).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = delete(json!({ "password": "Wrong#pass1" }), token.clone()).await;
    assert_eq!((r.status, r.code()), (401, "wrong_password"), "{}", r.text);
    let r = delete(
        json!({ "password": crate::helpers::PASSWORD }),
        token.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Her sessions' refresh tokens went with them, and no one else's.
    assert_eq!(tokens().await, (before - 4).to_string());
    assert_ne!(
        app.refresh(&refresh).await.status,
        200,
        "its sessions are gone"
    );
    assert_ne!(
        app.login("alice", crate::helpers::PASSWORD).await.status,
        200
    );
    assert_eq!(
        app.query_text("SELECT id FROM accounts WHERE username = 'alice'", &[])
            .await,
        None
    );
    let r = app
        .get("/api/admin/audit", &[("x-access-token", &owner_token)])
        .await;
    let deleted = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "account.deleted");
    assert!(deleted.is_some(), "{}", r.text);

    // The last owner stays until there is another.
    let r = delete(
        json!({ "password": crate::helpers::PASSWORD }),
        owner_token.clone(),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "last_owner"), "{}", r.text);
    app.user_with_role("owner2", Role::Owner).await;
    let r = delete(
        json!({ "password": crate::helpers::PASSWORD }),
        owner_token.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
