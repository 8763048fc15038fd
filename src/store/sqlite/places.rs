//! Members' places (SQLite, migration 0021): numbers that follow each organization's surname
//! order, so that the trigram index, keyed by place, gives a search's hits already in that
//! order and counts them without reading a member row.
//!
//! An organization's places lie strictly between `base << PLACE_BITS` and
//! `(base + 1) << PLACE_BITS` (its row of `member_ranges`), with gaps. A member added, or
//! moved by a new surname, takes the middle of the gap between its neighbours in
//! `(nazwisko_sort, id)` order; when that gap is used up, a neighbourhood around it (growing
//! fourfold until its places are sparse enough) is spread evenly again. A large batch, or an
//! import, numbers the whole organization afresh in one statement. This is the classic
//! order-maintenance list: with 2^40 places an organization and a million members, a gap starts
//! at about a million, so twenty inserts at one spot go by before the first spreading.
//!
//! Invariant: every committed member has a place. Writers place what they wrote in their own
//! transaction; rows older than the migration are placed at start-up, before the server listens
//! (`place_unplaced`).

use std::collections::BTreeMap;

use super::SqliteTx;
use crate::store::{MemberRecord, StoreResult};

/// An organization's range holds 2^40 places: 2^23 organizations fit in SQLite's row ids.
pub(crate) const PLACE_BITS: u32 = 40;

/// A batch of more unplaced members than this, and more than an eighth of the organization,
/// is placed by numbering the whole organization afresh; smaller ones one by one.
const PLACE_ONE_BY_ONE: usize = 64;

/// A spread neighbourhood must leave at least this gap between places, or it grows (unless it
/// already is the whole organization, when any gap of 1 will do).
const SPREAD_GAP: i64 = 1 << 10;

/// The exclusive bounds of the places of the organization with this base.
pub(crate) fn range_of(base: i64) -> (i64, i64) {
    (base << PLACE_BITS, (base + 1) << PLACE_BITS)
}

/// SQL that holds when `column` lies in the range of places of the organization whose id is
/// the parameter `organization` (never, before its range is made).
pub(crate) fn in_range_sql(column: &str, organization: &str) -> String {
    format!(
        "{column} > (SELECT base << {PLACE_BITS} FROM member_ranges WHERE organization_id = {organization}) \
         AND {column} < (SELECT (base + 1) << {PLACE_BITS} FROM member_ranges WHERE organization_id = {organization})"
    )
}

/// The place between two exclusive bounds, if there is one.
pub(crate) fn between(low: i64, high: i64) -> Option<i64> {
    (high - low >= 2).then(|| low + (high - low) / 2)
}

/// `count` places spread evenly strictly between two exclusive bounds, each `gap` apart.
pub(crate) fn spread(low: i64, high: i64, count: i64) -> (i64, i64) {
    let gap = (high - low) / (count + 1);
    (low + gap, gap)
}

impl SqliteTx {
    /// The organization's range of places, made at its first placement.
    pub(super) async fn place_range(&mut self, organization_id: &str) -> StoreResult<(i64, i64)> {
        let base: Option<i64> =
            sqlx::query_scalar("SELECT base FROM member_ranges WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        let base = match base {
            Some(base) => base,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO member_ranges (organization_id, base) \
                     SELECT $1, COALESCE(MAX(base), 0) + 1 FROM member_ranges RETURNING base",
                )
                .bind(organization_id)
                .fetch_one(&mut *self.tx)
                .await?
            }
        };
        Ok(range_of(base))
    }

    /// Gives each member of the organization without a place one.
    pub(crate) async fn place_members(&mut self, organization_id: &str) -> StoreResult<()> {
        let unplaced: Vec<(i64, Option<String>, String)> = sqlx::query_as(
            "SELECT rowid, nazwisko_sort, id FROM members WHERE organization_id = $1 AND place IS NULL \
             ORDER BY nazwisko_sort, id",
        )
        .bind(organization_id)
        .fetch_all(&mut *self.tx)
        .await?;
        if unplaced.is_empty() {
            return Ok(());
        }
        let range = self.place_range(organization_id).await?;
        let members: i64 =
            sqlx::query_scalar("SELECT member_count FROM organizations WHERE id = $1")
                .bind(organization_id)
                .fetch_one(&mut *self.tx)
                .await?;
        if unplaced.len() > PLACE_ONE_BY_ONE && unplaced.len() as i64 * 8 > members {
            return self.number_afresh(organization_id, range).await;
        }
        for (rowid, key, id) in unplaced {
            self.place_one(
                organization_id,
                range,
                rowid,
                key.as_deref().unwrap_or(""),
                &id,
            )
            .await?;
        }
        Ok(())
    }

    /// Places every unplaced member, organization by organization; how many there were.
    pub(crate) async fn place_unplaced(&mut self) -> StoreResult<u64> {
        let organizations: Vec<(String, i64)> = sqlx::query_as(
            "SELECT organization_id, COUNT(*) FROM members WHERE place IS NULL GROUP BY organization_id",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut placed = 0;
        for (organization_id, count) in organizations {
            self.place_members(&organization_id).await?;
            placed += count as u64;
        }
        Ok(placed)
    }

    /// Numbers all the organization's members afresh, evenly over its range, in surname order.
    /// Used for batches and imports, and where a neighbourhood cannot be spread.
    pub(crate) async fn number_afresh(
        &mut self,
        organization_id: &str,
        (low, high): (i64, i64),
    ) -> StoreResult<()> {
        // Places are unique: clear them first, so that no new place meets an old one.
        sqlx::query(
            "UPDATE members SET place = NULL WHERE organization_id = $1 AND place IS NOT NULL",
        )
        .bind(organization_id)
        .execute(&mut *self.tx)
        .await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_one(&mut *self.tx)
                .await?;
        if count as usize >= super::SqliteStore::BULK_INSERT {
            // As for an import (`bulk_prepare`): the indexes being filled stay in the cache.
            self.grow_cache().await?;
        }
        let (_, gap) = spread(low, high, count);
        sqlx::query(
            "UPDATE members SET place = $2 + r.n * $3 FROM (\
               SELECT rowid AS member, row_number() OVER (ORDER BY nazwisko_sort, id) AS n \
               FROM members WHERE organization_id = $1\
             ) AS r WHERE members.rowid = r.member",
        )
        .bind(organization_id)
        .bind(low)
        .bind(gap)
        .execute(&mut *self.tx)
        .await?;
        self.bulk_inserted += count as usize;
        Ok(())
    }

    /// Numbers afresh, before a large import inserts them, each organization of these new
    /// members: the place of each new member (in the import's order) and the ranges numbered.
    /// The members already there are moved to their new places here, and their entries in the
    /// trigram index cleared. The caller has dropped the indexes and the triggers of the trigram
    /// index; `bulk_finish` fills it for the ranges.
    pub(super) async fn number_with(
        &mut self,
        members: &[MemberRecord],
    ) -> StoreResult<(Vec<i64>, Vec<(i64, i64)>)> {
        let mut places = vec![0i64; members.len()];
        let mut by_organization: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            by_organization
                .entry(&m.organization_id)
                .or_default()
                .push(i);
        }
        let key = |i: usize| (members[i].nazwisko_sort.as_deref(), members[i].id.as_str());
        let mut ranges = Vec::new();
        for (organization_id, mut new) in by_organization {
            let range = self.place_range(organization_id).await?;
            // SQLite's order: NULL first, then text byte by byte, as Rust orders these.
            let stored: Vec<(i64, Option<String>, String)> = sqlx::query_as(
                "SELECT rowid, nazwisko_sort, id FROM members WHERE organization_id = $1 \
                 ORDER BY nazwisko_sort, id",
            )
            .bind(organization_id)
            .fetch_all(&mut *self.tx)
            .await?;
            new.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
            let (first, gap) = spread(range.0, range.1, (stored.len() + new.len()) as i64);
            let mut moved = Vec::with_capacity(stored.len());
            let (mut old, mut added) = (stored.iter().peekable(), new.into_iter().peekable());
            for n in 0.. {
                let place = first + n * gap;
                let stored_first = match (old.peek(), added.peek()) {
                    (Some((_, sort, id)), Some(&i)) => (sort.as_deref(), id.as_str()) < key(i),
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                if stored_first {
                    let (rowid, _, _) = old.next().expect("peeked");
                    moved.push((*rowid, place));
                } else {
                    places[added.next().expect("peeked")] = place;
                }
            }
            if !moved.is_empty() {
                sqlx::query("DELETE FROM member_places WHERE rowid > $1 AND rowid < $2")
                    .bind(range.0)
                    .bind(range.1)
                    .execute(&mut *self.tx)
                    .await?;
                for chunk in moved.chunks(400) {
                    let values = (0..chunk.len())
                        .map(|k| format!("(${}, ${})", 2 * k + 1, 2 * k + 2))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "UPDATE members SET place = v.column2 FROM (VALUES {values}) AS v \
                         WHERE members.rowid = v.column1"
                    );
                    let mut update = sqlx::query(&sql);
                    for (rowid, place) in chunk {
                        update = update.bind(rowid).bind(place);
                    }
                    update.execute(&mut *self.tx).await?;
                }
            }
            ranges.push(range);
        }
        Ok((places, ranges))
    }

    /// One member into the gap between its neighbours, or its neighbourhood spread out.
    async fn place_one(
        &mut self,
        organization_id: &str,
        (low, high): (i64, i64),
        rowid: i64,
        key: &str,
        id: &str,
    ) -> StoreResult<()> {
        // The neighbours through the surname index; rows of this batch not yet placed are
        // passed over.
        let before: Option<i64> = sqlx::query_scalar(
            "SELECT place FROM members WHERE organization_id = $1 AND (nazwisko_sort, id) < ($2, $3) \
             AND place IS NOT NULL ORDER BY nazwisko_sort DESC, id DESC LIMIT 1",
        )
        .bind(organization_id)
        .bind(key)
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let after: Option<i64> = sqlx::query_scalar(
            "SELECT place FROM members WHERE organization_id = $1 AND (nazwisko_sort, id) > ($2, $3) \
             AND place IS NOT NULL ORDER BY nazwisko_sort, id LIMIT 1",
        )
        .bind(organization_id)
        .bind(key)
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let (before, after) = (before.unwrap_or(low), after.unwrap_or(high));
        if let Some(place) = between(before, after) {
            return self.set_place(rowid, place).await;
        }
        // No gap: spread the `reach` placed members on each side and this one over the
        // places between the next members out (or the range's ends).
        let mut reach = 4i64;
        loop {
            let outer_low: Option<i64> = sqlx::query_scalar(
                "SELECT place FROM members WHERE place > $1 AND place <= $2 ORDER BY place DESC \
                 LIMIT 1 OFFSET $3",
            )
            .bind(low)
            .bind(before)
            .bind(reach)
            .fetch_optional(&mut *self.tx)
            .await?;
            let outer_high: Option<i64> = sqlx::query_scalar(
                "SELECT place FROM members WHERE place >= $1 AND place < $2 ORDER BY place LIMIT 1 OFFSET $3",
            )
            .bind(after)
            .bind(high)
            .bind(reach)
            .fetch_optional(&mut *self.tx)
            .await?;
            let whole = outer_low.is_none() && outer_high.is_none();
            let (outer_low, outer_high) = (outer_low.unwrap_or(low), outer_high.unwrap_or(high));
            let inside: Vec<i64> = sqlx::query_scalar(
                "SELECT rowid FROM members WHERE place > $1 AND place < $2 ORDER BY place",
            )
            .bind(outer_low)
            .bind(outer_high)
            .fetch_all(&mut *self.tx)
            .await?;
            let count = inside.len() as i64 + 1;
            let (first, gap) = spread(outer_low, outer_high, count);
            if gap >= SPREAD_GAP || (whole && gap >= 1) {
                // This member's spot among them: after every one placed at or before `before`.
                let spot: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM members WHERE place > $1 AND place <= $2",
                )
                .bind(outer_low)
                .bind(before)
                .fetch_one(&mut *self.tx)
                .await?;
                let mut order = inside;
                order.insert(spot as usize, rowid);
                sqlx::query("UPDATE members SET place = NULL WHERE place > $1 AND place < $2")
                    .bind(outer_low)
                    .bind(outer_high)
                    .execute(&mut *self.tx)
                    .await?;
                for (n, member) in order.into_iter().enumerate() {
                    self.set_place(member, first + n as i64 * gap).await?;
                }
                return Ok(());
            }
            if whole {
                // 2^40 places taken: not reachable by any register, but never a wrong order.
                return self.number_afresh(organization_id, (low, high)).await;
            }
            reach *= 4;
        }
    }

    async fn set_place(&mut self, rowid: i64, place: i64) -> StoreResult<()> {
        sqlx::query("UPDATE members SET place = $2 WHERE rowid = $1")
            .bind(rowid)
            .bind(place)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_fall_strictly_inside_their_bounds() {
        let (low, high) = range_of(3);
        assert_eq!(low, 3 << 40);
        assert_eq!(high - low, 1 << 40);
        assert_eq!(between(10, 12), Some(11));
        assert_eq!(between(10, 11), None);
        assert_eq!(between(10, 10), None);
        // A million members over a range: each gap about a million places.
        let (first, gap) = spread(low, high, 1_000_000);
        assert_eq!(first, low + gap);
        assert_eq!(gap, (1 << 40) / 1_000_001);
        assert!(first + 999_999 * gap < high);
        // As many as fit: gaps of one, the last still below the bound.
        let (first, gap) = spread(0, 11, 10);
        assert_eq!((first, gap), (1, 1));
        assert!(first + 9 * gap < 11);
    }
}
