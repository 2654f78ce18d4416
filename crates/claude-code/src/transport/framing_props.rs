//! Property tests of the stdout line framing ([`LineCodec`]): whatever the chunking of
//! the byte stream, the same lines come out, as a plain reference splitter says; an
//! over-long line is one [`Line::TooLong`] and the lines after it still arrive; the
//! buffer never holds more than the cap while waiting for a newline.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use futures::StreamExt;
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Decoder, FramedRead};

use super::{Line, LineCodec};

/// One decoded item, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Data(Vec<u8>),
    TooLong,
}

impl From<Line> for Item {
    fn from(line: Line) -> Self {
        match line {
            Line::Data(b) => Item::Data(b.to_vec()),
            Line::TooLong => Item::TooLong,
        }
    }
}

/// What the framing must produce, written as plainly as possible: split at `\n`; a line
/// longer than `max` (its `\r` counted) is `TooLong`; a kept line loses one trailing
/// `\r`; the last piece without a newline is kept as it is (or `TooLong`).
fn reference(input: &[u8], max: usize) -> Vec<Item> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or_default();
    for piece in pieces {
        out.push(if piece.len() > max {
            Item::TooLong
        } else {
            Item::Data(piece.strip_suffix(b"\r").unwrap_or(piece).to_vec())
        });
    }
    if last.len() > max {
        out.push(Item::TooLong);
    } else if !last.is_empty() {
        out.push(Item::Data(last.to_vec()));
    }
    out
}

/// `input` cut at `cuts` (positions, any order, duplicates allowed).
fn chunks(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut start = 0;
    cuts.into_iter()
        .map(|end| {
            let chunk = input[start..end].to_vec();
            start = end;
            chunk
        })
        .collect()
}

/// Drives the codec as `FramedRead` does: after each chunk, decode until it asks for
/// more; at the end, `decode_eof` until it is done. Checks the buffer bound on the way.
fn decode_chunks(chunks: &[Vec<u8>], max: usize) -> Vec<Item> {
    let mut codec = LineCodec::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(line) = codec.decode(&mut buf).expect("decode never fails") {
            out.push(line.into());
        }
        assert!(
            buf.len() <= max,
            "waiting for a newline with {} bytes buffered, cap {max}",
            buf.len()
        );
    }
    while let Some(line) = codec.decode_eof(&mut buf).expect("decode_eof never fails") {
        out.push(line.into());
    }
    out
}

/// A reader that hands out the chunks one read at a time (split further when the
/// caller's buffer is smaller).
struct ChunkReader(VecDeque<Vec<u8>>);

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while let Some(mut chunk) = self.0.pop_front() {
            if chunk.is_empty() {
                continue;
            }
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
            break;
        }
        Poll::Ready(Ok(()))
    }
}

/// Bytes with many newlines, carriage returns and JSON-ish characters.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(b'\n'),
            1 => Just(b'\r'),
            6 => prop::sample::select(b"{}\":,ab ".to_vec()),
            1 => any::<u8>(),
        ],
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_gives_the_reference_lines(
        input in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        max in 0usize..24,
    ) {
        let expected = reference(&input, max);
        prop_assert_eq!(decode_chunks(std::slice::from_ref(&input), max), expected.clone());
        prop_assert_eq!(decode_chunks(&chunks(&input, &cuts), max), expected);
    }

    #[test]
    fn byte_at_a_time_gives_the_reference_lines(input in stream(), max in 0usize..24) {
        let single: Vec<Vec<u8>> = input.iter().map(|&b| vec![b]).collect();
        prop_assert_eq!(decode_chunks(&single, max), reference(&input, max));
    }

    #[test]
    fn kept_lines_fit_the_cap_and_hold_no_newline(input in stream(), max in 0usize..24) {
        for item in decode_chunks(&[input], max) {
            if let Item::Data(line) = item {
                prop_assert!(line.len() <= max);
                prop_assert!(!line.contains(&b'\n'));
            }
        }
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_the_stream_continues(
        before in prop::collection::vec("[a-z{}\":]{0,8}", 0..4),
        long in 9usize..200,
        after in prop::collection::vec("[a-z{}\":]{0,8}", 0..4),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let max = 8;
        let mut input = Vec::new();
        for line in &before {
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
        input.extend(std::iter::repeat_n(b'x', long));
        input.push(b'\n');
        for line in &after {
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
        let mut expected: Vec<Item> =
            before.iter().map(|l| Item::Data(l.clone().into_bytes())).collect();
        expected.push(Item::TooLong);
        expected.extend(after.iter().map(|l| Item::Data(l.clone().into_bytes())));
        prop_assert_eq!(decode_chunks(&chunks(&input, &cuts), max), expected);
    }

    #[test]
    fn framed_read_over_a_chunked_reader_gives_the_reference_lines(
        input in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        max in 0usize..24,
        capacity in 1usize..64,
    ) {
        let reader = ChunkReader(chunks(&input, &cuts).into());
        let framed = FramedRead::with_capacity(reader, LineCodec::new(max), capacity);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let got: Vec<Item> = runtime.block_on(
            framed.map(|line| Item::from(line.expect("no I/O error"))).collect(),
        );
        prop_assert_eq!(got, reference(&input, max));
    }
}
