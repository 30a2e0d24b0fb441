//! Every case, grouped by the document they come from. Ids are stable: the
//! differential table and failures name cases by them.

mod h1_messaging;
mod h2;
mod semantics;

use super::case::Case;

/// Every case, in the order the table lists them.
pub fn all() -> Vec<Case> {
    let mut cases = semantics::cases();
    cases.extend(h1_messaging::cases());
    cases.extend(h2::cases());
    cases
}

#[cfg(test)]
mod tests {
    /// Ids name cases in tables and failures: each must be unique.
    #[test]
    fn case_ids_are_unique_and_every_case_checks_something() {
        let cases = super::all();
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), cases.len(), "duplicate case ids");
        for c in &cases {
            assert!(!c.checks.is_empty(), "{} checks nothing", c.id);
            assert!(
                c.section.starts_with("RFC "),
                "{}: section {:?}",
                c.id,
                c.section
            );
        }
    }
}
