//! The core's rules, run against the real SQLite store in a scratch database kept in memory
//! (`/dev/shm` where the system has it): no HTTP, a few milliseconds a test. The pure verdicts
//! (refusals, limits, the role table) have their own tests beside them; these check that each
//! operation applies them and writes all of its effects or none.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use secrecy::SecretString;

use crate::config::Config;
use crate::core::accounts::{Credentials, PasswordChange, PasswordReset, Registration};
use crate::core::actor::{DeleteMembers, ManageAccounts, ManageMembers};
use crate::core::admin::AccountChange;
use crate::core::company::{Activation, CompanySignup};
use crate::core::{Actor, Caller, Client, Core, CoreError, DEFAULT_ORGANIZATION};
use crate::domain::{
    AccountEmail, AccountStatus, CompanyEmail, FieldInput, MemberForm, MemberPatch, MemberText,
    NewMember, OrganizationStatus, Password, PasswordPolicy, Phone, Problem, RevokeReason, Role,
    Username,
};
use crate::store::LinkKind;

const PASSWORD: &str = "Zx8!quokka";
const NEW_PASSWORD: &str = "Qv7#otter9";

/// A core on a fresh database, and the directory that holds it (removed on drop).
struct Scratch {
    core: Arc<Core>,
    dir: std::path::PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Arc<Core>;
    fn deref(&self) -> &Arc<Core> {
        &self.core
    }
}

async fn scratch(tweak: impl FnOnce(&mut Config)) -> Scratch {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("brama-core-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mut config = Config {
        data_dir: dir.clone(),
        database_url: Some(format!("sqlite://{}", dir.join("brama.db").display())),
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        failed_logins_per_account: 1000,
        failed_logins_per_ip: 1000,
        registrations_per_ip_per_hour: 1000,
        ..Config::default()
    };
    tweak(&mut config);
    let store = crate::app::open_store(&config).await.expect("store opens");
    let core = Core::build(config, store).await.expect("core builds");
    Scratch { core, dir }
}

fn client() -> Client {
    Client {
        ip: Some([192, 0, 2, 1].into()),
        user_agent: Some("core tests".into()),
    }
}

fn registration(name: &str) -> Registration {
    Registration {
        username: Username::parse(name).expect("username"),
        email: AccountEmail::parse(&format!("{name}@example.com")).expect("email"),
        password: Password::parse(PASSWORD, PasswordPolicy::Seed).expect("password"),
    }
}

fn credentials(name: &str, password: &str) -> Credentials {
    Credentials {
        login: name.into(),
        password: SecretString::from(password),
    }
}

async fn logged_in(core: &Core, name: &str) -> (Caller, crate::core::sessions::IssuedSession) {
    let (account, issued) = core
        .login(credentials(name, PASSWORD), &client())
        .await
        .expect("login")
        .session()
        .expect("no second factor");
    let caller = Caller {
        account_id: account.id,
        organization_id: account.organization_id,
        session_id: issued.session_id.clone(),
        role: account.role,
        enrolment_only: false,
        with_passkey: false,
    };
    (caller, issued)
}

fn actor(caller: &Caller) -> Actor {
    Actor::account(caller, &client())
}

/// Why a session ended; `None` while it has not.
async fn revoke_reason(core: &Core, session_id: &str) -> Option<RevokeReason> {
    let session = core.store.session(session_id).await.unwrap();
    session.expect("the session exists").revoke_reason
}

/// Runs `work` but drops it at its `cut`-th suspension (the point where a client that hangs up
/// would drop a request's future): `None` if it was cut, its output if it finished first.
async fn cut_at<F: Future>(work: F, cut: usize) -> Option<F::Output> {
    let mut work = pin!(work);
    let mut suspended = 0;
    std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending if suspended == cut => Poll::Ready(None),
        Poll::Pending => {
            suspended += 1;
            Poll::Pending
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_account_of_the_default_organization_is_its_owner() {
    let core = scratch(|_| {}).await;
    let first = core
        .register(registration("first"), &client(), false)
        .await
        .unwrap()
        .0;
    let second = core
        .register(registration("second"), &client(), false)
        .await
        .unwrap()
        .0;
    assert_eq!((first.role, second.role), (Role::Owner, Role::User));
    assert_eq!(first.status, AccountStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_ends_with_the_first_account_however_it_is_made() {
    let off = scratch(|c| c.bootstrap_first_user = false).await;
    let first = off
        .register(registration("first"), &client(), false)
        .await
        .unwrap()
        .0;
    assert_eq!(first.role, Role::User);

    let cli_first = scratch(|_| {}).await;
    let admin = cli_first
        .create_account(registration("operator"), Role::Admin)
        .await
        .unwrap();
    let next = cli_first
        .register(registration("next"), &client(), false)
        .await
        .unwrap()
        .0;
    assert_eq!((admin.role, next.role), (Role::Admin, Role::User));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_registrations_make_exactly_one_owner() {
    let core = scratch(|_| {}).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let core = Arc::clone(&core);
        tasks.push(tokio::spawn(async move {
            core.register(registration(&format!("racer{n}")), &client(), false)
                .await
                .unwrap()
                .0
                .role
        }));
    }
    let mut owners = 0;
    for t in tasks {
        owners += usize::from(t.await.unwrap() == Role::Owner);
    }
    assert_eq!(owners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_that_fails_gives_the_bootstrap_back() {
    let core = scratch(|_| {}).await;
    // The first registration of the default organization claims the owner's place, then
    // fails on its email (a company's owner has it): the claim goes back with the rest.
    company_signup(&core, "owner@firma.pl", "+48600100200").await;
    let mut clash = registration("first");
    clash.email = AccountEmail::parse("owner@firma.pl").unwrap();
    assert!(matches!(
        core.register(clash, &client(), false).await,
        Err(CoreError::EmailTaken)
    ));
    let next = core
        .register(registration("second"), &client(), false)
        .await
        .unwrap()
        .0;
    assert_eq!(next.role, Role::Owner);
}

async fn company_signup(core: &Arc<Core>, email: &str, phone: &str) -> crate::store::AccountRecord {
    core.signup(
        CompanySignup {
            email: CompanyEmail::parse(email).unwrap(),
            phone: Phone::parse(phone).unwrap(),
            state: 1,
        },
        crate::i18n::Lang::En,
        &client(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_keeps_at_most_max_sessions_and_ends_the_oldest() {
    let core = scratch(|c| c.max_sessions_per_account = 2).await;
    core.register(registration("alice"), &client(), false)
        .await
        .unwrap();
    let (_, first) = logged_in(&core, "alice").await;
    let (_, second) = logged_in(&core, "alice").await;
    let (caller, third) = logged_in(&core, "alice").await;
    let live: Vec<String> = core
        .sessions(&caller)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, [third.session_id.clone(), second.session_id.clone()]);
    assert_eq!(
        revoke_reason(&core, &first.session_id).await,
        Some(RevokeReason::SessionLimit)
    );
    assert!(matches!(
        core.refresh(&first.refresh_token, &client()).await,
        Err(CoreError::RefreshUnknown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_ends_its_session() {
    let core = scratch(|_| {}).await;
    core.register(registration("alice"), &client(), false)
        .await
        .unwrap();
    let (_, issued) = logged_in(&core, "alice").await;
    let next = core
        .refresh(&issued.refresh_token, &client())
        .await
        .unwrap();
    assert_eq!(next.session_id, issued.session_id);
    assert!(matches!(
        core.refresh(&issued.refresh_token, &client()).await,
        Err(CoreError::RefreshReused)
    ));
    assert_eq!(
        revoke_reason(&core, &issued.session_id).await,
        Some(RevokeReason::RefreshTokenReused)
    );
    // The successor went with its session.
    assert!(matches!(
        core.refresh(&next.refresh_token, &client()).await,
        Err(CoreError::RefreshUnknown)
    ));
    let trail = core
        .store
        .audit_events(DEFAULT_ORGANIZATION, &Default::default(), 10)
        .await
        .unwrap();
    assert_eq!(trail[0].action, "refresh_token_reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_within_the_grace_is_refused_without_ending_the_session() {
    let core = scratch(|c| c.refresh_reuse_grace = 60).await;
    core.register(registration("alice"), &client(), false)
        .await
        .unwrap();
    let (_, issued) = logged_in(&core, "alice").await;
    let next = core
        .refresh(&issued.refresh_token, &client())
        .await
        .unwrap();
    assert!(matches!(
        core.refresh(&issued.refresh_token, &client()).await,
        Err(CoreError::RefreshRotated)
    ));
    assert!(core.refresh(&next.refresh_token, &client()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_cannot_refresh_and_its_sessions_end() {
    let core = scratch(|_| {}).await;
    core.register(registration("owner"), &client(), false)
        .await
        .unwrap();
    core.register(registration("bob"), &client(), false)
        .await
        .unwrap();
    let (owner, _) = logged_in(&core, "owner").await;
    let (bob, issued) = logged_in(&core, "bob").await;
    let granted = actor(&owner).grant::<ManageAccounts>().unwrap();
    let disable = AccountChange {
        role: None,
        status: Some(AccountStatus::Disabled),
    };
    let changed = core
        .change_account(&granted, &bob.account_id, disable)
        .await
        .unwrap();
    assert_eq!(changed.status, AccountStatus::Disabled);
    assert!(core.sessions(&bob).await.unwrap().is_empty());
    assert!(matches!(
        core.refresh(&issued.refresh_token, &client()).await,
        Err(CoreError::RefreshUnknown)
    ));
    assert!(matches!(core.me(&bob).await, Err(CoreError::TokenInvalid)));
    assert!(matches!(
        core.login(credentials("bob", PASSWORD), &client()).await,
        Err(CoreError::InvalidCredentials)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_follow_the_rules_and_demotions_end_sessions() {
    let core = scratch(|_| {}).await;
    core.register(registration("owner"), &client(), false)
        .await
        .unwrap();
    core.create_account(registration("admin"), Role::Admin)
        .await
        .unwrap();
    core.create_account(registration("peer"), Role::Admin)
        .await
        .unwrap();
    core.create_account(registration("mod"), Role::Moderator)
        .await
        .unwrap();
    let (owner, _) = logged_in(&core, "owner").await;
    let (admin, _) = logged_in(&core, "admin").await;
    let (peer, _) = logged_in(&core, "peer").await;
    let (moderator, _) = logged_in(&core, "mod").await;
    let as_admin = actor(&admin).grant::<ManageAccounts>().unwrap();
    let role = |r| AccountChange {
        role: Some(r),
        status: None,
    };
    assert!(matches!(
        core.change_account(&as_admin, &admin.account_id, role(Role::User))
            .await,
        Err(CoreError::CannotChangeSelf)
    ));
    assert!(matches!(
        core.change_account(&as_admin, &peer.account_id, role(Role::User))
            .await,
        Err(CoreError::Forbidden {
            required: Role::Owner
        })
    ));
    assert!(matches!(
        core.change_account(&as_admin, &moderator.account_id, role(Role::Admin))
            .await,
        Err(CoreError::Forbidden {
            required: Role::Owner
        })
    ));
    let pending = AccountChange {
        role: None,
        status: Some(AccountStatus::PendingActivation),
    };
    assert!(matches!(
        core.change_account(&as_admin, &moderator.account_id, pending)
            .await,
        Err(CoreError::Validation(_))
    ));
    // A promotion keeps the sessions; a demotion ends them.
    let as_owner = actor(&owner).grant::<ManageAccounts>().unwrap();
    core.change_account(&as_owner, &moderator.account_id, role(Role::Admin))
        .await
        .unwrap();
    assert_eq!(core.sessions(&moderator).await.unwrap().len(), 1);
    core.change_account(&as_owner, &peer.account_id, role(Role::User))
        .await
        .unwrap();
    assert!(core.sessions(&peer).await.unwrap().is_empty());
    // Another organization's account is not found.
    let company = company_signup(&core, "owner@firma.pl", "+48600100200").await;
    assert!(matches!(
        core.change_account(&as_owner, &company.id, role(Role::User))
            .await,
        Err(CoreError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_other_sessions_only() {
    let core = scratch(|c| c.max_sessions_per_account = 5).await;
    core.register(registration("alice"), &client(), false)
        .await
        .unwrap();
    let (_, other) = logged_in(&core, "alice").await;
    let (caller, current) = logged_in(&core, "alice").await;
    let change = |current: &str| PasswordChange {
        current: SecretString::from(current),
        new: Password::parse(NEW_PASSWORD, PasswordPolicy::Seed).unwrap(),
    };
    assert!(matches!(
        core.change_password(&caller, change("Wrong#pass1"), &client())
            .await,
        Err(CoreError::WrongPassword)
    ));
    core.change_password(&caller, change(PASSWORD), &client())
        .await
        .unwrap();
    let live: Vec<String> = core
        .sessions(&caller)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, [current.session_id]);
    assert!(
        core.store
            .session(&other.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        core.login(credentials("alice", NEW_PASSWORD), &client())
            .await
            .is_ok()
    );
}

/// What a password reset touches, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct ResetState {
    token_used: bool,
    password_hash: Option<String>,
    live_sessions: usize,
    audited: usize,
}

async fn reset_state(core: &Core, account_id: &str, token: &str) -> ResetState {
    let mut tx = core.store.begin().await.unwrap();
    let link = tx
        .link_token(LinkKind::PasswordReset, &crate::crypto::token_hash(token))
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    let account = core.store.account(account_id).await.unwrap().unwrap();
    let live = core
        .store
        .live_sessions(account_id, crate::core::now_ms())
        .await
        .unwrap();
    let audited = core
        .store
        .audit_events(DEFAULT_ORGANIZATION, &Default::default(), 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "password_reset")
        .count();
    ResetState {
        token_used: link.used_at.is_some(),
        password_hash: account.password_hash,
        live_sessions: live.len(),
        audited,
    }
}

async fn reset_token(core: &Core, account_id: &str) -> String {
    let token = crate::crypto::random_token();
    let now = crate::core::now_ms();
    let mut tx = core.store.begin().await.unwrap();
    tx.insert_link_token(
        LinkKind::PasswordReset,
        account_id,
        &crate::crypto::token_hash(&token),
        now,
        now + 60_000,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    token
}

/// The test: a reset whose client hangs up at any point leaves either nothing or
/// everything done (the token spent, the password set, every session ended, the event in the
/// trail), never a part of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_cut_short_at_any_point_is_all_or_nothing() {
    let core = scratch(|c| c.max_sessions_per_account = 10).await;
    let account = core
        .register(registration("alice"), &client(), false)
        .await
        .unwrap()
        .0;
    let mut finished = false;
    let (mut cut_before, mut completed) = (0, 0);
    // The password is the new one once a reset went through, cut or not.
    let mut changed = false;
    // A reset that met no suspension at all (every step answered before it was awaited, as a
    // loaded machine can do) finishes at the first cut: it is tried again, a few times.
    let mut unsuspended = 0;
    for cut in 0..200 {
        // Sessions to end, and a fresh link, for every attempt.
        for _ in 0..2 {
            let password = if !changed { PASSWORD } else { NEW_PASSWORD };
            core.login(credentials("alice", password), &client())
                .await
                .unwrap();
        }
        let token = reset_token(&core, &account.id).await;
        let before = reset_state(&core, &account.id, &token).await;
        assert!(before.live_sessions >= 2 && !before.token_used);
        let reset = PasswordReset {
            token: SecretString::from(token.clone()),
            password: Password::parse(NEW_PASSWORD, PasswordPolicy::Seed).unwrap(),
        };
        let outcome = cut_at(core.reset_password(reset, &client()), cut).await;
        let after = reset_state(&core, &account.id, &token).await;
        let all_done = after.token_used
            && after.password_hash != before.password_hash
            && after.live_sessions == 0
            && after.audited == before.audited + 1;
        changed |= all_done;
        match outcome {
            Some(result) => {
                result.unwrap();
                assert!(
                    all_done,
                    "finished at {cut}, yet {after:?} after {before:?}"
                );
                if cut_before == 0 && completed == 0 && unsuspended < 5 {
                    unsuspended += 1;
                    continue;
                }
                finished = true;
                break;
            }
            None if all_done => completed += 1,
            None => {
                assert_eq!(
                    after, before,
                    "cut at suspension {cut}: a part of the reset stayed"
                );
                cut_before += 1;
            }
        }
    }
    assert!(finished, "the reset never finished within 200 suspensions");
    assert!(cut_before > 0, "no cut fell inside the reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_link_works_once_and_ends_every_session() {
    let core = scratch(|_| {}).await;
    let account = core
        .register(registration("alice"), &client(), false)
        .await
        .unwrap()
        .0;
    let (caller, _) = logged_in(&core, "alice").await;
    let token = reset_token(&core, &account.id).await;
    let reset = || PasswordReset {
        token: SecretString::from(token.clone()),
        password: Password::parse(NEW_PASSWORD, PasswordPolicy::Seed).unwrap(),
    };
    core.reset_password(reset(), &client()).await.unwrap();
    assert!(core.sessions(&caller).await.unwrap().is_empty());
    assert!(matches!(
        core.reset_password(reset(), &client()).await,
        Err(CoreError::ResetTokenInvalid)
    ));
    assert!(
        core.login(credentials("alice", NEW_PASSWORD), &client())
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_opens_the_account_and_its_organization_once() {
    let core = scratch(|_| {}).await;
    let pending = company_signup(&core, "owner@firma.pl", "+48600100200").await;
    assert_eq!(
        (pending.role, pending.status),
        (Role::Owner, AccountStatus::PendingActivation)
    );
    // The link goes out after the answer.
    let mut body = String::new();
    for _ in 0..200 {
        if let Some(email) = core.outbox().await.unwrap().pop() {
            body = email.body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let token: String = body
        .split("#token=")
        .nth(1)
        .expect("a link")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let activation = || Activation {
        token: SecretString::from(token.clone()),
        password: Password::parse(PASSWORD, PasswordPolicy::Seed).unwrap(),
        name: MemberText::parse("Jan").unwrap(),
        surname: None,
    };
    let (account, issued) = core.activate(activation(), &client()).await.unwrap();
    assert_eq!(account.status, AccountStatus::Active);
    assert_eq!(account.name, "Jan");
    assert!(!issued.refresh_token.is_empty());
    let mut tx = core.store.begin().await.unwrap();
    let org = tx
        .account(&account.id)
        .await
        .unwrap()
        .unwrap()
        .organization_id;
    drop(tx);
    let accounts = core.store.accounts(&org).await.unwrap();
    assert_eq!(accounts.len(), 1);
    let status: String = sqlx_scalar(
        &core,
        "SELECT status FROM organizations WHERE id = $1",
        &org,
    )
    .await;
    assert_eq!(status, OrganizationStatus::Active.as_str());
    assert!(matches!(
        core.activate(activation(), &client()).await,
        Err(CoreError::ActivationTokenInvalid)
    ));
}

/// One text value read straight from the scratch database.
async fn sqlx_scalar(core: &Scratch, sql: &str, bind: &str) -> String {
    let url = format!("sqlite://{}", core.dir.join("brama.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn execute(core: &Scratch, sql: &str, binds: &[&str]) {
    let url = format!("sqlite://{}", core.dir.join("brama.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(*b);
    }
    query.execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_role_in_the_database_is_an_error_not_a_user() {
    let core = scratch(|_| {}).await;
    let account = core
        .register(registration("alice"), &client(), false)
        .await
        .unwrap()
        .0;
    execute(
        &core,
        "UPDATE accounts SET role = 'superuser' WHERE id = $1",
        &[&account.id],
    )
    .await;
    match core.store.account(&account.id).await {
        Err(crate::store::StoreError::Database(e)) => {
            assert!(e.to_string().contains("unknown Role"), "{e}")
        }
        other => panic!("an unknown role must not be read: {other:?}"),
    }
    assert!(matches!(
        core.login(credentials("alice", PASSWORD), &client()).await,
        Err(CoreError::Internal(_))
    ));
}

fn member_form(pesel: &str) -> MemberForm {
    let t = |s: &str| Some(FieldInput::Text(s.into()));
    MemberForm {
        imie: t("Anna"),
        nazwisko: t("Nowak"),
        wyksztalcenie: t("wyższe"),
        pesel: t(pesel),
        wojewodztwo: t("mazowieckie"),
        miejscowosc: t("Warszawa"),
        ulica: t("Prosta"),
        nrdomulokalu: t("1"),
        kodpocztowy: t("00-950"),
        email: t("anna@example.com"),
        tel: t("600-100-200"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_versioned_unique_by_pesel_and_scoped() {
    let core = scratch(|_| {}).await;
    core.register(registration("owner"), &client(), false)
        .await
        .unwrap();
    let (owner, _) = logged_in(&core, "owner").await;
    let granted = actor(&owner).grant::<ManageMembers>().unwrap();
    let member = core
        .create_member(
            &granted,
            NewMember::parse(member_form("44051401359")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (member.version, member.wojewodztwo.as_str()),
        (0, "Mazowieckie")
    );
    assert_eq!(member.search, "anna nowak warszawa anna@example.com");
    match core
        .create_member(
            &granted,
            NewMember::parse(member_form("44051401359")).unwrap(),
        )
        .await
    {
        Err(CoreError::Validation(errors)) => {
            assert_eq!(
                (errors[0].field, errors[0].problem),
                ("pesel", Problem::Taken)
            )
        }
        other => panic!("a second PESEL: {other:?}"),
    }
    let patch = |street: &str| MemberPatch {
        ulica: Some(MemberText::parse(street).unwrap()),
        ..MemberPatch::default()
    };
    let changed = core
        .update_member(&granted, &member.id, patch("Nowa"), Some(0))
        .await
        .unwrap();
    assert_eq!(
        (
            changed.version,
            changed.ulica.as_str(),
            changed.imie.as_str()
        ),
        (1, "Nowa", "Anna")
    );
    assert!(matches!(
        core.update_member(&granted, &member.id, patch("Stara"), Some(0))
            .await,
        Err(CoreError::VersionConflict { current: 1 })
    ));
    // Another organization's owner sees none of it.
    let company = company_signup(&core, "owner@firma.pl", "+48600100200").await;
    let stranger = Actor {
        organization_id: company.organization_id,
        account_id: Some(company.id),
        role: Role::Owner,
        ip: None,
    };
    let theirs = stranger.clone().grant::<ManageMembers>().unwrap();
    assert!(matches!(
        core.member(&theirs, &member.id).await,
        Err(CoreError::MemberNotFound)
    ));
    let delete = stranger.grant::<DeleteMembers>().unwrap();
    assert!(matches!(
        core.delete_member(&delete, &member.id).await,
        Err(CoreError::MemberNotFound)
    ));
    let ours = actor(&owner).grant::<DeleteMembers>().unwrap();
    core.delete_member(&ours, &member.id).await.unwrap();
    assert!(matches!(
        core.member(&granted, &member.id).await,
        Err(CoreError::MemberNotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_and_its_audit_event_commit_together() {
    let core = scratch(|_| {}).await;
    core.register(registration("owner"), &client(), false)
        .await
        .unwrap();
    let (owner, _) = logged_in(&core, "owner").await;
    let granted = actor(&owner).grant::<ManageMembers>().unwrap();
    // The audit insert fails (as a full disk would): the member must not be stored either.
    execute(
        &core,
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
         WHEN new.action = 'member_created' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        &[],
    )
    .await;
    let created = core
        .create_member(
            &granted,
            NewMember::parse(member_form("44051401359")).unwrap(),
        )
        .await;
    assert!(
        matches!(created, Err(CoreError::Internal(_))),
        "{created:?}"
    );
    let listing = crate::core::members::MemberListing::default();
    let page = core.list_members(&granted, listing).await.unwrap();
    assert_eq!(page.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_ends_the_sessions_that_ran_out() {
    let core = scratch(|c| c.max_sessions_per_account = 5).await;
    core.register(registration("alice"), &client(), false)
        .await
        .unwrap();
    let (_, old) = logged_in(&core, "alice").await;
    execute(
        &core,
        "UPDATE sessions SET expires_at = 1 WHERE id = $1",
        &[&old.session_id],
    )
    .await;
    assert!(matches!(
        core.refresh(&old.refresh_token, &client()).await,
        Err(CoreError::RefreshExpired)
    ));
    // The next login ends it: its token is then unknown, as after a logout.
    logged_in(&core, "alice").await;
    assert_eq!(
        revoke_reason(&core, &old.session_id).await,
        Some(RevokeReason::SessionLimit)
    );
    assert!(matches!(
        core.refresh(&old.refresh_token, &client()).await,
        Err(CoreError::RefreshUnknown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_account_fails_only_its_own_refresh() {
    let core = scratch(|_| {}).await;
    let mut tokens = Vec::new();
    for n in 0..8 {
        let name = format!("user{n}");
        core.register(registration(&name), &client(), false)
            .await
            .unwrap();
        tokens.push(logged_in(&core, &name).await.1.refresh_token);
    }
    let broken = core.store.account_by_login("user3").await.unwrap().unwrap();
    execute(
        &core,
        "UPDATE accounts SET role = 'superuser' WHERE id = $1",
        &[&broken.id],
    )
    .await;
    // All at once, so that they share the writer's batches.
    let refreshes: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (core, t) = (Arc::clone(&core), t.clone());
            tokio::spawn(async move { core.refresh(&t, &client()).await })
        })
        .collect();
    for (n, refresh) in refreshes.into_iter().enumerate() {
        let result = refresh.await.unwrap();
        if n == 3 {
            assert!(matches!(result, Err(CoreError::Internal(_))), "{result:?}");
        } else {
            assert!(result.is_ok(), "user{n}: {result:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_in_the_browser_logs_in_at_once() {
    let core = scratch(|_| {}).await;
    let (account, issued) = core
        .register(registration("alice"), &client(), true)
        .await
        .unwrap();
    let issued = issued.expect("a session");
    let live = core
        .store
        .live_sessions(&account.id, crate::core::now_ms())
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, issued.session_id);
    assert!(core.refresh(&issued.refresh_token, &client()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_works_through_a_backlog_batch_by_batch() {
    let core = scratch(|_| {}).await;
    for name in ["alice", "bob"] {
        core.register(registration(name), &client(), false)
            .await
            .unwrap();
    }
    let (_, ended) = logged_in(&core, "alice").await;
    let (_, live) = logged_in(&core, "bob").await;
    // An upgrade's backlog: a long session of 1 234 rotations that ended long ago, and as many
    // old audit events; both more than two batches. The session's tokens are one chain, its
    // login's token first, and only that one is indexed by its session (migration 0024): each
    // batch cut short must leave the rest of the chain findable.
    let backlog = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234) ";
    execute(
        &core,
        &format!(
            "{backlog}INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, \
             used_at, replaced_by) SELECT 'old' || i, $1, 1000, 2000, 1500, \
             CASE WHEN i < 1234 THEN 'old' || (i + 1) END FROM n"
        ),
        &[&ended.session_id],
    )
    .await;
    execute(
        &core,
        "UPDATE refresh_tokens SET replaces = 'old' || (CAST(substr(token_hash, 4) AS INTEGER) - 1) \
         WHERE token_hash LIKE 'old%' AND token_hash <> 'old1'",
        &[],
    )
    .await;
    execute(
        &core,
        "UPDATE refresh_tokens SET replaces = (SELECT token_hash FROM refresh_tokens \
         WHERE session_id = $1 AND token_hash NOT LIKE 'old%') WHERE token_hash = 'old1'",
        &[&ended.session_id],
    )
    .await;
    execute(
        &core,
        "UPDATE refresh_tokens SET used_at = 1500, replaced_by = 'old1' \
         WHERE session_id = $1 AND token_hash NOT LIKE 'old%'",
        &[&ended.session_id],
    )
    .await;
    assert_eq!(
        sqlx_scalar(
            &core,
            "SELECT COUNT(*) || '' FROM refresh_tokens WHERE replaces IS NULL AND session_id = $1",
            &ended.session_id
        )
        .await,
        "1",
        "one chain"
    );
    execute(
        &core,
        "UPDATE sessions SET revoked_at = 3000 WHERE id = $1",
        &[&ended.session_id],
    )
    .await;
    execute(
        &core,
        &format!(
            "{backlog}INSERT INTO audit_events (id, action, created_at) \
             SELECT 'old' || i, 'account.login', 1000 FROM n"
        ),
        &[],
    )
    .await;
    let recent: i64 = sqlx_scalar(
        &core,
        "SELECT (COUNT(*) - $1) || '' FROM audit_events",
        "1234",
    )
    .await
    .parse()
    .unwrap();
    assert!(recent > 0);

    let tidied = core.tidy(crate::core::now_ms()).await.unwrap();
    assert_eq!(tidied.refresh_tokens, 1235, "{tidied:?}");
    assert_eq!(tidied.sessions, 1, "{tidied:?}");
    assert_eq!(tidied.audit_events, 1234, "{tidied:?}");
    assert!(
        core.store
            .session(&ended.session_id)
            .await
            .unwrap()
            .is_none()
    );
    let left = sqlx_scalar(
        &core,
        "SELECT COUNT(*) || '' FROM audit_events WHERE $1",
        "1",
    )
    .await;
    assert_eq!(left, recent.to_string());
    // Bob's session is whole.
    assert!(core.refresh(&live.refresh_token, &client()).await.is_ok());
}

/// A scratch core whose owner has put one member, Anna Nowak, in the register.
async fn with_one_member() -> (Scratch, Caller) {
    let core = scratch(|_| {}).await;
    core.register(registration("owner"), &client(), false)
        .await
        .unwrap();
    let (owner, _) = logged_in(&core, "owner").await;
    let granted = actor(&owner).grant::<ManageMembers>().unwrap();
    core.create_member(
        &granted,
        NewMember::parse(member_form("44051401359")).unwrap(),
    )
    .await
    .unwrap();
    (core, owner)
}

/// A search waits for the sample it is planned from only when there is none; an old one is
/// used while its successor is taken in the background (`search_plan::SearchSample`). The
/// test holds the sampling itself, as a slow database would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_waits_for_a_sample_only_when_there_is_none() {
    use crate::core::members::MemberListing;
    use crate::domain::SearchText;
    use crate::store::MemberSort;
    use std::time::Duration;
    let (core, owner) = with_one_member().await;
    let granted = actor(&owner).grant::<ManageMembers>().unwrap();
    let search = |core: Arc<Core>, actor: Actor| async move {
        // Sorted by first name: SQLite plans it (its search by surname asks for the phrase).
        let listing = MemberListing {
            q: Some(SearchText::parse("nowak").unwrap()),
            sort: MemberSort::Imie,
            ..MemberListing::default()
        };
        let granted = actor.grant::<ManageMembers>().unwrap();
        core.list_members(&granted, listing).await.unwrap().total
    };
    let sample = Arc::clone(&core.search_sample);
    // SQLite's search by surname (the page's default) is not planned: it takes no sample.
    let by_surname = MemberListing {
        q: Some(SearchText::parse("nowak").unwrap()),
        ..MemberListing::default()
    };
    assert_eq!(
        core.list_members(&granted, by_surname).await.unwrap().total,
        1
    );
    assert_eq!(sample.due_at(), None);

    // None yet: the search waits while a sample is being taken, and finds it after.
    let held = sample.hold();
    let waiting = tokio::spawn(search(Arc::clone(&core), actor(&owner)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "searched without a sample");
    drop(held);
    assert_eq!(waiting.await.unwrap(), 1);
    let first = sample.due_at().expect("the waiting search took one");

    // Old: used as it is while another is being taken; the search does not wait for it.
    sample.age_by(crate::core::search_plan::SAMPLE_TTL);
    let aged = sample.due_at();
    let held = sample.hold();
    let searched = tokio::time::timeout(
        Duration::from_secs(10),
        search(Arc::clone(&core), actor(&owner)),
    )
    .await;
    assert_eq!(searched.ok(), Some(1), "an old sample held the search up");
    assert_eq!(sample.due_at(), aged);
    drop(held);
    // The next search finds it old and takes a new one in the background.
    assert_eq!(search(Arc::clone(&core), actor(&owner)).await, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sample.due_at() == aged {
        assert!(std::time::Instant::now() < deadline, "no new sample");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sample.due_at() >= Some(first));

    // After an import: none again, so the next search waits for one.
    core.forget_search_sample();
    assert_eq!(sample.due_at(), None);
    let held = sample.hold();
    let waiting = tokio::spawn(search(Arc::clone(&core), actor(&owner)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "searched without a sample after an import"
    );
    drop(held);
    assert_eq!(waiting.await.unwrap(), 1);
    assert!(sample.due_at().is_some());
}

/// A sample that could not be taken is tried again `SAMPLE_RETRY` later, not by every search
/// meanwhile; searches go on with the sample they have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sample_is_tried_again_later_not_by_every_search() {
    use crate::core::search_plan::{SAMPLE_RETRY, SAMPLE_TTL};
    let (core, _) = with_one_member().await;
    let sample = Arc::clone(&core.search_sample);
    // What a search does to plan (the search itself reads the column this test takes away).
    let search = || async { sample.choose(&core.store, "nowak").await.unwrap() };
    assert_eq!(search().await, ["now"]);
    let taken = sample.due_at();
    assert!(taken.is_some());
    // The sample reads the stored search texts, which a search sorted by surname does not.
    execute(
        &core,
        "ALTER TABLE members RENAME COLUMN search TO search_gone",
        &[],
    )
    .await;
    sample.age_by(SAMPLE_TTL);
    let aged = sample.due_at();
    assert_eq!(search().await, ["now"]);
    sample.idle().await;
    let retry = sample
        .retry_due()
        .expect("the failed sample set a time to try again");
    for _ in 0..5 {
        assert_eq!(search().await, ["now"]);
    }
    sample.idle().await;
    assert_eq!(
        sample.retry_due(),
        Some(retry),
        "a search tried again before its time"
    );
    assert_eq!(sample.due_at(), aged);
    // Once that time has come, the next search tries again, and this time it works.
    execute(
        &core,
        "ALTER TABLE members RENAME COLUMN search_gone TO search",
        &[],
    )
    .await;
    sample.age_by(SAMPLE_RETRY);
    assert_eq!(search().await, ["now"]);
    sample.idle().await;
    assert!(sample.due_at() > aged, "no new sample");
}
