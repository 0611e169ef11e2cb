//! Handles: C holds a u64 naming a slot of a per-kind table, never a pointer. A handle
//! packs the kind (8 bits), the slot's generation (24 bits) and index + 1 (32 bits), so 0,
//! a freed handle, a handle of a reused slot and a handle of another kind are all caught.
//!
//! Looking a handle up takes no table-wide lock: every operation on a call does one, so a
//! global lock would serialize every C thread. Slots live in segments that never move or
//! go away; a lookup announces itself in the slot's reader count, and `remove` waits for
//! the readers of the slot it emptied before it lets the object go, so a lookup never
//! touches a freed object. Only insert and remove (open, accept, free) take the table lock.
//!
//! A forked child inherits the tables with its parent's objects in them (`rillrpc::fork`):
//! their handles fail there with RILL_ERR_WRONG_STATE, `free` included, and the objects are
//! left be. Such a `free` takes no lock: one its parent's thread held at the fork stays
//! held in the child.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::result::{Fail, R, RILL_ERR_NULL, RILL_ERR_STALE_HANDLE, RILL_ERR_WRONG_STATE};
use crate::runtime::{forks, made_before_fork};

const GEN_MASK: u32 = 0x00FF_FFFF;
/// Segment k holds `FIRST << k` slots: 2^32 slots in all, with few segments.
const FIRST: usize = 64;
const SEGMENTS: usize = 27;

pub(crate) struct Registry<T> {
    kind: u8,
    name: &'static str,
    segments: [AtomicPtr<Slot<T>>; SEGMENTS],
    /// Insert and remove: the free list and how many slots were ever handed out.
    table: Mutex<Table>,
    /// The table shares `Arc<Mutex<T>>`s between threads.
    _objects: PhantomData<Arc<Mutex<T>>>,
}

struct Table {
    free: Vec<u32>,
    used: u32,
}

struct Slot<T> {
    /// The generation of the live handle of this slot (never 0 while one is live).
    gen: AtomicU32,
    /// Lookups in progress: `remove` waits for them before dropping the object.
    readers: AtomicU32,
    /// `Arc::into_raw` of the object, or null.
    obj: AtomicPtr<Mutex<T>>,
    /// `fork::generation` when the object was put here: another count is a forked child's.
    forks: AtomicU64,
}

/// Locks, ignoring poisoning: a panic was already turned into RILL_ERR_PANIC, and the data
/// behind these locks stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The segment of slot `idx` and its place there.
fn place(idx: usize) -> (usize, usize) {
    let k = (idx / FIRST + 1).ilog2() as usize;
    (k, idx - FIRST * ((1 << k) - 1))
}

impl<T> Registry<T> {
    pub const fn new(kind: u8, name: &'static str) -> Registry<T> {
        Registry {
            kind,
            name,
            segments: [const { AtomicPtr::new(std::ptr::null_mut()) }; SEGMENTS],
            table: Mutex::new(Table {
                free: Vec::new(),
                used: 0,
            }),
            _objects: PhantomData,
        }
    }

    /// The slot `idx`, if its segment exists.
    fn slot(&self, idx: usize) -> Option<&Slot<T>> {
        let (k, i) = place(idx);
        let seg = self.segments.get(k)?.load(SeqCst);
        if seg.is_null() {
            return None;
        }
        // SAFETY: a non-null segment is a leaked array of `FIRST << k` slots that is never
        // freed or moved, and `i < FIRST << k` by `place`.
        Some(unsafe { &*seg.add(i) })
    }

    pub fn insert(&self, obj: T) -> u64 {
        let obj = Arc::into_raw(Arc::new(Mutex::new(obj))).cast_mut();
        let mut t = lock(&self.table);
        let idx = match t.free.pop() {
            Some(i) => i as usize,
            None => {
                let idx = t.used as usize;
                let (k, i) = place(idx);
                assert!(k < SEGMENTS, "{}: too many handles", self.name);
                if i == 0 {
                    let seg: Box<[Slot<T>]> = (0..FIRST << k)
                        .map(|_| Slot {
                            gen: AtomicU32::new(1),
                            readers: AtomicU32::new(0),
                            obj: AtomicPtr::new(std::ptr::null_mut()),
                            forks: AtomicU64::new(0),
                        })
                        .collect();
                    // Leaked on purpose: lookups may hold a reference at any time.
                    let p = Box::leak(seg).as_mut_ptr();
                    self.segments[k].store(p, SeqCst);
                }
                t.used += 1;
                idx
            }
        };
        let slot = self.slot(idx).expect("the segment was just made");
        slot.forks.store(forks(), SeqCst);
        slot.obj.store(obj, SeqCst);
        let gen = slot.gen.load(SeqCst);
        ((self.kind as u64) << 56) | ((gen as u64) << 32) | (idx as u64 + 1)
    }

    fn index(&self, h: u64) -> R<(usize, u32)> {
        if h == 0 {
            return Err(Fail::new(
                RILL_ERR_NULL,
                format!("{} handle is 0", self.name),
            ));
        }
        if (h >> 56) as u8 != self.kind {
            return Err(self.stale(h, "not a handle of this kind"));
        }
        let idx = (h & 0xFFFF_FFFF) as usize;
        if idx == 0 {
            return Err(self.stale(h, "malformed"));
        }
        Ok((idx - 1, ((h >> 32) as u32) & GEN_MASK))
    }

    fn inherited(&self, h: u64) -> Fail {
        Fail::new(
            RILL_ERR_WRONG_STATE,
            format!("{} handle {h:#x}: {}", self.name, made_before_fork()),
        )
    }

    fn stale(&self, h: u64, why: &str) -> Fail {
        Fail::new(
            RILL_ERR_STALE_HANDLE,
            format!("{} handle {h:#x}: {why}", self.name),
        )
    }

    /// The object behind a live handle.
    pub fn get(&self, h: u64) -> R<Arc<Mutex<T>>> {
        let (idx, gen) = self.index(h)?;
        let Some(slot) = self.slot(idx) else {
            return Err(self.stale(h, "freed or stale"));
        };
        slot.readers.fetch_add(1, SeqCst);
        // While we are counted, `remove` cannot finish, so the slot cannot be refilled: a
        // matching generation means `obj` is this handle's object or already null.
        let p = if slot.gen.load(SeqCst) == gen {
            slot.obj.load(SeqCst)
        } else {
            std::ptr::null_mut()
        };
        if !p.is_null() && slot.forks.load(SeqCst) != forks() {
            slot.readers.fetch_sub(1, SeqCst);
            return Err(self.inherited(h));
        }
        let found = (!p.is_null()).then(|| {
            // SAFETY: `p` came from `Arc::into_raw` and the slot still owns that reference
            // (remove waits for us before dropping it), so the count is at least 1.
            unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            }
        });
        slot.readers.fetch_sub(1, SeqCst);
        found.ok_or_else(|| self.stale(h, "freed or stale"))
    }

    /// Frees the slot; the object goes when its last in-flight user lets go of it.
    pub fn remove(&self, h: u64) -> R<Arc<Mutex<T>>> {
        let (idx, gen) = self.index(h)?;
        if let Some(slot) = self.slot(idx) {
            let live = slot.gen.load(SeqCst) == gen && !slot.obj.load(SeqCst).is_null();
            if live && slot.forks.load(SeqCst) != forks() {
                return Err(self.inherited(h));
            }
        }
        let mut t = lock(&self.table);
        let Some(slot) = self.slot(idx) else {
            return Err(self.stale(h, "freed or stale (double free?)"));
        };
        if slot.gen.load(SeqCst) != gen || slot.obj.load(SeqCst).is_null() {
            return Err(self.stale(h, "freed or stale (double free?)"));
        }
        let next = match (gen + 1) & GEN_MASK {
            0 => 1,
            g => g,
        };
        slot.gen.store(next, SeqCst);
        let p = slot.obj.swap(std::ptr::null_mut(), SeqCst);
        // A lookup that saw the old pointer is still taking its reference: wait for it. A
        // lookup counted after this sees the new generation or the null pointer.
        let mut spins = 0u32;
        while slot.readers.load(SeqCst) != 0 {
            // A lookup is a few instructions, unless its thread was preempted inside it.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        t.free.push(idx as u32);
        drop(t);
        // SAFETY: `p` came from `Arc::into_raw` (non-null: checked under the table lock,
        // which every remove holds) and no lookup can reach it any more.
        Ok(unsafe { Arc::from_raw(p) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_cover_every_index_once() {
        assert_eq!(place(0), (0, 0));
        assert_eq!(place(63), (0, 63));
        assert_eq!(place(64), (1, 0));
        assert_eq!(place(191), (1, 127));
        assert_eq!(place(192), (2, 0));
        let last = u32::MAX as usize - 1;
        let (k, i) = place(last);
        assert!(k < SEGMENTS && i < FIRST << k);
    }

    #[test]
    fn stale_and_reused_handles_are_caught() {
        static R: Registry<u32> = Registry::new(9, "test");
        let a = R.insert(1);
        assert_eq!(*lock(&R.get(a).unwrap()), 1);
        R.remove(a).unwrap();
        assert!(R.get(a).is_err());
        assert!(R.remove(a).is_err());
        let b = R.insert(2);
        assert_eq!(a & 0xFFFF_FFFF, b & 0xFFFF_FFFF, "the slot is reused");
        assert!(R.get(a).is_err());
        assert_eq!(*lock(&R.get(b).unwrap()), 2);
        let many: Vec<u64> = (0..300).map(|i| R.insert(i)).collect();
        for (i, h) in many.iter().enumerate() {
            assert_eq!(*lock(&R.get(*h).unwrap()), i as u32);
        }
        for h in many {
            R.remove(h).unwrap();
        }
    }

    /// The generation a handle carries.
    fn gen_of(h: u64) -> u32 {
        ((h >> 32) as u32) & GEN_MASK
    }

    #[test]
    fn every_bad_handle_is_refused_with_its_code() {
        static R: Registry<u32> = Registry::new(11, "bad");
        static OTHER: Registry<u32> = Registry::new(12, "other");
        let h = R.insert(5);
        assert_eq!(R.get(0).unwrap_err().code, RILL_ERR_NULL);
        assert_eq!(R.remove(0).unwrap_err().code, RILL_ERR_NULL);
        // Another kind's handle, even one naming a live slot of this table.
        let o = OTHER.insert(6);
        assert_eq!(R.get(o).unwrap_err().code, RILL_ERR_STALE_HANDLE);
        assert_eq!(OTHER.get(h).unwrap_err().code, RILL_ERR_STALE_HANDLE);
        assert_eq!(R.remove(o).unwrap_err().code, RILL_ERR_STALE_HANDLE);
        // Index 0 is no slot; a slot never handed out; a slot in a segment never made.
        let kind = h & (0xFF << 56);
        assert_eq!(
            R.get(kind | 1 << 32).unwrap_err().code,
            RILL_ERR_STALE_HANDLE
        );
        assert_eq!(
            R.get(kind | 1 << 32 | 2).unwrap_err().code,
            RILL_ERR_STALE_HANDLE
        );
        let far = kind | 1 << 32 | 0xFFFF_FFFF;
        assert_eq!(R.get(far).unwrap_err().code, RILL_ERR_STALE_HANDLE);
        assert_eq!(R.remove(far).unwrap_err().code, RILL_ERR_STALE_HANDLE);
        // The live handle survived all of that.
        assert_eq!(*lock(&R.get(h).unwrap()), 5);
        assert_eq!(*lock(&OTHER.remove(o).unwrap()), 6);
        assert_eq!(*lock(&R.remove(h).unwrap()), 5);
    }

    #[test]
    fn reusing_a_slot_bumps_its_generation_past_zero() {
        static R: Registry<u32> = Registry::new(13, "gen");
        let a = R.insert(1);
        R.remove(a).unwrap();
        let b = R.insert(2);
        assert_eq!(a & 0xFFFF_FFFF, b & 0xFFFF_FFFF, "the slot is reused");
        assert_eq!(gen_of(b), gen_of(a) + 1);
        assert_eq!(R.get(a).unwrap_err().code, RILL_ERR_STALE_HANDLE);
        // At the top of its 24 bits the generation wraps to 1: a live one is never 0.
        let idx = (b & 0xFFFF_FFFF) as usize - 1;
        R.remove(b).unwrap();
        R.slot(idx).unwrap().gen.store(GEN_MASK, SeqCst);
        let c = R.insert(3);
        assert_eq!(gen_of(c), GEN_MASK);
        R.remove(c).unwrap();
        let d = R.insert(4);
        assert_eq!(d & 0xFFFF_FFFF, b & 0xFFFF_FFFF);
        assert_eq!(gen_of(d), 1);
        assert!(R.get(c).is_err());
        assert_eq!(*lock(&R.remove(d).unwrap()), 4);
    }

    #[test]
    fn the_object_goes_with_its_last_user() {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, SeqCst);
            }
        }
        static R: Registry<Counted> = Registry::new(14, "drop");
        let h = R.insert(Counted);
        let in_use = R.get(h).unwrap();
        let removed = R.remove(h).unwrap();
        drop(removed);
        assert_eq!(DROPS.load(SeqCst), 0, "a user still holds it");
        assert!(R.get(h).is_err());
        drop(in_use);
        assert_eq!(DROPS.load(SeqCst), 1);
    }

    /// Readers look up whichever handle is current while the main thread frees it and
    /// fills the same slot again. Each object owns a heap value, so a lookup that reached
    /// a freed object would be a use after free, which Miri (`make test-sanitize`) reports;
    /// and a stale handle that reached the slot's next object would read the wrong value.
    #[test]
    fn lookups_never_touch_a_freed_or_reused_object() {
        static R: Registry<Box<u64>> = Registry::new(15, "reuse");
        static CURRENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let rounds = if cfg!(miri) { 40 } else { 5000 };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(|| {
                    while !DONE.load(SeqCst) {
                        let h = CURRENT.load(SeqCst);
                        match R.get(h) {
                            Ok(o) => assert_eq!(**lock(&o), h, "a stale handle's lookup"),
                            Err(f) if h == 0 => assert_eq!(f.code, RILL_ERR_NULL),
                            Err(f) => assert_eq!(f.code, RILL_ERR_STALE_HANDLE),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..rounds {
            let h = R.insert(Box::new(0));
            **lock(&R.get(h).unwrap()) = h;
            CURRENT.store(h, SeqCst);
            // Freed here unless a reader holds it: then when that reader lets go.
            drop(R.remove(h).unwrap());
        }
        DONE.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn lookups_race_frees() {
        static R: Registry<u64> = Registry::new(10, "race");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hs: Vec<u64> = (0..8).map(|i| R.insert(i)).collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (hs, stop) = (hs.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        for h in &hs {
                            let _ = R.get(*h).map(|o| *lock(&o));
                        }
                    }
                })
            })
            .collect();
        // Miri interprets every step: fewer rounds there, each seed a different interleaving.
        for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
            let h = R.insert(7);
            R.get(h).unwrap();
            R.remove(h).unwrap();
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        for h in hs {
            R.remove(h).unwrap();
        }
    }
}
