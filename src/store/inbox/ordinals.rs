//! Inbox ordinals: each inbox item's place among its stream's items, handed out in the
//! transaction that commits it from the stream's total in `inbox_totals`.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::event::Target;
use crate::store::StoreError;
use crate::store::entities::inbox_total::{Column, Entity as InboxTotals};

/// Rows per upsert of the totals (well under every engine's bound-parameter limit).
const TOTALS_CHUNK: usize = 1_000;

/// Hands out the inbox ordinals of the inbox items among `events` (in seq order), their
/// streams' totals moved on in the same transaction: returns one per event, `None` for
/// events that are not inbox items.
pub(crate) async fn assign_ordinals(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    events: &[(&Target, bool)],
) -> Result<Vec<Option<i64>>, StoreError> {
    let added = inbox_counts(events);
    if added.is_empty() {
        return Ok(vec![None; events.len()]);
    }
    let counts: HashMap<(&str, &str), i64> = added.iter().copied().collect();
    // Per stream, the ordinal its next item here gets.
    let mut next: HashMap<(String, String), i64> = HashMap::new();
    let key = [Column::TenantId, Column::TargetKind, Column::Target];
    for chunk in added.chunks(TOTALS_CHUNK) {
        let mut upsert = Query::insert();
        upsert
            .into_table(InboxTotals)
            .columns(key.into_iter().chain([Column::Items]));
        for ((kind, name), count) in chunk {
            upsert
                .values([
                    tenant_id.into(),
                    (*kind).into(),
                    (*name).into(),
                    (*count).into(),
                ])
                .map_err(|e| StoreError::CommitFailed(e.to_string()))?;
        }
        upsert
            .on_conflict(
                OnConflict::columns(key)
                    .value(
                        Column::Items,
                        Expr::col((InboxTotals, Column::Items))
                            .add(Expr::col(("excluded", Column::Items))),
                    )
                    .to_owned(),
            )
            .returning(Query::returning().columns([
                Column::TargetKind,
                Column::Target,
                Column::Items,
            ]));
        for row in txn.query_all(&upsert).await? {
            let kind: String = row.try_get("", "target_kind")?;
            let name: String = row.try_get("", "target")?;
            let total: i64 = row.try_get("", "items")?;
            let count = counts
                .get(&(kind.as_str(), name.as_str()))
                .copied()
                .unwrap_or(0);
            next.insert((kind, name), total - count + 1);
        }
    }
    Ok(ordinals_from(events, next))
}

/// How many inbox items among `events` each stream gets, streams in order of first item.
pub(crate) fn inbox_counts<'a>(events: &[(&'a Target, bool)]) -> Vec<((&'a str, &'a str), i64)> {
    let mut added: Vec<((&str, &str), i64)> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for (target, inbox) in events {
        if !inbox {
            continue;
        }
        let key = (target.kind(), target.name());
        let at = *index.entry(key).or_insert_with(|| {
            added.push((key, 0));
            added.len() - 1
        });
        added[at].1 += 1;
    }
    added
}

/// The ordinal of each of `events` (`None` for those that are not inbox items), given the
/// ordinal each stream's first new item gets.
pub(crate) fn ordinals_from(
    events: &[(&Target, bool)],
    mut next: HashMap<(String, String), i64>,
) -> Vec<Option<i64>> {
    events
        .iter()
        .map(|(target, inbox)| match inbox {
            true => next
                .get_mut(&(target.kind().to_owned(), target.name().to_owned()))
                .map(|ordinal| {
                    *ordinal += 1;
                    *ordinal - 1
                }),
            false => None,
        })
        .collect()
}
