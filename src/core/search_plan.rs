//! Which trigrams of a member search the index is asked for.
//!
//! Both backends find members by a substring through a trigram index (SQLite's FTS5 trigram
//! table, PostgreSQL's pg_trgm GIN index), and both then check the substring itself on every
//! candidate row. Any set of the query's trigrams therefore gives the same answer; what differs
//! is the cost: reading each trigram's list, then checking each candidate row. Asking for every
//! trigram reads every list, and in a Polish register some are in most rows: `ski` was in
//! 750 000 of a million members, and reading its list was most of a search for `michalski30`
//! (4.3 of 4.8 ms on SQLite; `mic` and `i30` alone: 0.5 ms, the same 515 members). Asking for
//! the rarest trigrams alone is not enough either: trigrams go together (`mic`, `ich`, `cha` and
//! `hal` are in the same 50 000 Michalskis), and candidates are checked row by row.
//!
//! So a search plans as a database planner would, from a sample of the stored search texts:
//! it takes the query's rarest trigram, then, one at a time, the trigram that leaves the fewest
//! sampled rows holding all of those taken, while one still leaves fewer (at most four, none
//! held by more than half the sample).
//!
//! The sample is [`SAMPLE_ROWS`] random rows of every organization ([`SearchSample`]): taken in
//! the background when the server starts (where the default search, by surname, is planned:
//! PostgreSQL), and again, in the background, by the first search that finds it older than
//! [`SAMPLE_TTL`]; by the first planned search and the first after an import, which wait for
//! it. Searches that are not planned (`MemberFilter::wants_trigrams`) take none. Only which sampled rows hold which trigram is kept (as bit sets), never the texts.
//! Stale or odd samples make a search slower, never wrong.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::store::{DynStore, StoreResult};

/// How many stored search texts a sample reads.
pub(crate) const SAMPLE_ROWS: i64 = 1_024;
/// How long a sample is used before the next search takes a new one.
pub(crate) const SAMPLE_TTL: Duration = Duration::from_secs(600);
/// How long after a sample could not be taken the next try waits.
pub(crate) const SAMPLE_RETRY: Duration = Duration::from_secs(10);
/// At most this many trigrams are asked for.
const MAX_TRIGRAMS: usize = 4;

/// Which sampled rows hold each trigram.
#[derive(Debug, Default)]
pub(crate) struct TrigramSample {
    rows: usize,
    holders: HashMap<[char; 3], Vec<u64>>,
    /// When it grows old (`SAMPLE_TTL` after it was taken); `None`: not taken.
    due_at: Option<Instant>,
}

impl TrigramSample {
    /// Notes, for each text, every trigram it holds.
    pub(crate) fn from_texts(texts: &[String]) -> TrigramSample {
        let words = texts.len().div_ceil(64);
        let mut holders: HashMap<[char; 3], Vec<u64>> = HashMap::new();
        for (row, text) in texts.iter().enumerate() {
            let chars: Vec<char> = text.chars().collect();
            for w in chars.windows(3) {
                let t = [w[0], w[1], w[2]];
                if indexable(&t) {
                    holders.entry(t).or_insert_with(|| vec![0; words])[row / 64] |= 1 << (row % 64);
                }
            }
        }
        holders.shrink_to_fit();
        TrigramSample {
            rows: texts.len(),
            holders,
            due_at: Some(Instant::now() + SAMPLE_TTL),
        }
    }

    /// The trigrams of `q` (a search key: lower case, no diacritics) to ask the index for, in
    /// the order taken (see the module). Empty when `q` holds no trigram of ASCII letters and
    /// digits: pg_trgm makes no trigram of one that crosses a space or punctuation (and would
    /// scan its whole index), so such a query is searched as before, by its whole text.
    pub(crate) fn choose(&self, q: &str) -> Vec<String> {
        let chars: Vec<char> = q.chars().collect();
        let mut candidates: Vec<[char; 3]> = Vec::new();
        for w in chars.windows(3) {
            let t = [w[0], w[1], w[2]];
            if indexable(&t) && !candidates.contains(&t) {
                candidates.push(t);
            }
        }
        let words = self.rows.div_ceil(64);
        let none = vec![0u64; words];
        let held = |t: &[char; 3]| self.holders.get(t).unwrap_or(&none);
        let count = |bits: &[u64], t: &[char; 3]| -> u32 {
            bits.iter()
                .zip(held(t))
                .map(|(a, b)| (a & b).count_ones())
                .sum()
        };
        // Every sampled row to begin with (a holder's bits past the last row are never set).
        let all = vec![u64::MAX; words];
        let common = |t: &[char; 3]| count(&all, t) as usize * 2 > self.rows;
        let mut left = all.clone();
        let mut leaving = self.rows as u32;
        let mut chosen: Vec<[char; 3]> = Vec::new();
        while chosen.len() < MAX_TRIGRAMS {
            // Once the sample holds none of the rows left, it cannot tell the trigrams apart
            // by what they leave: one more, the rarest on its own, as a sample of a thousand
            // rows misses a trigram held by a thousand of a million.
            let blind = !chosen.is_empty() && leaving == 0;
            if blind && chosen.len() >= 2 {
                break;
            }
            let within = if blind { &all } else { &left };
            // The candidate leaving the fewest rows; the first in the query among equals.
            let Some((best, after)) = candidates
                .iter()
                .filter(|t| !chosen.contains(t))
                .map(|t| (*t, count(within, t)))
                .min_by_key(|(_, after)| *after)
            else {
                break;
            };
            if !chosen.is_empty() && (common(&best) || (!blind && after >= leaving)) {
                break;
            }
            for (l, h) in left.iter_mut().zip(held(&best)) {
                *l &= h;
            }
            leaving = left.iter().map(|w| w.count_ones()).sum();
            chosen.push(best);
        }
        chosen.into_iter().map(|t| t.iter().collect()).collect()
    }

    /// Whether this sample is missing or older than [`SAMPLE_TTL`].
    pub(crate) fn stale(&self, now: Instant) -> bool {
        self.due_at.is_none_or(|due| now >= due)
    }
}

/// The sample searches are planned from, and the taking of the next.
///
/// A search waits for a sample only when there is none (before the first, or after an import
/// made the last one worthless). One that is merely old is used while its successor is taken
/// in the background: reading a sample of a large register costs a random read for each of a
/// thousand rows on SQLite, and a pass over the narrow search table on PostgreSQL, and on a
/// machine whose page cache had let the file go, the search that took it waited 300 ms for
/// those reads, and the three beside it waited with it (the bench's search p99 is about such
/// stalls: wrk counts each in place of the requests it held up).
#[derive(Default)]
pub(crate) struct SearchSample {
    current: Mutex<TrigramSample>,
    /// Held while a sample is taken, so one is taken at a time.
    taking: Arc<tokio::sync::Mutex<()>>,
    /// Counts `forget`s: a sample read before one is not kept after it.
    generation: AtomicU64,
    /// After a sample could not be taken: when the next search may try again.
    retry_at: Mutex<Option<Instant>>,
}

impl SearchSample {
    fn current(&self) -> MutexGuard<'_, TrigramSample> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn retry_at(&self) -> MutexGuard<'_, Option<Instant>> {
        self.retry_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The trigrams of `q` to ask the index for ([`TrigramSample::choose`]).
    pub(crate) async fn choose(
        self: &Arc<Self>,
        store: &DynStore,
        q: &str,
    ) -> StoreResult<Vec<String>> {
        let now = Instant::now();
        {
            let sample = self.current();
            if sample.due_at.is_some() {
                if sample.stale(now) && self.retry_at().is_none_or(|at| now >= at) {
                    self.take_in_background(store);
                }
                return Ok(sample.choose(q));
            }
        }
        let _taking = self.taking.lock().await;
        let generation = self.generation.load(Ordering::Acquire);
        {
            // Taken while this search waited its turn.
            let sample = self.current();
            if sample.due_at.is_some() {
                return Ok(sample.choose(q));
            }
        }
        let sample = take(store).await?;
        let chosen = sample.choose(q);
        self.keep(sample, generation);
        Ok(chosen)
    }

    /// Takes a new sample on a task of its own, unless one is being taken.
    pub(crate) fn take_in_background(self: &Arc<Self>, store: &DynStore) {
        let Ok(taking) = self.taking.clone().try_lock_owned() else {
            return;
        };
        let (this, store) = (Arc::clone(self), store.clone());
        tokio::spawn(async move {
            let generation = this.generation.load(Ordering::Acquire);
            match take(&store).await {
                Ok(sample) => this.keep(sample, generation),
                // The searches go on with the sample they have, and none tries again for
                // `SAMPLE_RETRY`: a database that fails is not asked again by every search,
                // nor is its failure logged for each.
                Err(e) => {
                    tracing::warn!(error = %e, "taking a sample of the search texts failed");
                    *this.retry_at() = Some(Instant::now() + SAMPLE_RETRY);
                }
            }
            drop(taking);
        });
    }

    /// Drops the sample (after an import changed the register): the next search waits for a
    /// new one, and one being read meanwhile is not kept.
    pub(crate) fn forget(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.current() = TrigramSample::default();
    }

    fn keep(&self, sample: TrigramSample, generation: u64) {
        let mut current = self.current();
        if self.generation.load(Ordering::Acquire) == generation {
            *current = sample;
        }
    }

    #[cfg(test)]
    pub(crate) fn due_at(&self) -> Option<Instant> {
        self.current().due_at
    }

    /// Holds the taking of samples, as a slow read would.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.taking
            .clone()
            .try_lock_owned()
            .expect("no sample being taken")
    }

    /// Makes the sample, and the time to try again, older by `age` (tests move the clock
    /// this way).
    #[cfg(test)]
    pub(crate) fn age_by(&self, age: Duration) {
        let mut current = self.current();
        current.due_at = current.due_at.and_then(|at| at.checked_sub(age));
        let mut retry_at = self.retry_at();
        *retry_at = retry_at.and_then(|at| at.checked_sub(age));
    }

    #[cfg(test)]
    pub(crate) fn retry_due(&self) -> Option<Instant> {
        *self.retry_at()
    }

    /// Waits until no sample is being taken.
    #[cfg(test)]
    pub(crate) async fn idle(&self) {
        drop(self.taking.lock().await);
    }
}

/// Reads a sample of the stored search texts and notes their trigrams.
async fn take(store: &DynStore) -> StoreResult<TrigramSample> {
    let texts = store.sample_search_texts(SAMPLE_ROWS).await?;
    // Only which rows hold which trigram is kept; the texts go here.
    Ok(TrigramSample::from_texts(&texts))
}

/// A trigram both indexes hold as such.
fn indexable(t: &[char; 3]) -> bool {
    t.iter().all(char::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::TrigramSample;

    fn sample() -> TrigramSample {
        // `ski` in 76 of 100 rows, `mic` in 6, `i30` in 2.
        let mut texts: Vec<String> = (0..70).map(|n| format!("kowalski{n}")).collect();
        texts.extend((0..5).map(|n| format!("michalski{}", n + 40)));
        texts.push("michalski30".into());
        texts.extend((0..24).map(|n| format!("nowak{n}")));
        TrigramSample::from_texts(&texts)
    }

    #[test]
    fn the_trigrams_that_leave_the_fewest_rows_are_chosen() {
        let counts = sample();
        // `i30` is in 2 rows (kowalski30, michalski30); `mic` leaves one of them; no other
        // trigram leaves fewer. `ski` (76 rows) is never read.
        assert_eq!(counts.choose("michalski30"), ["i30", "mic"]);
        // Trigrams that go together count once: `mic`, `ich`, `cha`, `hal` are in the same 6
        // rows, and `ki3` (12 rows) is what narrows them to michalski30.
        assert_eq!(counts.choose("michalski3"), ["mic", "ki3"]);
    }

    #[test]
    fn the_rarest_is_kept_even_when_common() {
        let counts = sample();
        assert_eq!(counts.choose("ski"), ["ski"]);
        // `kow` (70 rows) is the rarest of "kowalski"; the rest are as common or more.
        assert_eq!(counts.choose("kowalski"), ["kow"]);
        // Not in the sample at all: the sample cannot tell what else narrows it, so one more,
        // the rarest on its own, but never a common one.
        assert_eq!(counts.choose("xskiy"), ["xsk", "kiy"]);
    }

    #[test]
    fn only_trigrams_of_ascii_letters_and_digits() {
        let counts = sample();
        assert_eq!(counts.choose("jan kowal"), ["jan"]);
        assert_eq!(counts.choose("a kowal"), ["kow"]);
        assert!(counts.choose("a b").is_empty());
        assert!(counts.choose("ab").is_empty());
        assert!(counts.choose("жук").is_empty());
        // A repeated trigram is asked for once.
        assert_eq!(counts.choose("aaaa"), ["aaa"]);
    }

    /// A sample read before an import is not kept after it: the next search takes one of
    /// the register as it is now.
    #[test]
    fn a_sample_read_before_it_was_forgotten_is_dropped() {
        let searches = super::SearchSample::default();
        let before = searches
            .generation
            .load(std::sync::atomic::Ordering::Acquire);
        searches.forget();
        searches.keep(sample(), before);
        assert_eq!(searches.due_at(), None);
        let now = searches
            .generation
            .load(std::sync::atomic::Ordering::Acquire);
        searches.keep(sample(), now);
        assert!(searches.due_at().is_some());
    }

    #[test]
    fn an_empty_sample_asks_for_the_first_trigrams() {
        let counts = TrigramSample::from_texts(&[]);
        assert_eq!(counts.choose("abcdefg"), ["abc", "bcd"]);
        assert!(TrigramSample::default().stale(std::time::Instant::now()));
        assert!(!counts.stale(std::time::Instant::now()));
    }
}
