//! The MQTT sink's on-disk queue: an append-only file of length-prefixed messages and a
//! small file holding the read offset, so readings survive a broker outage and a
//! restart, and leave in the order they came.
//!
//! Record layout: `u32` body length (LE), then the body: `u8` flags (bit 0: retain,
//! bit 1: user properties follow the topic), `u16` topic length (LE), the topic, if
//! flagged the user properties (`u16` count, then per property `u16` length and text
//! for the name and for the value), the payload. Messages are removed (the offset
//! moves) only when the broker acknowledges them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it as the topic's last value.
    pub retain: bool,
    /// MQTT 5 user properties (name, value), in order.
    pub props: Vec<(String, String)>,
}

impl Msg {
    /// A message from a topic and text.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>, retain: bool) -> Msg {
        Msg {
            topic: topic.into(),
            payload: payload.into(),
            retain,
            props: Vec::new(),
        }
    }

    /// The same message with MQTT 5 user properties.
    pub fn with_props(mut self, props: Vec<(String, String)>) -> Msg {
        self.props = props;
        self
    }
}

const RETAIN: u8 = 1;
const PROPS: u8 = 2;

/// Appends a `u16`-length-prefixed text.
fn put_text(out: &mut Vec<u8>, what: &str, s: &str) -> Result<()> {
    let n = u16::try_from(s.len()).with_context(|| format!("{what} longer than 65535 bytes"))?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Reads a `u16` (LE) at `*at`, moving past it.
fn get_u16(body: &[u8], at: &mut usize) -> Result<u16> {
    let b = body
        .get(*at..*at + 2)
        .context("corrupt MQTT queue record")?;
    *at += 2;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a `u16`-length-prefixed text at `*at`, moving past it.
fn get_text(body: &[u8], at: &mut usize) -> Result<String> {
    let n = usize::from(get_u16(body, at)?);
    let text = body
        .get(*at..*at + n)
        .context("corrupt MQTT queue record")?;
    *at += n;
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// A message's record body.
fn encode(m: &Msg) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(3 + m.topic.len() + m.payload.len());
    let flags = if m.retain { RETAIN } else { 0 } | if m.props.is_empty() { 0 } else { PROPS };
    body.push(flags);
    put_text(&mut body, "MQTT topic", &m.topic)?;
    if !m.props.is_empty() {
        let n = u16::try_from(m.props.len()).context("more than 65535 MQTT properties")?;
        body.extend_from_slice(&n.to_le_bytes());
        for (k, v) in &m.props {
            put_text(&mut body, "MQTT property", k)?;
            put_text(&mut body, "MQTT property", v)?;
        }
    }
    body.extend_from_slice(&m.payload);
    Ok(body)
}

/// A message from its record body.
fn decode(body: &[u8]) -> Result<Msg> {
    let flags = *body.first().context("corrupt MQTT queue record")?;
    let mut at = 1;
    let topic = get_text(body, &mut at)?;
    let mut props = Vec::new();
    if flags & PROPS != 0 {
        let n = get_u16(body, &mut at)?;
        for _ in 0..n {
            let k = get_text(body, &mut at)?;
            props.push((k, get_text(body, &mut at)?));
        }
    }
    Ok(Msg {
        topic,
        payload: body[at..].to_vec(),
        retain: flags & RETAIN != 0,
        props,
    })
}

/// Compact the file once this much acknowledged data sits in front of the head.
const COMPACT_AT: u64 = 8 << 20;

/// The queue. `head` is the oldest unacknowledged record, `cursor` the next one to
/// send, `end` the end of the file.
pub struct DiskQueue {
    path: PathBuf,
    offset_path: PathBuf,
    writer: File,
    reader: File,
    head: u64,
    cursor: u64,
    end: u64,
    max_bytes: u64,
    /// Acknowledgements still due for sent records that were dropped for space.
    stale_acks: u64,
    /// Records dropped for space.
    dropped: u64,
    /// When the head was last written down; it is written at most once a second
    /// (a crash re-sends up to a second of messages: at least once).
    saved_at: std::time::Instant,
    unsaved: bool,
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the queue file {}", path.display()))
}

impl DiskQueue {
    /// Opens (or creates) the queue at `path`, keeping at most `max_bytes` of unsent
    /// messages; a torn record at the end (a crash mid-write) is cut off.
    pub fn open(path: &Path, max_bytes: u64) -> Result<DiskQueue> {
        let offset_path = PathBuf::from(format!("{}.offset", path.display()));
        let mut head = 0u64;
        if let Ok(b) = std::fs::read(&offset_path) {
            if let Ok(a) = <[u8; 8]>::try_from(b.as_slice()) {
                head = u64::from_le_bytes(a);
            }
        }
        let writer = open_rw(path)?;
        let reader = open_rw(path)?;
        let len = writer.metadata()?.len();
        if head > len {
            head = 0;
        }
        let mut q = DiskQueue {
            path: path.to_path_buf(),
            offset_path,
            writer,
            reader,
            head,
            cursor: head,
            end: len,
            max_bytes,
            stale_acks: 0,
            dropped: 0,
            saved_at: std::time::Instant::now(),
            unsaved: false,
        };
        // Walk the records to find the last whole one.
        let mut pos = head;
        while pos < len {
            match q.record_len(pos) {
                Ok(n) if pos + 4 + n <= len => pos += 4 + n,
                _ => break,
            }
        }
        if pos < len {
            tracing::warn!(
                "{}: cutting a torn message at the end (the program stopped mid-write)",
                path.display()
            );
            q.writer.set_len(pos)?;
        }
        q.end = pos;
        q.writer.seek(SeekFrom::Start(pos))?;
        Ok(q)
    }

    fn record_len(&mut self, pos: u64) -> Result<u64> {
        let mut b = [0u8; 4];
        self.reader.seek(SeekFrom::Start(pos))?;
        self.reader.read_exact(&mut b)?;
        Ok(u64::from(u32::from_le_bytes(b)))
    }

    /// Bytes of messages not yet acknowledged.
    pub fn pending_bytes(&self) -> u64 {
        self.end - self.head
    }

    /// Messages dropped so far to stay within the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether every message has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.head == self.end
    }

    /// Appends a message; the oldest ones are dropped (with a warning) when the queue
    /// would outgrow its bound.
    pub fn push(&mut self, m: &Msg) -> Result<()> {
        let body = encode(m)?;
        let blen = u32::try_from(body.len()).context("MQTT message larger than 4 GB")?;
        while self.head < self.end && self.pending_bytes() + 4 + body.len() as u64 > self.max_bytes
        {
            self.drop_oldest()?;
        }
        let mut rec = Vec::with_capacity(4 + body.len());
        rec.extend_from_slice(&blen.to_le_bytes());
        rec.extend_from_slice(&body);
        self.writer.seek(SeekFrom::Start(self.end))?;
        self.writer
            .write_all(&rec)
            .with_context(|| format!("cannot write the MQTT queue {}", self.path.display()))?;
        self.end += rec.len() as u64;
        Ok(())
    }

    fn drop_oldest(&mut self) -> Result<()> {
        if self.head < self.cursor {
            self.stale_acks += 1;
        }
        self.advance_head()?;
        self.cursor = self.cursor.max(self.head);
        self.dropped += 1;
        if self.dropped == 1 || self.dropped.is_multiple_of(10_000) {
            tracing::warn!(
                "{}: queue full ({} MB): dropped {} of the oldest messages",
                self.path.display(),
                self.max_bytes >> 20,
                self.dropped
            );
        }
        Ok(())
    }

    fn advance_head(&mut self) -> Result<()> {
        let n = self.record_len(self.head)?;
        self.head += 4 + n;
        Ok(())
    }

    /// The next message not yet handed out since the last [`rewind`](Self::rewind).
    pub fn next_unsent(&mut self) -> Result<Option<Msg>> {
        if self.cursor >= self.end {
            return Ok(None);
        }
        let n = self.record_len(self.cursor)?;
        let mut body = vec![0u8; usize::try_from(n)?];
        self.reader.read_exact(&mut body)?;
        let m = decode(&body)?;
        self.cursor += 4 + n;
        Ok(Some(m))
    }

    /// The broker acknowledged the oldest message handed out: forget it for good.
    pub fn ack(&mut self) -> Result<()> {
        if self.stale_acks > 0 {
            self.stale_acks -= 1;
            return Ok(());
        }
        if self.head >= self.cursor {
            return Ok(());
        }
        self.advance_head()?;
        if self.head == self.end {
            // Everything delivered: start the file afresh. The offset goes down first,
            // so a crash never leaves it pointing into newer messages.
            self.head = 0;
            self.cursor = 0;
            self.end = 0;
            self.save_head()?;
            self.writer.set_len(0)?;
            Ok(())
        } else if self.head >= COMPACT_AT && self.head > self.end - self.head {
            self.compact()
        } else {
            self.unsaved = true;
            if self.saved_at.elapsed() >= std::time::Duration::from_secs(1) {
                self.save_head()?;
            }
            Ok(())
        }
    }

    /// Writes the head down now (at shutdown).
    pub fn flush(&mut self) -> Result<()> {
        if self.unsaved {
            self.save_head()?;
        }
        Ok(())
    }

    /// Hands out everything unacknowledged again (after a reconnect).
    pub fn rewind(&mut self) {
        self.cursor = self.head;
        self.stale_acks = 0;
    }

    fn save_head(&mut self) -> Result<()> {
        let tmp = PathBuf::from(format!("{}.tmp", self.offset_path.display()));
        std::fs::write(&tmp, self.head.to_le_bytes())?;
        std::fs::rename(&tmp, &self.offset_path)?;
        self.saved_at = std::time::Instant::now();
        self.unsaved = false;
        Ok(())
    }

    /// Copies the unacknowledged tail to a fresh file.
    fn compact(&mut self) -> Result<()> {
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let mut out = File::create(&tmp)?;
        self.reader.seek(SeekFrom::Start(self.head))?;
        std::io::copy(&mut (&mut self.reader).take(self.end - self.head), &mut out)?;
        out.sync_all()?;
        // The offset first: a crash in between re-sends (at least once), never skips.
        let shift = self.head;
        self.head = 0;
        self.save_head()?;
        std::fs::rename(&tmp, &self.path)?;
        self.writer = open_rw(&self.path)?;
        self.reader = open_rw(&self.path)?;
        self.end -= shift;
        self.cursor -= shift;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mk-queue-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("q")
    }

    fn m(i: u32) -> Msg {
        let m = Msg::new(format!("t/{i}"), i.to_string(), i.is_multiple_of(2));
        if i.is_multiple_of(3) {
            m.with_props(vec![
                ("received".into(), i.to_string()),
                ("s".into(), "".into()),
            ])
        } else {
            m
        }
    }

    #[test]
    fn messages_leave_in_order_and_only_acked_ones_are_forgotten() {
        let p = dir("order");
        let mut q = DiskQueue::open(&p, 1 << 20).unwrap();
        for i in 0..5 {
            q.push(&m(i)).unwrap();
        }
        assert_eq!(q.next_unsent().unwrap(), Some(m(0)));
        assert_eq!(q.next_unsent().unwrap(), Some(m(1)));
        q.ack().unwrap();
        // A reconnect re-sends the unacknowledged one.
        q.rewind();
        assert_eq!(q.next_unsent().unwrap(), Some(m(1)));
        q.flush().unwrap();
        drop(q);
        // A restart too, and keeps the rest.
        let mut q = DiskQueue::open(&p, 1 << 20).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| q.next_unsent().unwrap()).collect();
        assert_eq!(got, (1..5).map(m).collect::<Vec<_>>());
        for _ in 0..4 {
            q.ack().unwrap();
        }
        assert!(q.is_empty());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_bound_drops_the_oldest() {
        let p = dir("torn");
        let mut q = DiskQueue::open(&p, 1 << 20).unwrap();
        q.push(&m(1)).unwrap();
        drop(q);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[50, 0, 0, 0, 1, 2]).unwrap();
        let mut q = DiskQueue::open(&p, 1 << 20).unwrap();
        assert_eq!(q.next_unsent().unwrap(), Some(m(1)));
        assert_eq!(q.next_unsent().unwrap(), None);

        let p = dir("bound");
        let mut q = DiskQueue::open(&p, 100).unwrap();
        for i in 0..20 {
            q.push(&m(i)).unwrap();
        }
        assert!(q.pending_bytes() <= 100);
        let got: Vec<_> = std::iter::from_fn(|| q.next_unsent().unwrap()).collect();
        assert_eq!(got.last(), Some(&m(19)));
        assert!(got.len() < 20);
    }

    #[test]
    fn compaction_keeps_the_tail() {
        let p = dir("compact");
        let mut q = DiskQueue::open(&p, 1 << 30).unwrap();
        let big = Msg::new("t", vec![7u8; 1 << 20], false);
        for _ in 0..12 {
            q.push(&big).unwrap();
        }
        q.push(&m(99)).unwrap();
        for _ in 0..12 {
            q.next_unsent().unwrap();
            q.ack().unwrap();
        }
        // Compacted once 9 MB lay acknowledged in front: 12 MB became 4 MB.
        assert!(std::fs::metadata(&p).unwrap().len() < 5 << 20);
        assert_eq!(q.next_unsent().unwrap(), Some(m(99)));
        q.flush().unwrap();
        drop(q);
        let mut q = DiskQueue::open(&p, 1 << 30).unwrap();
        assert_eq!(q.next_unsent().unwrap(), Some(m(99)));
    }
}
