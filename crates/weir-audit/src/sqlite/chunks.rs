//! How verification reads a format-2 log: chunks of rows as one value
//! each, the next read while this one is hashed; row by row where a chunk
//! does not split.

use futures::TryStreamExt;

use super::SqliteSink;
use crate::chain_id::ChainId;
use crate::error::{Error, Result};
use crate::filter::seq_to_sql;
use crate::record::{self, Link};
use crate::row::decode_link;

/// What verification reads of a format-2 row: no generated column.
const SELECT_RECORDS: &str =
    "SELECT seq, record FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3";
/// Rows verification reads in one go (see [`SqliteSink::spawn_chunk`]).
const CHUNK: u32 = 512;
/// Up to `?3` rows of a chain from seq `?2` as one row: positions joined
/// by `,`, records joined by RS. The ordered, limited subquery is not
/// flattened into the aggregate, and `split_chunk` checks the order anyway.
const SELECT_RECORD_CHUNK: &str = "SELECT group_concat(seq, ','), group_concat(record, char(30)) \
     FROM (SELECT seq, record FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3)";

impl SqliteSink {
    /// The links of up to `limit` format-2 rows of `chain` from `from_seq`
    /// ([`AuditSink::links`](crate::AuditSink::links)).
    pub(super) async fn links_in_chunks(
        &self,
        chain: &ChainId,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<Link>> {
        // Chunks are read one after another (each starts after the last
        // seq of the one before); each is hashed while SQLite reads the
        // next. (Hashing on other threads as well was slower on two cores:
        // it takes the core the reading thread needs.)
        let mut links = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
        let mut read: u32 = 0;
        // Where the chunk being awaited starts.
        let mut start = from_seq;
        let mut next = Some(self.spawn_chunk(chain, start, limit.min(CHUNK)));
        while let Some(handle) = next.take() {
            let Some((positions, records)) = handle
                .await
                .map_err(|_| task_failed())?
                .map_err(Error::db("read events"))?
            else {
                break;
            };
            let room = (limit - read).min(CHUNK);
            let Some((count, last)) = record::chunk_extent(&positions) else {
                // Only tampering makes a position no integer: read this
                // chunk row by row, which names the row, and stop there.
                links.extend(self.links_by_row(chain, start, room).await?);
                break;
            };
            let this_chunk = start;
            read = read.saturating_add(count).min(limit);
            if count == CHUNK && read < limit {
                start = last + 1;
                next = Some(self.spawn_chunk(chain, start, (limit - read).min(CHUNK)));
            }
            match record::chunk_links(chain, &positions, &records) {
                Some(chunk) => links.extend(chunk?),
                None => {
                    // A record holding the separator (only tampering puts
                    // it there): read the chunk row by row.
                    links.extend(self.links_by_row(chain, this_chunk, room).await?);
                    break;
                }
            }
        }
        Ok(links)
    }

    /// Starts reading up to `limit` (at most [`CHUNK`]) format-2 rows of
    /// `chain` from `from_seq` as one row: their positions joined by `,`
    /// and their records joined by RS (0x1E, a byte no JSON text holds).
    /// One value per chunk crosses from SQLite instead of two per row.
    fn spawn_chunk(
        &self,
        chain: &ChainId,
        from_seq: u64,
        limit: u32,
    ) -> tokio::task::JoinHandle<std::result::Result<Option<(String, String)>, sqlx::Error>> {
        let pool = self.pool.clone();
        let chain = chain.as_str().to_owned();
        tokio::spawn(async move {
            let row: (Option<String>, Option<String>) = sqlx::query_as(SELECT_RECORD_CHUNK)
                .bind(chain)
                .bind(seq_to_sql(from_seq))
                .bind(i64::from(limit))
                .fetch_one(&pool)
                .await?;
            Ok(row.0.zip(row.1))
        })
    }

    /// The links of up to `limit` format-2 rows, read and checked one row
    /// at a time (exact about which row is damaged).
    async fn links_by_row(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<Link>> {
        let mut rows = sqlx::query(SELECT_RECORDS)
            .bind(chain.as_str())
            .bind(seq_to_sql(from_seq))
            .bind(i64::from(limit))
            .fetch(&self.pool);
        let mut links: Vec<Link> = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(Error::db("read events"))? {
            // A row whose seq itself does not decode is named by where it
            // lies: after the last good one.
            let after = links.last().map_or(from_seq, |l| l.position + 1);
            links.push(decode_link(chain, &row).map_err(|e| e.at_seq_if_unknown(after))?);
        }
        Ok(links)
    }
}

fn task_failed() -> Error {
    Error::Internal {
        reason: "audit read task failed",
    }
}
