//! Option structs that grow: each starts with `size`, which `*_options_init` sets to the
//! `sizeof` of the header the program was built with. Fields are only ever appended, so an
//! earlier header's struct is a prefix of this one: its fields are read, the rest keep
//! their defaults. Any other size means options not filled by the init function.

use crate::result::{Fail, R};

/// An earlier header's struct, named by its first missing field's offset: its `sizeof`
/// then (the fields before that offset, padded to `align`) and how many bytes they take.
pub(crate) const fn earlier(first_missing: usize, align: usize) -> (usize, usize) {
    (first_missing.div_ceil(align) * align, first_missing)
}

/// The options at `p` as this version reads them: `defaults` with the fields the program
/// knew copied over. `earlier` lists each earlier header's (`sizeof`, field bytes), as
/// `earlier()` gives them; `what` names the struct ("channel_options") in the error.
///
/// # Safety
/// `p` is non-NULL and points to a struct `T` of this version or of one in `earlier`
/// whose first field is its `size: usize`, with at least `size` readable bytes; `T`'s
/// fields are plain data (integers, bools C wrote as 0 or 1, pointers).
pub(crate) unsafe fn read<T>(
    p: *const T,
    defaults: T,
    earlier: &[(usize, usize)],
    what: &str,
) -> R<T> {
    // SAFETY: every version's struct starts with `size` (the caller's contract).
    let size = unsafe { p.cast::<usize>().read_unaligned() };
    let fields = if size == std::mem::size_of::<T>() {
        size
    } else if let Some(&(_, fields)) = earlier.iter().find(|(s, _)| *s == size) {
        // Not `size` bytes: an old struct's tail padding may be where a new field is now.
        fields
    } else {
        return Err(Fail::invalid(format!(
            "opts.size is wrong: fill the options with rill_{what}_init"
        )));
    };
    let mut o = defaults;
    // SAFETY: `p` has at least `fields` readable bytes (`fields <= size`, the contract);
    // `o` is a distinct local of the full size; the bytes copied are whole fields of plain
    // types.
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&mut o as *mut T).cast::<u8>(), fields)
    };
    Ok(o)
}
