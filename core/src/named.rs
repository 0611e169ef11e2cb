//! Values the bindings take by name (a protocol, an HTTP version, an idempotency level):
//! one parser, and one message for a name that stands for none, in every language.

use crate::error::Error;

/// A closed set of values, each with the name the bindings use for it.
pub trait Named: Copy + 'static {
    /// Every value, in the order a message lists them.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;

    /// The value called `name`, if one is.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// The `T` called `name`, or an error that lists the names; `what` is the option as the
/// caller spells it (`protocol`, `http_version`, `httpVersion`).
pub fn by_name<T: Named>(what: &str, name: &str) -> Result<T, Error> {
    T::from_name(name).ok_or_else(|| {
        let names: Vec<String> = T::ALL.iter().map(|v| format!("'{}'", v.name())).collect();
        Error::invalid(format!(
            "unknown {what} {name:?}: use one of {}",
            names.join(", ")
        ))
    })
}
