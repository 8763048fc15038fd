//! Log lines on their way to standard error: gathered, so that a line is not a system call of
//! its own (at the default level every request logs one; issue 18), and written by a thread of
//! their own, so that a standard error that stops taking them (a pipe whose reader hangs, a
//! log file on a disk that stalls) never holds up a request.
//!
//! Before, a request's thread wrote the gathered lines itself once 64 KiB had gathered (every
//! few milliseconds on a busy server), and the writing thread wrote while holding the lock
//! every line takes: with standard error blocked, every request stopped at its access line.
//! Now a line is only ever appended under the lock. The writing thread takes what has gathered
//! and writes it with the lock released. What cannot wait (`MAX_BYTES` gathered while standard
//! error takes nothing) is dropped and counted, and the count is written as a warning once
//! standard error takes lines again: access lines are the operator's view of traffic, not the
//! record of what happened to accounts (that is the audit log, in the database).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long an info or debug line may wait before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// This much gathered wakes the writing thread without waiting out the interval.
const WAKE_BYTES: usize = 64 * 1024;
/// At most this much waits for standard error; further lines are dropped and counted. A busy
/// server logs ~15 MB of access lines a second, so this is half a second of them.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// Lines gathered for standard error (or, in tests, another writer).
pub struct LogBuffer {
    gathered: Mutex<Gathered>,
    /// Wakes the writing thread: a warning or an error, or `WAKE_BYTES` gathered.
    wake: Condvar,
    /// Told each time the writing thread has written (`flush` waits on it).
    written: Condvar,
    /// Held while gathered lines are written; taken before the lines are let go of, so that
    /// what was gathered first is written first.
    writing: Mutex<()>,
    /// There is no writing thread (it could not start): each line is written at once by the
    /// thread that logs it.
    direct: AtomicBool,
}

#[derive(Default)]
struct Gathered {
    lines: Vec<u8>,
    /// The buffer the next lines gather in, kept from the last write.
    spare: Vec<u8>,
    /// A warning or an error is waiting: write it without waiting out the interval.
    urgent: bool,
    /// The writing thread was woken and has not taken the lines yet (one wake-up, not one a
    /// line).
    woken: bool,
    /// Lines dropped since the last write because `MAX_BYTES` were waiting.
    dropped: u64,
    /// Bytes ever gathered, and of them written (`flush` waits until the second reaches what
    /// the first was when it was called).
    gathered_total: u64,
    written_total: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogBuffer {
    pub const fn new() -> LogBuffer {
        LogBuffer {
            gathered: Mutex::new(Gathered {
                lines: Vec::new(),
                spare: Vec::new(),
                urgent: false,
                woken: false,
                dropped: 0,
                gathered_total: 0,
                written_total: 0,
            }),
            wake: Condvar::new(),
            written: Condvar::new(),
            writing: Mutex::new(()),
            direct: AtomicBool::new(false),
        }
    }

    /// Each line is written at once from now on (there is no writing thread).
    pub fn write_directly(&self) {
        self.direct.store(true, Ordering::Relaxed);
    }

    fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Takes one whole line; `urgent` (a warning or an error) wakes the writing thread.
    pub fn push(&self, line: &[u8], urgent: bool) {
        if self.is_direct() {
            let mut gathered = lock(&self.gathered);
            gathered.lines.extend_from_slice(line);
            self.write_taken(gathered, &mut std::io::stderr());
            return;
        }
        let mut gathered = lock(&self.gathered);
        if gathered.lines.len() + line.len() > MAX_BYTES {
            gathered.dropped += 1;
            drop(gathered);
            metrics::counter!("brama_log_lines_dropped_total").increment(1);
            return;
        }
        gathered.lines.extend_from_slice(line);
        gathered.gathered_total += line.len() as u64;
        gathered.urgent |= urgent;
        if (urgent || gathered.lines.len() >= WAKE_BYTES) && !gathered.woken {
            gathered.woken = true;
            self.wake.notify_one();
        }
    }

    /// The writing thread's work, for ever: waits until there is something worth writing (a
    /// warning, `WAKE_BYTES`, or lines older than `FLUSH_INTERVAL`) and writes it to `out`.
    pub fn write_for_ever(&self, out: &mut impl Write) -> ! {
        loop {
            let gathered = lock(&self.gathered);
            let (gathered, _) = self
                .wake
                .wait_timeout_while(gathered, FLUSH_INTERVAL, |g| {
                    !g.urgent && g.lines.len() < WAKE_BYTES
                })
                .unwrap_or_else(PoisonError::into_inner);
            self.write_taken(gathered, out);
        }
    }

    /// Has what gathered so far written now (at shutdown), waiting at most `patience` for the
    /// writing thread: a standard error that takes nothing must not keep a stopping server
    /// from exiting (its lines are then lost with it).
    pub fn flush(&self, patience: Duration) {
        let mut gathered = lock(&self.gathered);
        if self.is_direct() {
            self.write_taken(gathered, &mut std::io::stderr());
            return;
        }
        let target = gathered.gathered_total;
        if gathered.written_total >= target {
            return;
        }
        gathered.urgent = true;
        if !gathered.woken {
            gathered.woken = true;
            self.wake.notify_one();
        }
        let _ = self
            .written
            .wait_timeout_while(gathered, patience, |g| g.written_total < target);
    }

    /// Takes the gathered lines out of `gathered` and writes them with the lock let go of.
    fn write_taken(&self, mut gathered: MutexGuard<'_, Gathered>, out: &mut impl Write) {
        gathered.urgent = false;
        gathered.woken = false;
        let dropped = std::mem::take(&mut gathered.dropped);
        if gathered.lines.is_empty() && dropped == 0 {
            return;
        }
        let next = std::mem::take(&mut gathered.spare);
        let mut lines = std::mem::replace(&mut gathered.lines, next);
        let written = lines.len() as u64;
        let writing = lock(&self.writing);
        drop(gathered);
        // Nothing sensible can be done when standard error is gone.
        let _ = out.write_all(&lines);
        if dropped > 0 {
            let _ = out.write_all(super::lines::dropped_notice(dropped).as_bytes());
        }
        drop(writing);
        lines.clear();
        if lines.capacity() > 4 * WAKE_BYTES {
            lines.shrink_to(WAKE_BYTES);
        }
        let mut gathered = lock(&self.gathered);
        gathered.written_total += written;
        if gathered.spare.capacity() == 0 {
            gathered.spare = lines;
        }
        drop(gathered);
        self.written.notify_all();
    }
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    /// A standard error that takes nothing until it is let go, then keeps what it is given.
    struct Stalled {
        go: mpsc::Receiver<()>,
        waiting: bool,
        taken: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.waiting {
                let _ = self.go.recv();
                self.waiting = false;
            }
            lock(&self.taken).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A buffer with its writing thread, writing into a [`Stalled`] standard error (`stalled`:
    /// that takes nothing until the sender is used); what it took.
    fn with_writer(stalled: bool) -> (&'static LogBuffer, mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        let buffer: &'static LogBuffer = Box::leak(Box::new(LogBuffer::new()));
        let (go, wait) = mpsc::channel();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let mut out = Stalled {
            go: wait,
            waiting: stalled,
            taken: Arc::clone(&taken),
        };
        std::thread::spawn(move || buffer.write_for_ever(&mut out));
        (buffer, go, taken)
    }

    /// Runs `f` on a thread of its own and fails if it has not returned within 20 s (a generous
    /// bound on work of microseconds: it fails only if `f` waits for the stalled writer).
    fn returns(f: impl FnOnce() + Send + 'static) {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(20))
            .expect("logging waited for a standard error that took nothing");
    }

    #[test]
    fn lines_are_taken_while_standard_error_takes_nothing_and_what_overflows_is_counted() {
        let (buffer, go, taken) = with_writer(true);
        // A warning wakes the writer, which takes it and then stalls in `write` with it.
        returns(move || buffer.push(b"first warning\n", true));
        // (Without waiting on the lock: a writer that held it while stalled must fail the test,
        // not hang it.)
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while buffer.gathered.try_lock().map_or(true, |g| g.woken) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lines stayed locked while standard error took nothing"
            );
            std::thread::yield_now();
        }
        // Lines keep being taken, each at once, up to MAX_BYTES; the rest are counted.
        let line = [b'x'; 1023];
        let fits = MAX_BYTES / 1024;
        returns(move || {
            for _ in 0..fits + 10 {
                let mut one = line.to_vec();
                one.push(b'\n');
                buffer.push(&one, false);
            }
            buffer.push(b"a warning while stalled\n", true);
        });
        assert_eq!(lock(&buffer.gathered).dropped, 11);
        go.send(()).unwrap();
        // Once standard error takes lines again, all that was kept is written, in order,
        // followed by how many were dropped.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let expected = "first warning\n".len() + fits * 1024;
        loop {
            let written = lock(&taken).clone();
            if written.len() > expected {
                let text = String::from_utf8(written).unwrap();
                assert!(text.starts_with("first warning\nxxx"), "{}", &text[..40]);
                assert_eq!(text.matches('\n').count(), 1 + fits + 1, "lines written");
                let notice = text.lines().last().unwrap();
                assert!(notice.contains("WARN"), "{notice}");
                assert!(notice.contains("dropped=11"), "{notice}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} bytes",
                written.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lines_are_written_in_the_order_they_came() {
        let (buffer, _go, taken) = with_writer(false);
        let mut expected = String::new();
        for i in 0..20_000 {
            let line = format!("line {i}\n");
            buffer.push(line.as_bytes(), i % 1000 == 0);
            expected.push_str(&line);
        }
        // A flush returns once everything gathered before it is written.
        buffer.flush(Duration::from_secs(20));
        assert_eq!(String::from_utf8(lock(&taken).clone()).unwrap(), expected);
    }

    /// A server stopping while standard error takes nothing waits for it only so long.
    #[test]
    fn a_flush_waits_for_a_stalled_standard_error_only_so_long() {
        let (buffer, go, taken) = with_writer(true);
        buffer.push(b"before the stall\n", false);
        returns(move || buffer.flush(Duration::from_millis(50)));
        assert!(lock(&taken).is_empty());
        // Once it takes lines again, a flush sees them written.
        go.send(()).unwrap();
        buffer.push(b"after it\n", false);
        buffer.flush(Duration::from_secs(20));
        assert_eq!(&*lock(&taken), b"before the stall\nafter it\n");
    }
}
