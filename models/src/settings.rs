//! The ranges of numeric settings, and the one check that holds a command line and a
//! checkpoint's metadata to them.
//!
//! Each range names the setting twice: as the command-line flag a user types (`--latent`) and
//! as the key its checkpoint metadata stores (`latent`), so the same failed check reads
//! "--latent 1000000000: must be from 1 to 4,096" on the command line and
//! "run/checkpoint.safetensors: metadata 'latent' = '1000000000': must be from 1 to 4,096, as
//! for --latent on the command line; …" when a file says so. The help of each flag prints its range from the
//! same constant ([`Count::describe`], [`Real::describe`]).

use crate::Error;

/// A whole-number setting: sizes, counts, steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub key: &'static str,
    pub flag: &'static str,
    pub min: usize,
    /// `usize::MAX` for "no upper bound" (a limit larger than the data means all of it).
    pub max: usize,
}

impl Count {
    pub const fn new(key: &'static str, flag: &'static str, min: usize, max: usize) -> Count {
        Count {
            key,
            flag,
            min,
            max,
        }
    }

    /// "from 1 to 4096", or "at least 1" without an upper bound.
    pub fn describe(&self) -> String {
        if self.max == usize::MAX {
            format!("at least {}", self.min)
        } else {
            format!("from {} to {}", group(self.min), group(self.max))
        }
    }

    pub fn check(&self, value: usize) -> Result<usize, Error> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(Error::setting(
                self.key,
                self.flag,
                value,
                format!("must be {}", self.describe()),
            ))
        }
    }

    /// Parses a metadata value strictly (digits only: no sign, no fraction) and checks it.
    pub fn parse(&self, text: &str) -> Result<usize, Error> {
        let value = parse_whole(text).ok_or_else(|| {
            Error::setting(
                self.key,
                self.flag,
                text,
                format!("is not a whole number {}", self.describe()),
            )
        })?;
        self.check(value)
    }
}

/// A real-valued setting: rates and weights. Always finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Real {
    pub key: &'static str,
    pub flag: &'static str,
    pub min: f64,
    pub max: f64,
    /// Whether `min` itself is refused (a learning rate must be more than 0).
    pub above_min: bool,
    /// Whether `max` itself is refused (a held-out fraction must be less than 1).
    pub below_max: bool,
}

impl Real {
    /// A range that includes both ends.
    pub const fn closed(key: &'static str, flag: &'static str, min: f64, max: f64) -> Real {
        Real {
            key,
            flag,
            min,
            max,
            above_min: false,
            below_max: false,
        }
    }
    /// A range that excludes `min` and includes `max`.
    pub const fn above(key: &'static str, flag: &'static str, min: f64, max: f64) -> Real {
        Real {
            above_min: true,
            ..Real::closed(key, flag, min, max)
        }
    }
    /// A range that excludes both ends.
    pub const fn open(key: &'static str, flag: &'static str, min: f64, max: f64) -> Real {
        Real {
            above_min: true,
            below_max: true,
            ..Real::closed(key, flag, min, max)
        }
    }

    /// "more than 0 and at most 10", "from 0 to 10000", …
    pub fn describe(&self) -> String {
        let low = if self.above_min {
            format!("more than {}", self.min)
        } else {
            format!("at least {}", self.min)
        };
        let high = if self.below_max {
            format!("less than {}", self.max)
        } else {
            format!("at most {}", self.max)
        };
        if !self.above_min && !self.below_max {
            format!("from {} to {}", self.min, self.max)
        } else {
            format!("{low} and {high}")
        }
    }

    pub fn check(&self, value: f64) -> Result<f64, Error> {
        let low_ok = if self.above_min {
            value > self.min
        } else {
            value >= self.min
        };
        let high_ok = if self.below_max {
            value < self.max
        } else {
            value <= self.max
        };
        if value.is_finite() && low_ok && high_ok {
            Ok(value)
        } else {
            Err(Error::setting(
                self.key,
                self.flag,
                value,
                format!("must be {}", self.describe()),
            ))
        }
    }

    /// Parses a metadata value (a decimal number) and checks it.
    pub fn parse(&self, text: &str) -> Result<f64, Error> {
        let value: f64 = text.trim().parse().map_err(|_| {
            Error::setting(
                self.key,
                self.flag,
                text,
                format!("is not a number {}", self.describe()),
            )
        })?;
        self.check(value)
    }
}

/// A whole number written with digits only (shared with the optimizers' checkpoint metadata).
pub use ferrograd_nn::checkpoint::parse_whole;

/// A seed: any 64-bit whole number, digits only.
pub fn parse_seed(key: &'static str, flag: &'static str, text: &str) -> Result<u64, Error> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::setting(
            key,
            flag,
            text,
            "is not a whole number from 0 to 2^64 - 1",
        ));
    }
    text.parse()
        .map_err(|_| Error::setting(key, flag, text, "is not a whole number from 0 to 2^64 - 1"))
}

/// Each setting that differs between a checkpoint's metadata (`saved`) and this run's
/// (`wanted`), as "--lr 0.001 in the checkpoint, 0.002 now" joined by "; ", the flag named by
/// `flag_of(key)`; `None` when they agree. What a `--resume` with other flags is told.
pub fn differences(
    saved: &std::collections::BTreeMap<String, String>,
    wanted: &std::collections::BTreeMap<String, String>,
    flag_of: &dyn Fn(&str) -> String,
) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> = saved.keys().chain(wanted.keys()).collect();
    let none = String::from("(none)");
    let diffs: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            let (a, b) = (
                saved.get(k).unwrap_or(&none),
                wanted.get(k).unwrap_or(&none),
            );
            (a != b).then(|| format!("{} {a} in the checkpoint, {b} now", flag_of(k)))
        })
        .collect();
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// 60000 as "60,000", so large bounds read at a glance.
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const LATENT: Count = Count::new("latent", "--latent", 1, 4096);
    const LR: Real = Real::above("lr", "--lr", 0.0, 10.0);

    #[test]
    fn counts_name_the_flag_and_the_range() {
        assert_eq!(LATENT.check(16), Ok(16));
        let e = LATENT.check(1_000_000_000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--latent 1000000000: must be from 1 to 4,096"
        );
        let e = LATENT.check(0).unwrap_err();
        assert!(e.to_string().starts_with("--latent 0:"), "{e}");
        let unbounded = Count::new("train_limit", "--train-limit", 1, usize::MAX);
        assert_eq!(unbounded.describe(), "at least 1");
    }

    #[test]
    fn metadata_values_parse_strictly() {
        for bad in [
            "-1",
            "+1",
            "1.0",
            " 1",
            "abc",
            "",
            "99999999999999999999999",
        ] {
            let e = LATENT.parse(bad).unwrap_err();
            assert!(matches!(e, Error::Setting { key: "latent", .. }));
            let text = e
                .in_file(Path::new("run/checkpoint.safetensors"))
                .to_string();
            assert!(
                text.contains("run/checkpoint.safetensors")
                    && text.contains("'latent'")
                    && text.contains(&format!("'{bad}'"))
                    && text.contains("--latent"),
                "{text}"
            );
        }
        assert_eq!(LATENT.parse("12"), Ok(12));
        assert!(parse_seed("seed", "--seed", "-1").is_err());
        assert_eq!(
            parse_seed("seed", "--seed", "18446744073709551615"),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn reals_refuse_non_finite_values_and_open_ends() {
        assert_eq!(LR.check(1e-3), Ok(1e-3));
        for bad in [0.0, -1.0, 11.0, f64::NAN, f64::INFINITY] {
            let e = LR.check(bad).unwrap_err();
            assert!(e.to_string().starts_with("--lr "), "{e}");
            assert!(e.to_string().contains("more than 0 and at most 10"), "{e}");
        }
        assert!(LR.parse("nan").is_err());
        let held = Real::open("held_out_fraction", "--held-out", 0.0, 1.0);
        assert!(held.check(1.0).is_err() && held.check(0.0).is_err());
        assert_eq!(held.check(0.5), Ok(0.5));
    }
}
