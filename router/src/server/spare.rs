//! Connection buffers kept per thread for the next connection.
//!
//! Every HTTP/1 connection reads into one buffer and writes from another,
//! 8 KiB each. With a new connection per request, allocating and freeing
//! them was a good part of the router's work: blocks that size are not
//! kept in glibc's per-thread caches, and asking for one sorts the
//! allocator's free lists first. A few spare pairs kept here are taken
//! by the next connections instead.

use std::cell::RefCell;

use bytes::BytesMut;

/// Spare pairs kept per thread: enough for a burst of short connections,
/// little memory once they are gone (16 KiB a pair).
const SPARE_PAIRS: usize = 16;

thread_local! {
    static SPARE: RefCell<Vec<(BytesMut, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// A connection's read and write buffers; they go back to the thread's
/// spares when the connection ends.
pub(super) struct ConnBuffers {
    pub(super) read: BytesMut,
    pub(super) write: Vec<u8>,
    /// The size new buffers get, and the least a kept one must have.
    size: usize,
}

impl ConnBuffers {
    /// A spare pair, or a new one of `size` bytes each.
    pub(super) fn take(size: usize) -> ConnBuffers {
        let (read, write) = SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_else(|| (BytesMut::with_capacity(size), Vec::with_capacity(size)));
        ConnBuffers { read, write, size }
    }
}

impl Drop for ConnBuffers {
    fn drop(&mut self) {
        // Only buffers of about the usual size are kept: one given back
        // while idle, or handed over with the connection, has none, and a
        // large one would hold memory nobody uses. (The read buffer's
        // capacity is what is left after the request heads split off its
        // front; it gets the whole block back when it next reserves room,
        // if nothing else holds a part of it.)
        let usual = |capacity: usize| (self.size / 2..=2 * self.size).contains(&capacity);
        if !usual(self.read.capacity()) || !usual(self.write.capacity()) {
            return;
        }
        let mut read = std::mem::take(&mut self.read);
        let mut write = std::mem::take(&mut self.write);
        read.clear();
        write.clear();
        // (A thread-local being torn down drops them instead.)
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_PAIRS {
                spare.push((read, write));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spare_pairs() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }

    // (Each test runs on a thread of its own, with spares of its own.)
    #[test]
    fn buffers_of_the_usual_size_are_reused() {
        let mut buffers = ConnBuffers::take(1024);
        buffers.write.extend_from_slice(b"answer");
        let at = buffers.write.as_ptr();
        drop(buffers);
        assert_eq!(spare_pairs(), 1);
        let again = ConnBuffers::take(1024);
        assert_eq!(again.write.as_ptr(), at, "the spare pair is taken");
        assert!(again.read.is_empty() && again.write.is_empty());
        assert_eq!(spare_pairs(), 0);
    }

    #[test]
    fn given_back_or_grown_buffers_are_not_kept() {
        let mut released = ConnBuffers::take(1024);
        released.read = BytesMut::new();
        drop(released);
        let mut grown = ConnBuffers::take(1024);
        grown.write.reserve(64 * 1024);
        drop(grown);
        assert_eq!(spare_pairs(), 0);
        for _ in 0..2 * SPARE_PAIRS {
            drop(ConnBuffers {
                read: BytesMut::with_capacity(1024),
                write: Vec::with_capacity(1024),
                size: 1024,
            });
        }
        assert_eq!(spare_pairs(), SPARE_PAIRS, "at most SPARE_PAIRS are kept");
    }
}
