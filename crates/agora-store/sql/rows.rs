//! Helpers every aggregate's SQL uses: error mapping, column decoding, list parameters.

use agora_core::Timestamp;
use agora_store::{Conflict, Result, StoreError};

use super::DbRow;
use crate::db;

/// Maps a driver error; a unique violation becomes the conflict the caller names.
pub(crate) fn db_err(conflict: Option<Conflict>) -> impl FnOnce(db::Error) -> StoreError {
    move |e| match conflict {
        Some(c) if db::is_unique_violation(&e) => StoreError::Conflict(c),
        _ => StoreError::Backend(e.to_string()),
    }
}

pub(crate) fn err(e: db::Error) -> StoreError {
    db_err(None)(e)
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} is not valid: {value:?}"))
}

pub(crate) fn get<'r, T: db::Decode<'r>>(r: &'r DbRow, col: &str) -> Result<T> {
    db::try_get(r, col).map_err(err)
}

pub(crate) fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

pub(crate) fn time(r: &DbRow, col: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_millis(get(r, col)?))
}

pub(crate) fn opt_time(r: &DbRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(ts(get(r, col)?))
}

pub(crate) fn json_col<T: serde::de::DeserializeOwned>(row: &DbRow, col: &str) -> Result<T> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Backend(format!("column {col}: {e}")))
}

pub(crate) fn opt_json<T: serde::de::DeserializeOwned>(row: &DbRow, col: &str) -> Result<Option<T>> {
    let text: Option<String> = get(row, col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Backend(format!("column {col}: {e}"))))
        .transpose()
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(crate) fn opt_to_json<T: serde::Serialize>(v: Option<&T>) -> Result<Option<String>> {
    v.map(to_json).transpose()
}

/// `%text%` for LIKE, with the pattern characters of `text` escaped (by `\`).
pub(crate) fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `$1, $2, …, $n`: one bound parameter per value of an `IN (…)` list, so a page of rows
/// is looked up in one query instead of one each.
pub(crate) fn marks(n: usize) -> String {
    marks_from(1, n)
}

/// `$first, …, $(first + n - 1)`: [`marks`] after `first - 1` other parameters.
pub(crate) fn marks_from(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, …, $cols), ($cols+1, …), …`: the VALUES of a multi-row insert.
pub(crate) fn row_marks(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            format!("({})", (1..=cols).map(|c| format!("${}", r * cols + c)).collect::<Vec<_>>().join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row insert, and values per `IN (…)` list: well under either backend's
/// limit on bound parameters.
pub(crate) const CHUNK: usize = 200;

pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn limit_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
