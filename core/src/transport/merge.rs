//! Small DATA frames merged, a frame per stream for each read, before h2 reads them.
//!
//! Peers such as grpc-go's client send one DATA frame per message, and several streams'
//! frames take turns on the connection. h2 keeps every frame it received and the
//! application has not read as a frame of its own, and it guards its memory with a budget
//! of 256 bytes per small frame, spent (and the connection closed with GOAWAY
//! ENHANCE_YOUR_CALM "too_many_data_frames") by about 70,000 of them: two streams of
//! 16-byte messages whose handlers paused for a moment, well within their flow-control
//! windows, lost the whole connection. Merged, a read's worth of such frames is a frame
//! per stream: each stream's bytes in the same order, counted the same by flow control
//! ("the entire DATA frame payload is included in flow control", RFC 9113 §6.1: only
//! frame heads go), and h2's guard still stops peers that send tiny frames one read at a
//! time. Frames of different streams are independent (§5: streams interleave freely), so
//! a block of DATA frames may be regrouped by stream; no frame crosses another kind of
//! frame (HEADERS that open a stream, RST_STREAM that ends one, WINDOW_UPDATE).
//!
//! Only small frames (under 256 bytes) are merged, and only whole frames in one read; never
//! a frame after its stream's end, never a padded frame (its padding counts in flow control and must not become data), an
//! empty one (h2 counts those against floods of them) or one on stream 0 (a connection
//! error that h2 must see as sent).

use tokio::io::ReadBuf;

/// "All frames begin with a fixed 9-octet header" (RFC 9113 §4.1).
pub(crate) const HEAD: usize = 9;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const PADDED: u8 = 0x8;
/// Frames this small are merged: h2 charges each such frame it keeps to its budget (its
/// `DEFAULT_DATA_FRAME_OVERHEAD_THRESHOLD`); larger ones cost it nothing and pass as they
/// are, uncopied.
const SMALL: usize = 256;
/// The largest frame every peer accepts before SETTINGS say otherwise (§4.2): merged
/// frames stay within it, whatever our own settings allow.
const MOST: usize = 16_384;

/// A frame whose head starts at `at` and whose payload is wholly in the bytes read.
#[derive(Clone, Copy)]
struct Frame {
    at: usize,
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Frame {
    fn at(bytes: &[u8], at: usize) -> Option<Frame> {
        let h = bytes.get(at..at + HEAD)?;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        if bytes.len() - at - HEAD < len {
            return None;
        }
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        Some(Frame {
            at,
            len,
            kind: h[3],
            flags: h[4],
            stream,
        })
    }

    fn end(&self) -> usize {
        self.at + HEAD + self.len
    }

    fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.at + HEAD..self.end()]
    }

    /// Small DATA that may be merged with others of its stream.
    fn mergeable(&self) -> bool {
        let small = self.len > 0 && self.len < SMALL;
        self.kind == DATA && self.flags & PADDED == 0 && small && self.stream != 0
    }
}

/// Where the first frame to begin in `bytes` begins, after a read that left a frame's
/// head unfinished (`got` of its bytes in `head`) or `left` bytes of its payload to come.
pub(crate) fn next_head(head: &[u8; HEAD], got: usize, left: usize, bytes: &[u8]) -> Option<usize> {
    if got > 0 {
        let rest = bytes.get(..HEAD - got)?;
        let mut h = *head;
        h[got..].copy_from_slice(rest);
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        return Some(rest.len() + len).filter(|&at| at <= bytes.len());
    }
    Some(left).filter(|&at| at <= bytes.len())
}

/// One stream's frames in a block: their payloads' length, and whether one ended it.
struct Run {
    stream: u32,
    len: usize,
    ended: bool,
}

/// What merging keeps between reads, so that a read allocates nothing.
#[derive(Default)]
pub(crate) struct Merger {
    frames: Vec<Frame>,
    runs: Vec<Run>,
    out: Vec<u8>,
}

impl Merger {
    /// Merges the frames a read just put in `buf` after its first `before` bytes, the
    /// first of them beginning `at` bytes in (`None`: none begins in them).
    pub(crate) fn merge_read(&mut self, buf: &mut ReadBuf<'_>, before: usize, at: Option<usize>) {
        if let Some(at) = at {
            let first = before + at;
            let kept = self.merge(&mut buf.filled_mut()[first..]);
            buf.set_filled(first + kept);
        }
    }

    /// Merges the blocks of DATA frames in `bytes`, whose first frame starts at its first
    /// byte: how many bytes are left (the rest of `bytes` is to be ignored). A frame cut
    /// off at the end is left as it is.
    pub(crate) fn merge(&mut self, bytes: &mut [u8]) -> usize {
        let (mut len, mut at) = (bytes.len(), 0);
        while let Some(f) = Frame::at(&bytes[..len], at) {
            if !f.mergeable() {
                at = f.end();
                continue;
            }
            let end = self.block(&bytes[..len], f);
            if self.frames.len() == self.runs.len() {
                // A frame per stream already.
                at = end;
                continue;
            }
            self.regroup(&bytes[..end]);
            let kept = self.out.len();
            bytes[at..at + kept].copy_from_slice(&self.out);
            bytes.copy_within(end..len, at + kept);
            len -= end - at - kept;
            at += kept;
        }
        len
    }

    /// The block of DATA frames that begins with `first`: where it ends. It ends before a
    /// frame that is not mergeable, that comes after its stream's end, or that would make
    /// its stream's frame larger than `MOST`.
    fn block(&mut self, bytes: &[u8], first: Frame) -> usize {
        self.frames.clear();
        self.runs.clear();
        let mut next = Some(first);
        while let Some(f) = next.filter(Frame::mergeable) {
            let run = match self.runs.iter().position(|r| r.stream == f.stream) {
                Some(i) => &mut self.runs[i],
                None => {
                    self.runs.push(Run {
                        stream: f.stream,
                        len: 0,
                        ended: false,
                    });
                    self.runs.last_mut().expect("just pushed")
                }
            };
            if run.ended || run.len + f.len > MOST {
                break;
            }
            run.len += f.len;
            run.ended = f.flags & END_STREAM != 0;
            self.frames.push(f);
            next = Frame::at(bytes, f.end());
        }
        // A stream met only at the frame that ended the block has no frames in it.
        self.runs.retain(|r| r.len > 0);
        self.frames.last().map_or(first.end(), Frame::end)
    }

    /// Writes the block's frames into `out`, a frame per stream, in the order the streams
    /// first appear.
    fn regroup(&mut self, bytes: &[u8]) {
        self.out.clear();
        for run in &self.runs {
            let n = (run.len as u32).to_be_bytes();
            let flags = if run.ended { END_STREAM } else { 0 };
            self.out.extend_from_slice(&[n[1], n[2], n[3], DATA, flags]);
            self.out.extend_from_slice(&run.stream.to_be_bytes());
            for f in self.frames.iter().filter(|f| f.stream == run.stream) {
                self.out.extend_from_slice(f.payload(bytes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = (payload.len() as u32).to_be_bytes();
        let mut f = vec![n[1], n[2], n[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn merged(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = Merger::default().merge(&mut bytes);
        bytes.truncate(n);
        bytes
    }

    #[test]
    fn a_run_of_data_on_one_stream_becomes_one_frame() {
        let mut b = frame(DATA, 0, 1, b"ab");
        b.extend(frame(DATA, 0, 1, b"cd"));
        b.extend(frame(DATA, END_STREAM, 1, b"e"));
        assert_eq!(
            merged(b),
            [&[0, 0, 5, DATA, END_STREAM, 0, 0, 0, 1][..], b"abcde"].concat()
        );
    }

    #[test]
    fn frames_of_other_streams_and_kinds_end_a_run() {
        let mut b = frame(DATA, 0, 1, b"a");
        b.extend(frame(DATA, 0, 3, b"b"));
        b.extend(frame(DATA, 0, 3, b"c"));
        // A PING between two DATA frames of stream 3.
        b.extend(frame(0x6, 0, 0, &[0; 8]));
        b.extend(frame(DATA, 0, 3, b"d"));
        let mut want = frame(DATA, 0, 1, b"a");
        want.extend(frame(DATA, 0, 3, b"bc"));
        want.extend(frame(0x6, 0, 0, &[0; 8]));
        want.extend(frame(DATA, 0, 3, b"d"));
        assert_eq!(merged(b), want);
    }

    /// Streams taking turns, as h2's and grpc-go's writers send them.
    #[test]
    fn interleaved_streams_become_a_frame_each() {
        let mut b = frame(DATA, 0, 1, b"a");
        b.extend(frame(DATA, 0, 3, b"b"));
        b.extend(frame(DATA, 0, 1, b"c"));
        b.extend(frame(DATA, END_STREAM, 3, b"d"));
        b.extend(frame(DATA, 0, 1, b"e"));
        let mut want = frame(DATA, 0, 1, b"ace");
        want.extend(frame(DATA, END_STREAM, 3, b"bd"));
        assert_eq!(merged(b), want);
    }

    /// A frame after its stream's end is the peer's error for h2 to see (STREAM_CLOSED):
    /// it is not folded into the stream's frame.
    #[test]
    fn a_frame_after_its_streams_end_starts_a_block_of_its_own() {
        let mut b = frame(DATA, 0, 1, b"a");
        b.extend(frame(DATA, END_STREAM, 1, b"b"));
        b.extend(frame(DATA, 0, 1, b"c"));
        b.extend(frame(DATA, 0, 1, b"d"));
        let mut want = frame(DATA, END_STREAM, 1, b"ab");
        want.extend(frame(DATA, 0, 1, b"cd"));
        assert_eq!(merged(b), want);
    }

    /// Frames of 256 bytes and more cost h2's budget nothing: they pass uncopied, and a
    /// small frame between two of them stays alone.
    #[test]
    fn frames_that_are_not_small_pass_as_they_are() {
        for len in [SMALL, 1000, MOST + 1] {
            let big = vec![3u8; len];
            let mut b = frame(DATA, 0, 1, &big);
            b.extend(frame(DATA, 0, 1, &big));
            b.extend(frame(DATA, 0, 1, b"x"));
            b.extend(frame(DATA, 0, 1, &big));
            assert_eq!(merged(b.clone()), b, "{len}");
        }
    }

    #[test]
    fn padded_empty_ending_and_stream_0_frames_stay_as_they_are() {
        for first in [
            frame(DATA, PADDED, 1, &[1, b'x', 0]),
            frame(DATA, 0, 1, b""),
            frame(DATA, END_STREAM, 1, b"x"),
            frame(DATA, 0, 0, b"x"),
        ] {
            let mut b = first.clone();
            b.extend(frame(DATA, 0, first[8].into(), b"y"));
            assert_eq!(merged(b.clone()), b, "{first:?}");
        }
        // Nor is a padded or empty frame taken into a run.
        for second in [
            frame(DATA, PADDED, 1, &[1, b'y', 0]),
            frame(DATA, 0, 1, b""),
        ] {
            let mut b = frame(DATA, 0, 1, b"x");
            b.extend(second);
            assert_eq!(merged(b.clone()), b);
        }
    }

    #[test]
    fn a_frame_cut_off_by_the_read_is_left_whole_for_the_next() {
        let mut b = frame(DATA, 0, 1, b"ab");
        let cut = frame(DATA, 0, 1, b"cdef");
        b.extend(&cut[..11]);
        assert_eq!(merged(b.clone()), b);
        // A head cut off too.
        let mut b = frame(DATA, 0, 1, b"ab");
        b.extend(&cut[..4]);
        assert_eq!(merged(b.clone()), b);
    }

    #[test]
    fn a_merged_frame_stays_within_the_smallest_frame_size() {
        // 65 frames of 255 bytes: 64 of them fill 16,320 bytes, the 65th would not fit.
        let small = [5u8; 255];
        let b: Vec<u8> = (0..65).flat_map(|_| frame(DATA, 0, 1, &small)).collect();
        let mut want = frame(DATA, 0, 1, &small.repeat(64));
        want.extend(frame(DATA, 0, 1, &small));
        assert_eq!(merged(b), want);
    }

    /// Thousands of one-message frames, as grpc-go's client sends them, come out as a few.
    #[test]
    fn one_message_frames_merge_up_to_the_frame_size() {
        let msg = [[0u8, 0, 0, 0, 16].as_slice(), &[9; 16]].concat();
        let b: Vec<u8> = (0..2000).flat_map(|_| frame(DATA, 0, 5, &msg)).collect();
        let out = merged(b);
        let mut frames = 0;
        let mut at = 0;
        while let Some(f) = Frame::at(&out, at) {
            assert!(f.len <= MOST);
            frames += 1;
            at = f.end();
        }
        assert_eq!(at, out.len());
        assert_eq!(frames, (2000 * 21usize).div_ceil(MOST / 21 * 21));
    }
}
