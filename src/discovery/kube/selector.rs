//! A Kubernetes `LabelSelector` rendered as the label-selector string the API's list and watch
//! calls take (`app=vllm,tier in (a,b)`), canonically, so equal selectors share one watch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::DiscoveryError;

/// Pure conversion, unit-tested: LabelSelector -> selector string; errors on an empty selector
/// (would select every pod in the namespace) and on unknown operators.
///
/// Output is canonical (matchLabels by key, then expressions sorted, values sorted and
/// deduplicated), so equal selectors give equal strings and thus share one [`super::PodWatch`].
pub fn selector_string(sel: &LabelSelector) -> Result<String, DiscoveryError> {
    let mut terms: Vec<String> = sel.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    let mut expressions = sel.match_expressions.iter().flatten().map(expression_string).collect::<Result<Vec<_>, _>>()?;
    expressions.sort();
    expressions.dedup();
    terms.extend(expressions);
    if terms.is_empty() {
        return Err(DiscoveryError::EmptySelector { workload: None });
    }
    Ok(terms.join(","))
}

/// One matchExpressions entry in label-selector syntax (`k in (a,b)`, `k notin (a)`, `k`, `!k`).
fn expression_string(req: &LabelSelectorRequirement) -> Result<String, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidSelector { workload: None, reason };
    if req.key.is_empty() {
        return Err(invalid("matchExpressions entry with an empty key".into()));
    }
    let mut values: Vec<&str> = req.values.iter().flatten().map(String::as_str).collect();
    values.sort_unstable();
    values.dedup();
    let key = &req.key;
    let op = req.operator.as_str();
    match op {
        "In" | "NotIn" if values.is_empty() => Err(invalid(format!("operator {op} on key {key:?} needs at least one value"))),
        "In" => Ok(format!("{key} in ({})", values.join(","))),
        "NotIn" => Ok(format!("{key} notin ({})", values.join(","))),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(invalid(format!("operator {op} on key {key:?} must not have values"))),
        "Exists" => Ok(key.clone()),
        "DoesNotExist" => Ok(format!("!{key}")),
        _ => Err(invalid(format!("unknown operator {op:?} on key {key:?} (expected In, NotIn, Exists or DoesNotExist)"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn selector_match_labels_only_sorted() {
        let sel = LabelSelector { match_labels: labels(&[("tier", "gpu"), ("app", "vllm")]), match_expressions: None };
        assert_eq!(selector_string(&sel).expect("selector"), "app=vllm,tier=gpu");
    }

    #[test]
    fn selector_each_operator() {
        let cases = [
            (req("tier", "In", &["b", "a"]), "tier in (a,b)"),
            (req("tier", "NotIn", &["x"]), "tier notin (x)"),
            (req("gpu", "Exists", &[]), "gpu"),
            (req("canary", "DoesNotExist", &[]), "!canary"),
        ];
        for (expr, want) in cases {
            let sel = LabelSelector { match_labels: None, match_expressions: Some(vec![expr]) };
            assert_eq!(selector_string(&sel).expect("selector"), want);
        }
    }

    #[test]
    fn selector_labels_and_expressions_stable() {
        let exprs = vec![req("tier", "In", &["b", "a", "b"]), req("canary", "DoesNotExist", &[]), req("gpu", "Exists", &[])];
        let mut reversed = exprs.clone();
        reversed.reverse();
        let want = "app=vllm,!canary,gpu,tier in (a,b)";
        for match_expressions in [exprs, reversed] {
            let sel = LabelSelector { match_labels: labels(&[("app", "vllm")]), match_expressions: Some(match_expressions) };
            assert_eq!(selector_string(&sel).expect("selector"), want);
        }
    }

    #[test]
    fn selector_empty_is_an_error() {
        for sel in [LabelSelector::default(), LabelSelector { match_labels: Some(BTreeMap::new()), match_expressions: Some(vec![]) }] {
            let err = selector_string(&sel).expect_err("empty selector");
            assert!(matches!(err, DiscoveryError::EmptySelector { .. }), "{err}");
            assert!(err.to_string().contains("every pod"), "{err}");
        }
    }

    #[test]
    fn selector_bad_expressions_are_errors() {
        for (expr, needle) in [
            (req("tier", "Gt", &["1"]), "unknown operator \"Gt\""),
            (req("tier", "In", &[]), "needs at least one value"),
            (req("tier", "Exists", &["a"]), "must not have values"),
            (req("", "Exists", &[]), "empty key"),
        ] {
            let sel = LabelSelector { match_labels: labels(&[("app", "vllm")]), match_expressions: Some(vec![expr]) };
            let err = selector_string(&sel).expect_err("invalid selector");
            assert!(matches!(err, DiscoveryError::InvalidSelector { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
