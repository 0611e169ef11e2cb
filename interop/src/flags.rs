//! Command-line flags the way Go's `flag` package reads them, since the interop programs of
//! every implementation share flag names and a runner passes the same strings to each:
//! `-name` or `--name`, values as `--name=v` or `--name v`, booleans as `--name` or
//! `--name=true|false`.

use std::collections::HashMap;

/// The flags a program knows: booleans and flags that take a value.
pub struct Spec {
    pub bools: &'static [&'static str],
    pub values: &'static [&'static str],
}

/// Parsed flags.
#[derive(Debug, Default)]
pub struct Flags {
    set: HashMap<String, String>,
}

/// `Err` carries a message for the user; `Ok(None)` means help was asked for.
pub fn parse(spec: &Spec, args: impl IntoIterator<Item = String>) -> Result<Option<Flags>, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!(
                "unexpected argument {arg:?} (flags look like --name=value)"
            ));
        };
        if body == "h" || body == "help" {
            return Ok(None);
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let value = if spec.bools.contains(&name) {
            let v = inline.unwrap_or_else(|| "true".to_owned());
            if parse_bool(&v).is_none() {
                return Err(format!("--{name} takes true or false, not {v:?}"));
            }
            v
        } else if spec.values.contains(&name) {
            match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?,
            }
        } else {
            return Err(format!("unknown flag --{name}"));
        };
        flags.set.insert(name.to_owned(), value);
    }
    Ok(Some(flags))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl Flags {
    pub fn bool(&self, name: &str) -> bool {
        self.set
            .get(name)
            .and_then(|v| parse_bool(v))
            .unwrap_or(false)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.set
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A port number, `default` when absent.
    pub fn port(&self, name: &str, default: u16) -> Result<u16, String> {
        match self.str(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} must be a port number, not {v:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        bools: &["use_tls"],
        values: &["port", "test_case"],
    };

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_style_forms() {
        let f = parse(&SPEC, args(&["-use_tls", "--port", "80", "--test_case=x"]))
            .unwrap()
            .unwrap();
        assert!(f.bool("use_tls"));
        assert_eq!(f.port("port", 1).unwrap(), 80);
        assert_eq!(f.str("test_case"), Some("x"));
        let f = parse(&SPEC, args(&["--use_tls=false"])).unwrap().unwrap();
        assert!(!f.bool("use_tls"));
        assert_eq!(f.port("port", 7).unwrap(), 7);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(parse(&SPEC, args(&["--nope"]))
            .unwrap_err()
            .contains("unknown flag"));
        assert!(parse(&SPEC, args(&["--port"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(&SPEC, args(&["--use_tls=maybe"])).is_err());
        assert!(parse(&SPEC, args(&["stray"])).is_err());
        let f = parse(&SPEC, args(&["--port=x"])).unwrap().unwrap();
        assert!(f.port("port", 1).is_err());
        assert!(parse(&SPEC, args(&["--help"])).unwrap().is_none());
    }
}
