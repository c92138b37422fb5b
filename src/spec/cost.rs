//! What a serving fleet's GPUs cost, as its metadata prices them: `gpuHourPrice`, `gpusPerPod`
//! and `budgetPerHour`, parsed once into a [`CostSpec`].
//!
//! The cost is for people (metrics, the decisions API, `llm-scaler status`, the over-budget
//! alert); it never changes a decision. So a price that cannot be read is refused like any other
//! bad key, but a fleet whose GPU count cannot be known (static endpoints without `gpusPerPod`,
//! pods that request no `nvidia.com/gpu`) still scales: it just exports no cost, rather than a
//! wrong one.

use serde::Serialize;

use super::{Meta, PodSource, SpecError, bad};

/// The design's on-demand price of one GPU-hour (an H100 at a large cloud), the default of
/// `gpuHourPrice` unless the server configuration sets `gpu_hour_price`.
pub const DEFAULT_GPU_HOUR_PRICE: f64 = 4.0;

/// The metadata keys of [`CostSpec`]: per ScaledObject (the server sets only the price's default).
pub const COST_KEYS: &[&str] = &["gpuHourPrice", "gpusPerPod", "budgetPerHour"];

/// How one ScaledObject's fleet is priced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostSpec {
    /// Dollars per GPU-hour.
    pub gpu_hour_price: f64,
    /// GPUs per pod for pods whose spec does not say (`None`: only pods' own requests count).
    pub gpus_per_pod: Option<u32>,
    /// The fleet's budget in dollars per hour, for the over-budget alert (`None`: no budget).
    pub budget_per_hour: Option<f64>,
}

impl CostSpec {
    /// Reads the cost keys; `default_price` is the server's `gpu_hour_price`.
    ///
    /// A budget or an explicit price on static endpoints without `gpusPerPod` is refused: the
    /// user asked for a cost the scaler could never compute (static endpoints have no pod spec
    /// to read `nvidia.com/gpu` from).
    pub(super) fn parse(m: &Meta<'_>, pods: &PodSource, default_price: f64) -> Result<Self, SpecError> {
        let gpu_hour_price = m.parse("gpuHourPrice", PRICE_EXPECTED, price)?.unwrap_or(default_price);
        let gpus_per_pod = m.parse("gpusPerPod", "a whole number of GPUs per pod, >= 1 (e.g. 2 for tensor parallel 2)", |v| {
            v.parse::<u32>().ok().filter(|n| *n >= 1)
        })?;
        let budget_per_hour =
            m.parse("budgetPerHour", "dollars per hour as a plain number > 0, e.g. 120", |v| price(v).filter(|b| *b > 0.0))?;
        let priced = m.get("budgetPerHour").or_else(|| m.get("gpuHourPrice"));
        if let (PodSource::Static(_), None, Some((k, _))) = (pods, gpus_per_pod, priced) {
            return Err(SpecError::Conflict {
                key: "gpusPerPod".to_string(),
                problem: format!(
                    "required with static endpoints when \"{k}\" is set: their pods have no spec to read nvidia.com/gpu \
                     requests from, so the cost could not be computed"
                ),
            });
        }
        Ok(CostSpec { gpu_hour_price, gpus_per_pod, budget_per_hour })
    }
}

/// What a price must look like, for the error.
pub const PRICE_EXPECTED: &str = "dollars per GPU-hour as a plain number >= 0, e.g. 4 or 2.75 (no currency sign or unit)";

/// A price in dollars: a plain decimal number, finite and not negative (0 for GPUs already paid
/// for). `$4`, `4 USD` or `4/h` are refused rather than guessed at.
pub fn price(v: &str) -> Option<f64> {
    let digits = v.chars().all(|c| c.is_ascii_digit() || c == '.');
    v.parse::<f64>().ok().filter(|p| digits && p.is_finite() && *p >= 0.0)
}

/// Checks the server-wide default price (`gpu_hour_price` / `--gpu-hour-price`).
pub fn check_default_price(v: f64) -> Result<f64, SpecError> {
    if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(bad("gpuHourPrice", &v.to_string(), PRICE_EXPECTED)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_is_a_plain_non_negative_number_and_anything_else_is_refused() {
        assert_eq!(price("4"), Some(4.0));
        assert_eq!(price("2.75"), Some(2.75));
        assert_eq!(price("0"), Some(0.0));
        for v in ["$4", "4 USD", "-1", "4/h", "1e3", "NaN", "inf", ""] {
            assert_eq!(price(v), None, "{v}");
        }
        assert!(check_default_price(-1.0).is_err());
        assert_eq!(check_default_price(4.0), Ok(4.0));
    }
}
