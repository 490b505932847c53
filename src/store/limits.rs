//! What a job may ask of the resources its handler gives it:
//! `payload.options.memory_max` and `payload.options.tasks_max`.
//!
//! The queue only carries them, from the request into the stored payload
//! and from there into the [`JobContext`](crate::queue::handler::JobContext). A
//! handler that can enforce them (the `command` handler, in a cgroup) checks
//! them against its operator's caps; every other handler refuses them, so a
//! limit a job asked for is never silently ignored.
//!
//! Sizes are written as systemd writes `MemoryMax=`: bytes, or a whole
//! number with `K`, `M`, `G` or `T` (powers of 1024). One parser serves the
//! request, a row read back from the table and `JOB_COMMAND_MEMORY_MAX`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The smallest `memory_max`: below it no program starts, and a bare `512`
/// meant as megabytes is caught rather than taken as 512 bytes.
pub const MIN_MEMORY_BYTES: u64 = 1 << 20;
/// The largest `tasks_max`: the kernel's own ceiling on pids.
pub const MAX_TASKS: u64 = 4_194_304;

/// A number of bytes, read from `512M`-style text or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Reads a size: bytes, or a whole number with `K`, `M`, `G` or `T`
/// (powers of 1024, either case; `KB`/`KiB`-style spellings and a space
/// before the unit read the same). The one size grammar of cronq's
/// settings and job options.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected = || {
        format!(
            "{text:?} is not a size: expected bytes, or a whole number with K, M, G or T \
             (powers of 1024), e.g. 512M"
        )
    };
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = trimmed.split_at(digits);
    let shift = match unit.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(expected()),
    };
    let n: u64 = number.parse().map_err(|_| expected())?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl ByteSize {
    /// Parses a size ([`parse_size`]) of at least [`MIN_MEMORY_BYTES`].
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        ByteSize::bytes(parse_size(text)?)
    }

    /// `bytes` itself, if it is at least [`MIN_MEMORY_BYTES`].
    pub fn bytes(bytes: u64) -> Result<ByteSize, String> {
        if bytes < MIN_MEMORY_BYTES {
            return Err(format!(
                "{bytes} bytes is less than the smallest size, 1M (sizes are in bytes unless \
                 they end in K, M, G or T)"
            ));
        }
        Ok(ByteSize(bytes))
    }
}

/// Units, largest first, for showing a size.
const UNITS: [(char, u32); 4] = [('T', 40), ('G', 30), ('M', 20), ('K', 10)];

/// The largest unit that divides it exactly: `512M`, `1536K`, `1000001`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in UNITS {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        match Value::deserialize(d)? {
            Value::String(text) => ByteSize::parse(&text),
            Value::Number(n) => match n.as_u64() {
                Some(bytes) => ByteSize::bytes(bytes),
                None => Err(format!(
                    "{n} is not a size: expected a whole number of bytes"
                )),
            },
            other => Err(format!(
                "expected a size such as 512M or a number of bytes, got {other}"
            )),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// The limits one job asked for; `None`: only the operator's cap applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_max: Option<ByteSize>,
    pub tasks_max: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory_max.is_none() && self.tasks_max.is_none()
    }

    /// The option names that are set, for a handler that takes none.
    pub fn set_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.memory_max.is_some() {
            fields.push("memory_max");
        }
        if self.tasks_max.is_some() {
            fields.push("tasks_max");
        }
        fields
    }

    /// The ranges every job is held to, whatever its handler; the message
    /// starts with the option's name.
    pub fn check_ranges(&self) -> Result<(), String> {
        if let Some(n) = self.tasks_max.filter(|n| *n == 0 || *n > MAX_TASKS) {
            return Err(format!("tasks_max: must be from 1 to {MAX_TASKS}, got {n}"));
        }
        Ok(())
    }

    /// The limits of a stored payload's `options`, as another program may
    /// have written them: the error names the option at fault.
    pub fn from_options(options: Option<&Value>) -> Result<Limits, String> {
        let Some(Value::Object(options)) = options else {
            return Ok(Limits::default());
        };
        let memory_max = match options.get("memory_max") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(ByteSize::deserialize(v.clone()).map_err(|e| format!("memory_max: {e}"))?)
            }
        };
        let tasks_max =
            match options.get("tasks_max") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    format!("tasks_max: expected a whole number of tasks, got {v}")
                })?),
            };
        let limits = Limits {
            memory_max,
            tasks_max,
        };
        limits.check_ranges()?;
        Ok(limits)
    }

    /// Writes the limits that are set into a payload's `options`.
    pub fn write_into(&self, options: &mut Map<String, Value>) {
        if let Some(m) = self.memory_max {
            options.insert("memory_max".into(), m.0.into());
        }
        if let Some(n) = self.tasks_max {
            options.insert("tasks_max".into(), n.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_parse_as_systemd_writes_them() {
        assert_eq!(ByteSize::parse("512M"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("512m"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("2G"), Ok(ByteSize(2 << 30)));
        assert_eq!(ByteSize::parse("1T"), Ok(ByteSize(1 << 40)));
        assert_eq!(ByteSize::parse("1024K"), Ok(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse(" 1048576 "), Ok(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse("512MB"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("2 GiB"), Ok(ByteSize(2 << 30)));
        for bad in ["", "M", "12.5M", "-1M", "5X", "0x100000", "1 M B"] {
            let err = ByteSize::parse(bad).unwrap_err();
            assert!(err.contains("is not a size"), "{bad:?}: {err}");
        }
        assert!(
            ByteSize::parse("512")
                .unwrap_err()
                .contains("less than the smallest")
        );
        assert!(ByteSize::parse("0").is_err());
        assert!(
            ByteSize::parse("99999999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn sizes_show_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(512 << 20).to_string(), "512M");
        assert_eq!(ByteSize(3 << 30).to_string(), "3G");
        assert_eq!(ByteSize(1536 << 10).to_string(), "1536K");
        assert_eq!(ByteSize(1_000_001).to_string(), "1000001");
    }

    #[test]
    fn sizes_deserialize_from_text_or_bytes() {
        let size: ByteSize = serde_json::from_value(json!("64M")).unwrap();
        assert_eq!(size, ByteSize(64 << 20));
        let size: ByteSize = serde_json::from_value(json!(2097152)).unwrap();
        assert_eq!(size, ByteSize(2 << 20));
        assert!(serde_json::from_value::<ByteSize>(json!(-1)).is_err());
        assert!(serde_json::from_value::<ByteSize>(json!(true)).is_err());
        assert_eq!(
            serde_json::to_value(ByteSize(1 << 20)).unwrap(),
            json!(1048576)
        );
    }

    #[test]
    fn stored_options_are_read_back_or_named_when_wrong() {
        let l = Limits::from_options(Some(
            &json!({"retry_count": 3, "memory_max": 67108864, "tasks_max": 8}),
        ))
        .unwrap();
        assert_eq!(l.memory_max, Some(ByteSize(64 << 20)));
        assert_eq!(l.tasks_max, Some(8));
        assert_eq!(Limits::from_options(None), Ok(Limits::default()));
        assert_eq!(
            Limits::from_options(Some(&json!("not an object"))),
            Ok(Limits::default())
        );
        let err = Limits::from_options(Some(&json!({"memory_max": "lots"}))).unwrap_err();
        assert!(
            err.starts_with("memory_max: \"lots\" is not a size"),
            "{err}"
        );
        let err = Limits::from_options(Some(&json!({"tasks_max": "8"}))).unwrap_err();
        assert!(
            err.starts_with("tasks_max: expected a whole number"),
            "{err}"
        );
        let err = Limits::from_options(Some(&json!({"tasks_max": 0}))).unwrap_err();
        assert_eq!(err, "tasks_max: must be from 1 to 4194304, got 0");
    }

    #[test]
    fn limits_round_trip_through_options() {
        let l = Limits {
            memory_max: Some(ByteSize(256 << 20)),
            tasks_max: Some(32),
        };
        let mut options = Map::new();
        l.write_into(&mut options);
        assert_eq!(
            Value::Object(options.clone()),
            json!({"memory_max": 268435456, "tasks_max": 32})
        );
        assert_eq!(Limits::from_options(Some(&Value::Object(options))), Ok(l));
        assert_eq!(l.set_fields(), ["memory_max", "tasks_max"]);
        assert!(Limits::default().is_empty());
    }
}
