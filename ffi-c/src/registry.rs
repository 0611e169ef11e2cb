//! Handles: C holds a u64 naming a slot of a per-kind table, never a pointer. A handle
//! packs the kind (8 bits), the slot's generation (24 bits) and index + 1 (32 bits), so 0,
//! a freed handle, a handle of a reused slot and a handle of another kind are all caught.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::result::{Fail, R, RILL_ERR_NULL, RILL_ERR_STALE_HANDLE};

const GEN_MASK: u32 = 0x00FF_FFFF;

pub(crate) struct Registry<T> {
    kind: u8,
    name: &'static str,
    slots: Mutex<Slots<T>>,
}

struct Slots<T> {
    entries: Vec<Slot<T>>,
    free: Vec<u32>,
}

struct Slot<T> {
    gen: u32,
    obj: Option<Arc<Mutex<T>>>,
}

/// Locks, ignoring poisoning: a panic was already turned into RILL_ERR_PANIC, and the data
/// behind these locks stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Registry<T> {
    pub const fn new(kind: u8, name: &'static str) -> Registry<T> {
        Registry {
            kind,
            name,
            slots: Mutex::new(Slots {
                entries: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    pub fn insert(&self, obj: T) -> u64 {
        let obj = Arc::new(Mutex::new(obj));
        let mut s = lock(&self.slots);
        let idx = match s.free.pop() {
            Some(i) => i,
            None => {
                s.entries.push(Slot { gen: 1, obj: None });
                (s.entries.len() - 1) as u32
            }
        };
        let slot = &mut s.entries[idx as usize];
        slot.obj = Some(obj);
        ((self.kind as u64) << 56) | ((slot.gen as u64) << 32) | (idx as u64 + 1)
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

    fn stale(&self, h: u64, why: &str) -> Fail {
        Fail::new(
            RILL_ERR_STALE_HANDLE,
            format!("{} handle {h:#x}: {why}", self.name),
        )
    }

    /// The object behind a live handle.
    pub fn get(&self, h: u64) -> R<Arc<Mutex<T>>> {
        let (idx, gen) = self.index(h)?;
        let s = lock(&self.slots);
        match s.entries.get(idx) {
            Some(Slot {
                gen: g,
                obj: Some(o),
            }) if *g == gen => Ok(o.clone()),
            _ => Err(self.stale(h, "freed or stale")),
        }
    }

    /// Frees the slot; the object goes when its last in-flight user lets go of it.
    pub fn remove(&self, h: u64) -> R<Arc<Mutex<T>>> {
        let (idx, gen) = self.index(h)?;
        let mut s = lock(&self.slots);
        let taken = match s.entries.get_mut(idx) {
            Some(slot) if slot.gen == gen && slot.obj.is_some() => {
                slot.gen = (slot.gen + 1) & GEN_MASK;
                if slot.gen == 0 {
                    slot.gen = 1;
                }
                slot.obj.take()
            }
            _ => None,
        };
        match taken {
            Some(o) => {
                s.free.push(idx as u32);
                Ok(o)
            }
            None => Err(self.stale(h, "freed or stale (double free?)")),
        }
    }
}
