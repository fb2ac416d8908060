//! CSV records with the line each starts on.

use crate::error::{Error, Result};

/// The input, keeping the last two chunks it read (with their offsets), so
/// the byte that ended a record can be looked at.
struct Tail<R> {
    inner: R,
    /// The latest chunk and the one before, each with its offset.
    chunks: [(u64, Vec<u8>); 2],
}

impl<R: std::io::Read> std::io::Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let [older, newer] = &mut self.chunks;
            std::mem::swap(older, newer);
            newer.0 = older.0 + older.1.len() as u64;
            newer.1.clear();
            newer.1.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        Ok(n)
    }
}

impl<R> Tail<R> {
    fn byte_at(&self, at: u64) -> Option<u8> {
        self.chunks.iter().find_map(|(offset, bytes)| {
            let i = usize::try_from(at.checked_sub(*offset)?).ok()?;
            bytes.get(i).copied()
        })
    }
}

/// Records with the line each starts on.
///
/// The `csv` crate positions a record where the previous one ended, so
/// blank lines it skips (and the `\n` of a `\r\n` that ended the previous
/// record) would shift its line. Instead, the line count after the record,
/// minus the newlines inside its fields (quoted ones), minus its own
/// terminator's newline, is the line it starts on.
pub(crate) struct Records<R: std::io::Read> {
    csv: ::csv::Reader<Tail<R>>,
}

impl<R: std::io::Read> Records<R> {
    pub(crate) fn new(reader: R) -> Self {
        // The chunk holding a record's last byte is the latest one read
        // when the record is returned, or the one before if it ended a
        // chunk: the reader reads at most its buffer's capacity at a time.
        let csv = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Tail {
                inner: reader,
                chunks: [(0, Vec::new()), (0, Vec::new())],
            });
        Records { csv }
    }

    /// Reads the next record into `record`; its first line (1-based).
    pub(crate) fn next(&mut self, record: &mut ::csv::ByteRecord) -> Result<Option<u64>> {
        if !self.csv.read_byte_record(record).map_err(csv_error)? {
            return Ok(None);
        }
        let end = self.csv.position();
        let terminated = end
            .byte()
            .checked_sub(1)
            .and_then(|last| self.csv.get_ref().byte_at(last))
            == Some(b'\n');
        let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        let start = record.position().map_or(1, ::csv::Position::line);
        let first = end
            .line()
            .saturating_sub(inside)
            .saturating_sub(u64::from(terminated))
            .max(start);
        Ok(Some(first))
    }
}

fn csv_error(e: ::csv::Error) -> Error {
    Error::Csv {
        line: e.position().map(|p| p.line()),
        message: match e.kind() {
            ::csv::ErrorKind::Io(io) => io.to_string(),
            // Other kinds cannot occur for flexible byte records; their
            // messages are about positions, not values.
            _ => e.to_string(),
        },
    }
}
