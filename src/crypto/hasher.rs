//! argon2id off the async runtime: a fixed set of threads fed through a bounded queue. When the
//! queue is full the caller is told to come back later (503), so a login flood cannot starve the
//! runtime or grow memory without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

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
}

struct Worker {
    argon: Argon2<'static>,
    params: HashParams,
    /// A real hash of a random password, verified against when the account does not exist so
    /// that an unknown user costs the same time as a wrong password.
    dummy: String,
}

impl PasswordHasher {
    /// Starts `workers` threads (0 = one per core) behind a queue of `queue` waiting jobs.
    pub fn start(params: HashParams, workers: usize, queue: usize) -> Result<Self, HashError> {
        let argon = argon(params)?;
        let dummy = hash_with(&argon, crate::crypto::random_token().as_bytes())?;
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
        for n in 0..workers {
            let worker = Worker {
                argon: argon.clone(),
                params,
                dummy: dummy.clone(),
            };
            let rx = Arc::clone(&rx);
            let depth = Arc::clone(&depth);
            std::thread::Builder::new()
                .name(format!("brama-hash-{n}"))
                .spawn(move || worker.run(&rx, &depth))
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(Self { queue: tx, depth })
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
    fn run(self, rx: &Mutex<Receiver<Job>>, depth: &AtomicUsize) {
        lower_priority();
        loop {
            let job = {
                let Ok(guard) = rx.lock() else { return };
                match guard.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
            depth.fetch_sub(1, Ordering::Relaxed);
            let result = match job.work {
                Work::Hash(password) => {
                    hash_with(&self.argon, password.expose_secret().as_bytes()).map(Done::Hashed)
                }
                Work::Verify { password, phc } => self
                    .verify(password.expose_secret(), phc.as_deref())
                    .map(Done::Verified),
            };
            // The caller may have gone away (client disconnected); nothing to do then.
            let _ = job.reply.send(result);
        }
    }

    fn verify(&self, password: &str, phc: Option<&str>) -> Result<Verified, HashError> {
        let Some(phc) = phc else {
            if let Ok(parsed) = PasswordHash::new(&self.dummy) {
                let _ = self.argon.verify_password(password.as_bytes(), &parsed);
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
        // verify_password takes the cost from the stored hash, so old hashes keep verifying.
        let matches = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        let rehash = if matches && !self.is_current(&parsed) {
            Some(hash_with(&self.argon, password.as_bytes())?)
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

fn hash_with(argon: &Argon2<'_>, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

/// Hashes once on the calling thread; for `cargo bench` and CLI tools, never on the runtime.
pub fn hash_blocking(params: HashParams, password: &str) -> Result<String, HashError> {
    hash_with(&argon(params)?, password.as_bytes())
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
