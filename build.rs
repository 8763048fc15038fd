//! The migrations are embedded in the binary by `sqlx::migrate!`: a change to one of them alone
//! must rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
