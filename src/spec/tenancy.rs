//! Which namespaces a ScaledObject may read pods from.
//!
//! Why this exists: the scaler's RBAC reaches every namespace it serves, and a ScaledObject's
//! `namespace` metadata key chooses where its pods are listed and scraped. Without a rule, anyone
//! who may write a ScaledObject in `team-a` could point it at `team-b` and read `team-b`'s load
//! back through their own replica count and the decisions API. So by default a ScaledObject
//! reaches only its own namespace; the operator of the scaler widens that explicitly with rules
//! `FROM:TO` (either side may be `*`), e.g. `ml-platform:team-b` or `*:shared-models`.

use std::fmt;

/// One side of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(String),
}

impl Pattern {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "*" => Some(Pattern::Any),
            name if is_namespace_name(name) => Some(Pattern::Exact(name.to_string())),
            _ => None,
        }
    }

    fn matches(&self, namespace: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(n) => n == namespace,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Exact(n) => f.write_str(n),
        }
    }
}

/// Whether `s` is a valid Kubernetes namespace name (an RFC 1123 label).
pub fn is_namespace_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

/// The cross-namespace allowance of a server: empty (the default) means a ScaledObject reaches
/// only its own namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceAccess {
    rules: Vec<(Pattern, Pattern)>,
}

/// A rule that is not `FROM:TO` with namespace names or `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{rule}\" is not a cross-namespace rule: expected FROM:TO with namespace names or *, e.g. ml-platform:team-b, *:shared-models or *:*"
)]
pub struct RuleError {
    /// The rule as given.
    pub rule: String,
}

impl NamespaceAccess {
    /// Every ScaledObject reaches only its own namespace.
    pub const fn own_namespace_only() -> Self {
        NamespaceAccess { rules: Vec::new() }
    }

    /// Parses rules `FROM:TO`; a lone `*` means `*:*` (every namespace may reach every other).
    pub fn parse<'a>(rules: impl IntoIterator<Item = &'a str>) -> Result<Self, RuleError> {
        let mut out = Vec::new();
        for raw in rules.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
            let err = || RuleError { rule: raw.to_string() };
            let (from, to) = if raw == "*" { ("*", "*") } else { raw.split_once(':').ok_or_else(err)? };
            let from = Pattern::parse(from.trim()).ok_or_else(err)?;
            let to = Pattern::parse(to.trim()).ok_or_else(err)?;
            out.push((from, to));
        }
        Ok(NamespaceAccess { rules: out })
    }

    /// Whether a ScaledObject in `from` may read pods in `to`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        from == to || self.rules.iter().any(|(f, t)| f.matches(from) && t.matches(to))
    }

    /// True when no rule widens the default.
    pub fn is_own_namespace_only(&self) -> bool {
        self.rules.is_empty()
    }
}

impl fmt::Display for NamespaceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("own namespace only");
        }
        for (i, (from, to)) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{from}:{to}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_a_scaledobject_reaches_only_its_own_namespace() {
        let a = NamespaceAccess::own_namespace_only();
        assert!(a.allows("team-a", "team-a"));
        assert!(!a.allows("team-a", "team-b"));
        assert_eq!(a.to_string(), "own namespace only");
    }

    #[test]
    fn rules_name_who_may_reach_where_with_wildcards_on_either_side() {
        let a = NamespaceAccess::parse(["ml-platform:team-b", "*:shared-models", " team-c : * "]).unwrap();
        assert!(a.allows("ml-platform", "team-b"));
        assert!(!a.allows("ml-platform", "team-a"));
        assert!(!a.allows("team-b", "ml-platform"), "rules are one-way");
        assert!(a.allows("anyone", "shared-models"));
        assert!(a.allows("team-c", "kube-system"));
        assert_eq!(a.to_string(), "ml-platform:team-b, *:shared-models, team-c:*");
        let all = NamespaceAccess::parse(["*"]).unwrap();
        assert!(all.allows("x", "y"));
    }

    #[test]
    fn a_malformed_rule_is_refused_with_the_rule_and_the_expected_form() {
        for bad in ["team-a", "team-a:", ":team-b", "Team-A:team-b", "team-a:team_b", "a:b:c", "-a:b"] {
            let err = NamespaceAccess::parse([bad]).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("FROM:TO"), "{bad}: {err}");
        }
    }
}
