//! argon2id off the async runtime: a fixed set of threads fed through a bounded queue. When the
//! queue is full the caller is told to come back later (503), so a login flood cannot starve the
//! runtime or grow memory without bound.
//!
//! Each thread keeps the argon2 memory of its last job (`argon2_memory_kib`, 19 MiB by default)
//! for the next one, so a burst of logins pays for it once, and gives it back to the system
//! once it has had nothing to do for [`RELEASE_AFTER`]: an idle server does not hold a block
//! per thread for ever (issue 18). Hashes and verifications go through
//! `hash_password_into_with_memory`, the argon2 crate's own entry point for caller-provided
//! memory; the comparison with a stored hash is constant-time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// How long a hashing thread keeps its argon2 memory with no job to use it on.
pub const RELEASE_AFTER: Duration = Duration::from_secs(2);

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every thread is busy and the queue is full.
    #[error("password hashing queue is full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// What a verification found. `rehash` carries a new hash when the stored one used other
/// parameters than the configured ones, so the core can store it.
#[derive(Debug)]
pub struct Verified {
    pub matches: bool,
    pub rehash: Option<String>,
}

enum Work {
    Hash(SecretString),
    Verify {
        password: SecretString,
        phc: Option<String>,
    },
}

enum Done {
    Hashed(String),
    Verified(Verified),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, HashError>>,
}

/// Handle to the hashing threads; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    queue: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    /// Bytes of argon2 memory the threads hold between jobs.
    held: Arc<AtomicUsize>,
}

struct Worker {
    argon: Argon2<'static>,
    params: HashParams,
    /// The argon2 memory, kept between the jobs of a burst.
    memory: Memory,
    release_after: Duration,
    /// A real hash of a random password, verified against when the account does not exist so
    /// that an unknown user costs the same time as a wrong password.
    dummy: String,
}

impl PasswordHasher {
    /// Starts `workers` threads (0 = one per core) behind a queue of `queue` waiting jobs.
    pub fn start(params: HashParams, workers: usize, queue: usize) -> Result<Self, HashError> {
        Self::start_releasing_after(params, workers, queue, RELEASE_AFTER)
    }

    /// [`start`](Self::start), with the threads giving their memory back after `release_after`
    /// idle (the tests' short wait).
    pub fn start_releasing_after(
        params: HashParams,
        workers: usize,
        queue: usize,
        release_after: Duration,
    ) -> Result<Self, HashError> {
        let argon = argon(params)?;
        let dummy = hash_with(
            &argon,
            crate::crypto::random_token().as_bytes(),
            &mut Memory::default(),
        )?;
        let workers = if workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            workers
        };
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let depth = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        for n in 0..workers {
            let worker = Worker {
                argon: argon.clone(),
                params,
                memory: Memory::held_in(Arc::clone(&held)),
                release_after,
                dummy: dummy.clone(),
            };
            let rx = Arc::clone(&rx);
            let depth = Arc::clone(&depth);
            std::thread::Builder::new()
                .name(format!("brama-hash-{n}"))
                .spawn(move || worker.run(&rx, &depth))
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(Self {
            queue: tx,
            depth,
            held,
        })
    }

    /// Bytes of argon2 memory the hashing threads hold now: one job's worth per thread that
    /// hashed within [`RELEASE_AFTER`], none once they have idled.
    pub fn held_memory(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a thread (the `/metrics` hash queue depth).
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        match self
            .submit(Work::Hash(SecretString::from(password)))
            .await?
        {
            Done::Hashed(h) => Ok(h),
            Done::Verified(_) => Err(HashError::Failed("unexpected reply".into())),
        }
    }

    /// Verifies `password` against `phc`; with `None` verifies against a dummy hash and reports
    /// no match, taking the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<Verified, HashError> {
        let work = Work::Verify {
            password: SecretString::from(password),
            phc: phc.map(str::to_owned),
        };
        match self.submit(work).await? {
            Done::Verified(v) => Ok(v),
            Done::Hashed(_) => Err(HashError::Failed("unexpected reply".into())),
        }
    }

    async fn submit(&self, work: Work) -> Result<Done, HashError> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Job { work, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(HashError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(HashError::Failed("hashing threads stopped".into()));
            }
        }
        answer
            .await
            .map_err(|_| HashError::Failed("hashing thread dropped the job".into()))?
    }
}

impl Worker {
    fn run(mut self, rx: &Mutex<Receiver<Job>>, depth: &AtomicUsize) {
        lower_priority();
        loop {
            let job = {
                let Ok(guard) = rx.lock() else { return };
                if self.memory.is_held() {
                    match guard.recv_timeout(self.release_after) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            drop(guard);
                            self.memory.release();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    match guard.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
            };
            depth.fetch_sub(1, Ordering::Relaxed);
            let result = match job.work {
                Work::Hash(password) => hash_with(
                    &self.argon,
                    password.expose_secret().as_bytes(),
                    &mut self.memory,
                )
                .map(Done::Hashed),
                Work::Verify { password, phc } => self
                    .verify(password.expose_secret(), phc.as_deref())
                    .map(Done::Verified),
            };
            // The caller may have gone away (client disconnected); nothing to do then.
            let _ = job.reply.send(result);
        }
    }

    fn verify(&mut self, password: &str, phc: Option<&str>) -> Result<Verified, HashError> {
        let Some(phc) = phc else {
            if let Ok(parsed) = PasswordHash::new(&self.dummy) {
                let _ = verify_with(password.as_bytes(), &parsed, &mut self.memory);
            }
            return Ok(Verified {
                matches: false,
                rehash: None,
            });
        };
        let parsed = match PasswordHash::new(phc) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "stored password hash does not parse");
                return Ok(Verified {
                    matches: false,
                    rehash: None,
                });
            }
        };
        // The cost comes from the stored hash, so old hashes keep verifying.
        let matches = verify_with(password.as_bytes(), &parsed, &mut self.memory);
        let rehash = if matches && !self.is_current(&parsed) {
            Some(hash_with(
                &self.argon,
                password.as_bytes(),
                &mut self.memory,
            )?)
        } else {
            None
        };
        Ok(Verified { matches, rehash })
    }

    fn is_current(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm != Algorithm::Argon2id.ident() {
            return false;
        }
        match Params::try_from(parsed) {
            Ok(p) => {
                p.m_cost() == self.params.memory_kib
                    && p.t_cost() == self.params.iterations
                    && p.p_cost() == self.params.parallelism
            }
            Err(_) => false,
        }
    }
}

/// Hashing is long, CPU-bound work; at nice 10 it yields the core to request handling, so a
/// login flood does not stretch the latency of everything else. Idle cores still hash at full
/// speed. On Linux the nice value is per thread.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; a failure only leaves the priority.
        let tid = unsafe { libc::gettid() };
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) };
    }
}

fn argon(params: HashParams) -> Result<Argon2<'static>, HashError> {
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// A hashing thread's argon2 memory: grown to what a job needs, kept for the next job, and
/// released when the thread idles. Blocks need no clearing between jobs: argon2 writes every
/// block before it reads it.
#[derive(Default)]
struct Memory {
    blocks: Vec<Block>,
    /// Where the bytes held are counted (the hasher's `held_memory`).
    held: Option<Arc<AtomicUsize>>,
}

impl Memory {
    fn held_in(held: Arc<AtomicUsize>) -> Self {
        Memory {
            blocks: Vec::new(),
            held: Some(held),
        }
    }

    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.blocks.len() < count {
            // Let go of the old blocks before taking more, not after.
            self.release();
            self.blocks = vec![Block::default(); count];
            self.count(|held, bytes| held.fetch_add(bytes, Ordering::Relaxed));
        }
        &mut self.blocks[..count]
    }

    fn is_held(&self) -> bool {
        !self.blocks.is_empty()
    }

    /// Gives the blocks back to the allocator, which returns blocks this large to the system
    /// (`crate::app::return_large_allocations`).
    fn release(&mut self) {
        self.count(|held, bytes| held.fetch_sub(bytes, Ordering::Relaxed));
        self.blocks = Vec::new();
    }

    fn count(&self, change: impl Fn(&AtomicUsize, usize) -> usize) {
        if let Some(held) = &self.held {
            change(held, std::mem::size_of_val(self.blocks.as_slice()));
        }
    }
}

fn hash_with(
    argon: &Argon2<'_>,
    password: &[u8],
    memory: &mut Memory,
) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let params = argon.params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon
        .hash_password_into_with_memory(password, salt_bytes, &mut out, memory.blocks(params))
        .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params
            .try_into()
            .map_err(|e: argon2::password_hash::Error| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` gives `stored`, with the algorithm, version and costs `stored` names. The
/// outputs are compared in constant time.
fn verify_with(password: &[u8], stored: &PasswordHash<'_>, memory: &mut Memory) -> bool {
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if argon
        .hash_password_into_with_memory(password, salt_bytes, out, memory.blocks(&params))
        .is_err()
    {
        return false;
    }
    bool::from(out.ct_eq(expected.as_bytes()))
}

/// Hashes once on the calling thread; for `cargo bench` and CLI tools, never on the runtime.
pub fn hash_blocking(params: HashParams, password: &str) -> Result<String, HashError> {
    hash_with(&argon(params)?, password.as_bytes(), &mut Memory::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::start(SMALL, 1, 4).unwrap();
        let h = hasher.hash("Secret#123").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hasher.verify("Secret#123", Some(&h)).await.unwrap().matches);
        assert!(!hasher.verify("secret#123", Some(&h)).await.unwrap().matches);
        assert!(!hasher.verify("Secret#123", None).await.unwrap().matches);
        assert!(
            !hasher
                .verify("Secret#123", Some("garbage"))
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn old_parameters_are_rehashed_on_verify() {
        let old = hash_blocking(
            HashParams {
                memory_kib: 32,
                ..SMALL
            },
            "Secret#123",
        )
        .unwrap();
        let hasher = PasswordHasher::start(SMALL, 1, 4).unwrap();
        let v = hasher.verify("Secret#123", Some(&old)).await.unwrap();
        assert!(v.matches);
        let new = v.rehash.expect("a new hash");
        assert!(new.contains("m=64,t=1,p=1"));
        let again = hasher.verify("Secret#123", Some(&new)).await.unwrap();
        assert!(again.matches && again.rehash.is_none());
    }

    /// Hashes are standard PHC strings: the argon2 crate's own verifier accepts brama's, and
    /// brama accepts the crate's (hashes stored before brama managed the memory itself).
    #[tokio::test]
    async fn hashes_are_interchangeable_with_the_argon2_crates() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::start(SMALL, 1, 4).unwrap();
        let ours = hasher.hash("Secret#123").await.unwrap();
        let crate_argon = argon(SMALL).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(crate_argon.verify_password(b"Secret#123", &parsed).is_ok());
        assert!(crate_argon.verify_password(b"Secret#124", &parsed).is_err());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = crate_argon
            .hash_password(b"Secret#123", &salt)
            .unwrap()
            .to_string();
        let v = hasher.verify("Secret#123", Some(&theirs)).await.unwrap();
        assert!(v.matches && v.rehash.is_none());
        assert!(
            !hasher
                .verify("Secret#12", Some(&theirs))
                .await
                .unwrap()
                .matches
        );
        // Another version or algorithm named by the stored hash is honoured too.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let old = argon2i
            .hash_password(b"Secret#123", &salt)
            .unwrap()
            .to_string();
        let v = hasher.verify("Secret#123", Some(&old)).await.unwrap();
        assert!(v.matches, "{old}");
        assert!(v.rehash.is_some_and(|h| h.starts_with("$argon2id$v=19$")));
    }

    /// A thread keeps its argon2 memory while jobs come, and gives it back once it idles.
    #[tokio::test]
    async fn memory_is_given_back_after_idling() {
        let hasher =
            PasswordHasher::start_releasing_after(SMALL, 1, 4, Duration::from_millis(50)).unwrap();
        assert_eq!(hasher.held_memory(), 0, "nothing before the first job");
        hasher.hash("Secret#123").await.unwrap();
        // The reply is sent after the job, with the memory still held (it is released only
        // after 50 ms without a job); a generous deadline for its release.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while hasher.held_memory() != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "still holding {} bytes",
                hasher.held_memory()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A hasher that waits longer holds its memory between jobs.
        let keeping =
            PasswordHasher::start_releasing_after(SMALL, 1, 4, Duration::from_secs(3600)).unwrap();
        keeping.hash("Secret#123").await.unwrap();
        assert_eq!(keeping.held_memory(), 64 * 1024);
        assert!(
            keeping
                .verify(
                    "Secret#123",
                    Some(&keeping.hash("Secret#123").await.unwrap())
                )
                .await
                .unwrap()
                .matches
        );
        assert_eq!(keeping.held_memory(), 64 * 1024, "reused, not grown");
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        // One slow worker and a queue of one: of many simultaneous jobs, some must be refused.
        let slow = HashParams {
            memory_kib: 8192,
            iterations: 3,
            parallelism: 1,
        };
        let hasher = PasswordHasher::start(slow, 1, 1).unwrap();
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash("Secret#123").await })
            })
            .collect();
        let mut busy = 0;
        for j in jobs {
            if matches!(j.await.unwrap(), Err(HashError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "expected at least one Busy");
        assert_eq!(hasher.queue_depth(), 0);
    }
}
