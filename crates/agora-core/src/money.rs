//! Money: integer minor units with a currency, fees in basis points, and staged splits.
//!
//! No floats anywhere. Amounts are `i64` minor units (cents, points, micro-USDC); arithmetic
//! that could overflow is checked, and mixed currencies are an error, never a conversion.
//!
//! **Rounding rule.** A fee is `floor(amount × bps / 10 000)`: the platform never rounds up
//! in its own favour, the worker gets `amount − fee`, and the two always add up to the amount
//! (1000 bps of 100 → 10 / 90; 1200 bps of 5400 → 648 / 4752; 1000 bps of 5 → 0 / 5).
//! A staged split gives each stage but the last `floor(amount × pct / 100)` and the last
//! stage the rest, so the parts always add up to the whole (30/40/30 of 10 → 3 / 4 / 3;
//! of 1 → 0 / 0 / 1).

use std::{collections::BTreeMap, fmt};

use crate::Invalid;

/// The largest fee: 100 %.
pub const MAX_BPS: u32 = 10_000;
/// The largest exponent a currency may have (10^18 still fits an `i64`).
pub const MAX_EXPONENT: u32 = 18;

/// The largest amount one operation may name (a price, a reward, a top-up), in minor units
/// of any currency: `AGORA_MAX_AMOUNT`, by default 10^15. It keeps every amount far from
/// the `i64` edge, so sums of a few amounts cannot overflow; balances are checked again
/// where they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAmount(pub i64);

impl Default for MaxAmount {
    fn default() -> Self {
        Self(1_000_000_000_000_000)
    }
}

impl MaxAmount {
    /// Records at `path` an amount that is larger than the maximum.
    pub fn check(self, inv: &mut Invalid, path: &str, amount: i64) {
        if amount > self.0 {
            inv.push(path, format!("must be at most {} minor units", self.0));
        }
    }
}

/// A currency code: 2–10 upper-case ASCII letters (`PTS`, `USD`, `USDC`). Whether the
/// platform knows it is a separate question, answered by [`Currencies`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (2..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::field("", "must be 2-10 upper-case letters, e.g. PTS or USD"))
        }
    }

    /// For codes read back from our own storage, which only ever holds parsed ones.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The currencies this platform accepts and their exponents (how many minor units make one
/// major unit, as a power of ten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currencies(BTreeMap<Currency, u32>);

impl Default for Currencies {
    fn default() -> Self {
        let defaults = [("PTS", 0), ("CNY", 2), ("HKD", 2), ("USD", 2), ("USDC", 6)];
        Self(defaults.into_iter().map(|(c, e)| (Currency(c.to_owned()), e)).collect())
    }
}

impl Currencies {
    /// Adds a currency or changes an exponent (operators configure these).
    pub fn with(mut self, code: &str, exponent: u32) -> Result<Self, Invalid> {
        let currency = Currency::parse(code)?;
        if exponent > MAX_EXPONENT {
            return Err(Invalid::field("", format!("exponent must be 0-{MAX_EXPONENT}")));
        }
        self.0.insert(currency, exponent);
        Ok(self)
    }

    /// A known currency; an unknown or malformed code is a validation error.
    pub fn parse(&self, code: &str) -> Result<Currency, Invalid> {
        let currency = Currency::parse(code)?;
        if self.0.contains_key(&currency) {
            Ok(currency)
        } else {
            let known: Vec<&str> = self.0.keys().map(Currency::as_str).collect();
            Err(Invalid::field("", format!("unknown currency; known: {}", known.join(", "))))
        }
    }

    pub fn exponent(&self, currency: &Currency) -> Option<u32> {
        self.0.get(currency).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Currency, u32)> {
        self.0.iter().map(|(c, e)| (c, *e))
    }

    /// Parses a decimal amount in major units (`"12.5"` USD → 1250) into minor units; more
    /// decimals than the currency has is an error, never a rounding.
    pub fn parse_major(&self, currency: &Currency, text: &str) -> Result<i64, Invalid> {
        let exp = self.exponent(currency).ok_or_else(|| Invalid::field("", "unknown currency"))?;
        let bad = || Invalid::field("", format!("must be a decimal number with at most {exp} decimals"));
        let (sign, digits) = match text.trim().strip_prefix('-') {
            Some(rest) => (-1i64, rest),
            None => (1, text.trim()),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > exp as usize {
            return Err(bad());
        }
        let scale = 10i64.checked_pow(exp).ok_or_else(bad)?;
        let int: i64 = int.parse().map_err(|_| bad())?;
        let frac_minor: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<width$}", width = exp as usize).parse().map_err(|_| bad())?
        };
        int.checked_mul(scale)
            .and_then(|v| v.checked_add(frac_minor))
            .and_then(|v| v.checked_mul(sign))
            .ok_or_else(|| Invalid::field("", "amount is too large"))
    }

    /// Minor units as a decimal in major units (`1250` USD → `"12.50"`).
    pub fn format_major(&self, currency: &Currency, minor: i64) -> String {
        let exp = self.exponent(currency).unwrap_or(0) as usize;
        if exp == 0 {
            return minor.to_string();
        }
        let digits = minor.unsigned_abs().to_string();
        let padded = format!("{digits:0>width$}", width = exp + 1);
        let (int, frac) = padded.split_at(padded.len() - exp);
        format!("{}{int}.{frac}", if minor < 0 { "-" } else { "" })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amounts in {0} and {1} cannot be combined")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount out of range")]
    Overflow,
    #[error("amount must not be negative")]
    Negative,
    #[error("fee must be 0-{MAX_BPS} basis points")]
    FeeOutOfRange,
    #[error("stage percentages must be positive and add up to 100")]
    BadStages,
}

/// An amount of one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// A positive amount, as every hold, payment and top-up must be.
    pub fn positive(amount: i64, currency: Currency) -> Result<Self, Invalid> {
        if amount > 0 {
            Ok(Self { amount, currency })
        } else {
            Err(Invalid::field("amount", "must be a positive whole number of minor units"))
        }
    }

    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency.clone() })
    }

    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_sub(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency.clone() })
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency.clone(), other.currency.clone()))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// What a payment splits into: the platform's fee and the worker's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeSplit {
    pub fee: i64,
    pub net: i64,
}

/// Splits `amount` by a fee of `bps` basis points (see the module docs for the rounding).
pub fn fee_split(amount: i64, bps: u32) -> Result<FeeSplit, MoneyError> {
    if amount < 0 {
        return Err(MoneyError::Negative);
    }
    if bps > MAX_BPS {
        return Err(MoneyError::FeeOutOfRange);
    }
    // i128 so that `amount × bps` cannot overflow; the quotient is ≤ amount, so it fits back.
    let fee = i64::try_from(i128::from(amount) * i128::from(bps) / i128::from(MAX_BPS))
        .map_err(|_| MoneyError::Overflow)?;
    Ok(FeeSplit { fee, net: amount - fee })
}

/// The default staged payment plan of jobs: 30 % on the initial delivery, 40 % on the
/// revision, 30 % on the final.
pub const DEFAULT_STAGES: [u32; 3] = [30, 40, 30];

/// Splits `amount` into stages by percentages that add up to 100; the parts add up to
/// `amount` exactly (see the module docs).
pub fn split_stages(amount: i64, percents: &[u32]) -> Result<Vec<i64>, MoneyError> {
    if amount < 0 {
        return Err(MoneyError::Negative);
    }
    let sum: u64 = percents.iter().map(|p| u64::from(*p)).sum();
    if percents.is_empty() || sum != 100 || percents.contains(&0) {
        return Err(MoneyError::BadStages);
    }
    let mut parts = Vec::with_capacity(percents.len());
    let mut given = 0i64;
    for p in &percents[..percents.len() - 1] {
        let part =
            i64::try_from(i128::from(amount) * i128::from(*p) / 100).map_err(|_| MoneyError::Overflow)?;
        given += part;
        parts.push(part);
    }
    parts.push(amount - given);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn fees_round_down_in_the_workers_favour() {
        assert_eq!(fee_split(100, 1000), Ok(FeeSplit { fee: 10, net: 90 }));
        assert_eq!(fee_split(5400, 1200), Ok(FeeSplit { fee: 648, net: 4752 }));
        assert_eq!(fee_split(5, 1000), Ok(FeeSplit { fee: 0, net: 5 }));
        assert_eq!(fee_split(19, 1000), Ok(FeeSplit { fee: 1, net: 18 }));
        assert_eq!(fee_split(100, 0), Ok(FeeSplit { fee: 0, net: 100 }));
        assert_eq!(fee_split(100, 10_000), Ok(FeeSplit { fee: 100, net: 0 }));
        assert_eq!(fee_split(i64::MAX, 10_000), Ok(FeeSplit { fee: i64::MAX, net: 0 }));
        assert_eq!(fee_split(100, 10_001), Err(MoneyError::FeeOutOfRange));
        assert_eq!(fee_split(-1, 10), Err(MoneyError::Negative));
    }

    #[test]
    fn stages_add_up_to_the_whole() {
        assert_eq!(split_stages(1000, &DEFAULT_STAGES), Ok(vec![300, 400, 300]));
        assert_eq!(split_stages(10, &DEFAULT_STAGES), Ok(vec![3, 4, 3]));
        assert_eq!(split_stages(1, &DEFAULT_STAGES), Ok(vec![0, 0, 1]));
        assert_eq!(split_stages(7, &[50, 50]), Ok(vec![3, 4]));
        assert_eq!(split_stages(7, &[100]), Ok(vec![7]));
        assert_eq!(split_stages(7, &[30, 30]), Err(MoneyError::BadStages));
        assert_eq!(split_stages(7, &[0, 100]), Err(MoneyError::BadStages));
        assert_eq!(split_stages(7, &[]), Err(MoneyError::BadStages));
    }

    #[test]
    fn arithmetic_is_checked_and_single_currency() {
        let a = Money::new(i64::MAX, usd());
        assert_eq!(a.checked_add(&Money::new(1, usd())), Err(MoneyError::Overflow));
        let pts = Money::new(1, Currency::parse("PTS").unwrap());
        assert!(matches!(Money::new(1, usd()).checked_add(&pts), Err(MoneyError::CurrencyMismatch(..))));
        assert_eq!(Money::new(5, usd()).checked_sub(&Money::new(7, usd())), Ok(Money::new(-2, usd())));
        assert!(Money::positive(0, usd()).is_err());
    }

    #[test]
    fn currencies_know_their_exponents() {
        let c = Currencies::default();
        let usdc = c.parse("USDC").unwrap();
        assert_eq!(c.exponent(&usdc), Some(6));
        assert!(c.parse("XYZ").is_err());
        assert!(c.parse("usd").is_err());
        let c = c.with("XYZ", 3).unwrap();
        assert_eq!(c.exponent(&c.parse("XYZ").unwrap()), Some(3));
        assert!(Currencies::default().with("BIG", 19).is_err());
    }

    #[test]
    fn major_units_parse_exactly() {
        let c = Currencies::default();
        let (usd, pts, usdc) = (usd(), c.parse("PTS").unwrap(), c.parse("USDC").unwrap());
        assert_eq!(c.parse_major(&usd, "12.5"), Ok(1250));
        assert_eq!(c.parse_major(&usd, "12"), Ok(1200));
        assert_eq!(c.parse_major(&usd, "0.07"), Ok(7));
        assert_eq!(c.parse_major(&usd, "-3.10"), Ok(-310));
        assert_eq!(c.parse_major(&usdc, "1.000001"), Ok(1_000_001));
        assert_eq!(c.parse_major(&pts, "100"), Ok(100));
        for bad in ["1.234", "", ".5", "1e3", "abc", "1.2.3", "99999999999999999999"] {
            assert!(c.parse_major(&usd, bad).is_err(), "{bad}");
        }
        assert!(c.parse_major(&pts, "1.5").is_err());
        assert_eq!(c.format_major(&usd, 1250), "12.50");
        assert_eq!(c.format_major(&usd, 7), "0.07");
        assert_eq!(c.format_major(&usd, -310), "-3.10");
        assert_eq!(c.format_major(&pts, 42), "42");
    }

    proptest! {
        #[test]
        fn fee_and_net_always_make_the_amount(amount in 0i64..=i64::MAX, bps in 0u32..=MAX_BPS) {
            let s = fee_split(amount, bps).unwrap();
            prop_assert_eq!(s.fee + s.net, amount);
            prop_assert!(s.fee >= 0 && s.net >= 0);
        }

        #[test]
        fn stage_parts_always_make_the_whole(amount in 0i64..=i64::MAX / 100, cuts in proptest::collection::vec(1u32..100, 0..5)) {
            // Random percentages adding up to 100: cut points on 0..100.
            let mut points: Vec<u32> = cuts.into_iter().collect();
            points.sort_unstable();
            points.dedup();
            let mut percents = Vec::new();
            let mut prev = 0;
            for p in points.into_iter().chain([100]) {
                percents.push(p - prev);
                prev = p;
            }
            let parts = split_stages(amount, &percents).unwrap();
            prop_assert_eq!(parts.len(), percents.len());
            prop_assert_eq!(parts.iter().sum::<i64>(), amount);
            prop_assert!(parts.iter().all(|p| *p >= 0));
        }

        #[test]
        fn major_units_round_trip(minor in -1_000_000_000_000i64..1_000_000_000_000) {
            let c = Currencies::default();
            for code in ["PTS", "USD", "USDC"] {
                let cur = c.parse(code).unwrap();
                prop_assert_eq!(c.parse_major(&cur, &c.format_major(&cur, minor)), Ok(minor));
            }
        }
    }
}
