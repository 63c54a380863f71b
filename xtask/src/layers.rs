//! The layering check: every crate depends only on crates on lower floors.
//!
//! The graph comes from `cargo metadata --no-deps`, so nothing is built.
//! Normal and build dependencies count; dev-dependencies are exempt (a test
//! may use the facade), as in `../shared/tools/layers.py`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::cmd::{Cmd, Result};

/// Each layer crate and its floor, ground first. Crates on one floor may not
/// depend on each other.
pub(crate) const FLOORS: &[(&str, u32)] = &[
    ("evloop-reactor", 1),
    ("evloop-timer", 1),
    ("evloop-sched", 2),
    ("evloop-task", 3),
    ("evloop-exec", 4),
    ("evloop-net", 5),
    ("evloop", 6),
    ("evloop-python", 7),
];

/// Workspace packages that stand outside the floors. They may depend on any
/// layer crate, and no layer crate may depend on them.
pub(crate) const EXEMPT: &[&str] = &["xtask", "evloop-bench", "evloop-soak"];

/// The floor of a layer crate, if it has one.
pub(crate) fn floor_of(package: &str) -> Option<u32> {
    FLOORS
        .iter()
        .find(|(name, _)| *name == package)
        .map(|(_, floor)| *floor)
}

/// A normal or build dependency of one workspace package on another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Dep {
    pub(crate) from: String,
    pub(crate) to: String,
}

/// One way the workspace breaks the layering.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A workspace package that is neither a layer crate nor exempt.
    NoFloor { package: String },
    /// A dependency on a crate on the same floor or a higher one.
    NotLower {
        from: String,
        from_floor: u32,
        to: String,
        to_floor: u32,
    },
    /// A layer crate depending on an exempt package (xtask, the benchmarks).
    OnExempt { from: String, to: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NoFloor { package } => write!(
                f,
                "{package}: no floor assigned (add it to FLOORS or EXEMPT in xtask/src/layers.rs)"
            ),
            Violation::NotLower {
                from,
                from_floor,
                to,
                to_floor,
            } => {
                let way = if to_floor == from_floor {
                    "sideways"
                } else {
                    "upward"
                };
                write!(
                    f,
                    "{way} dependency: {from} (floor {from_floor}) depends on {to} (floor {to_floor})"
                )
            }
            Violation::OnExempt { from, to } => write!(
                f,
                "{from} depends on {to}, which no layer crate may depend on"
            ),
        }
    }
}

/// Checks a dependency graph against the floors.
///
/// `packages` are the workspace's packages, `deps` the normal and build
/// dependencies between them. Dependencies of exempt or unknown packages are
/// not checked (an unknown package is reported once, as such).
pub(crate) fn check(
    floors: &[(&str, u32)],
    exempt: &[&str],
    packages: &[String],
    deps: &[Dep],
) -> Vec<Violation> {
    let floor = |name: &str| floors.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
    let mut violations: Vec<Violation> = packages
        .iter()
        .filter(|p| floor(p).is_none() && !exempt.contains(&p.as_str()))
        .map(|p| Violation::NoFloor { package: p.clone() })
        .collect();
    for dep in deps {
        let Some(from_floor) = floor(&dep.from) else {
            continue;
        };
        if exempt.contains(&dep.to.as_str()) {
            violations.push(Violation::OnExempt {
                from: dep.from.clone(),
                to: dep.to.clone(),
            });
        } else if let Some(to_floor) = floor(&dep.to) {
            if to_floor >= from_floor {
                violations.push(Violation::NotLower {
                    from: dep.from.clone(),
                    from_floor,
                    to: dep.to.clone(),
                    to_floor,
                });
            }
        }
    }
    violations
}

/// Runs `cargo metadata --format-version 1 --no-deps` and parses it.
pub(crate) fn metadata() -> Result<Value> {
    metadata_of(&[])
}

/// `cargo metadata --no-deps` of the root workspace (`manifest` empty) or of another manifest.
fn metadata_of(manifest: &[&str]) -> Result<Value> {
    let json = Cmd::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .args(manifest.iter().copied())
        .read()?;
    serde_json::from_str(&json).map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))
}

/// The manifest of the Python module, a workspace of its own (outside the root's, see
/// docs/architecture.md, "The Python module") whose layering is checked with the rest.
pub(crate) const PYTHON_MANIFEST: &str = "crates/python/Cargo.toml";

/// The root workspace's packages and the Python module's, in one `packages` array.
fn all_metadata() -> Result<Value> {
    let mut meta = metadata()?;
    let python = metadata_of(&["--manifest-path", PYTHON_MANIFEST])?;
    let extra = python["packages"].as_array().cloned().unwrap_or_default();
    match meta["packages"].as_array_mut() {
        Some(packages) => packages.extend(extra),
        None => return Err("cargo metadata: unexpected JSON (no `packages` array)".to_string()),
    }
    Ok(meta)
}

/// The workspace packages and the normal/build dependencies between them.
fn graph(meta: &Value) -> Result<(Vec<String>, Vec<Dep>)> {
    let malformed = |what: &str| format!("cargo metadata: unexpected JSON ({what})");
    let packages = meta["packages"]
        .as_array()
        .ok_or_else(|| malformed("no `packages` array"))?;
    let mut names = Vec::new();
    for package in packages {
        let name = package["name"]
            .as_str()
            .ok_or_else(|| malformed("a package without a name"))?;
        names.push(name.to_string());
    }
    let mut deps = BTreeSet::new();
    for package in packages {
        let from = package["name"].as_str().unwrap_or_default();
        let list = package["dependencies"]
            .as_array()
            .ok_or_else(|| malformed("a package without `dependencies`"))?;
        for dep in list {
            let to = dep["name"]
                .as_str()
                .ok_or_else(|| malformed("a dependency without a name"))?;
            // `kind` is null for normal dependencies, "build" or "dev" otherwise.
            let is_dev = dep["kind"].as_str() == Some("dev");
            if !is_dev && names.iter().any(|n| n == to) {
                deps.insert(Dep {
                    from: from.to_string(),
                    to: to.to_string(),
                });
            }
        }
    }
    Ok((names, deps.into_iter().collect()))
}

/// `cargo xtask layers`: prints one line per violation and a summary.
pub(crate) fn run() -> Result<Vec<String>> {
    let (packages, deps) = graph(&all_metadata()?)?;
    let violations = check(FLOORS, EXEMPT, &packages, &deps);
    for violation in &violations {
        println!("layers: {violation}");
    }
    let missing: Vec<&str> = FLOORS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !packages.iter().any(|p| p == name))
        .collect();
    let not_yet = if missing.is_empty() {
        String::new()
    } else {
        format!(" (not yet: {})", missing.join(", "))
    };
    let verdict = if violations.is_empty() {
        "layering holds".to_string()
    } else {
        format!("{} violation(s)", violations.len())
    };
    println!(
        "layers: {}/{} layer crates present{not_yet}, {verdict}",
        FLOORS.len() - missing.len(),
        FLOORS.len()
    );
    if violations.is_empty() {
        Ok(Vec::new())
    } else {
        Err(format!("layers: {verdict}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn dep(from: &str, to: &str) -> Dep {
        Dep {
            from: from.to_string(),
            to: to.to_string(),
        }
    }

    #[test]
    fn clean_graph_has_no_violations() {
        let packages = names(&[
            "evloop-timer",
            "evloop-sched",
            "evloop",
            "xtask",
            "evloop-bench",
        ]);
        let deps = [
            dep("evloop-sched", "evloop-timer"),
            dep("evloop", "evloop-sched"),
            dep("evloop", "evloop-timer"),
            dep("evloop-bench", "evloop"),
            dep("xtask", "evloop-timer"),
        ];
        assert_eq!(check(FLOORS, EXEMPT, &packages, &deps), []);
    }

    #[test]
    fn upward_edge_is_reported() {
        let packages = names(&["evloop-timer", "evloop-sched"]);
        let violations = check(
            FLOORS,
            EXEMPT,
            &packages,
            &[dep("evloop-timer", "evloop-sched")],
        );
        assert_eq!(
            violations,
            [Violation::NotLower {
                from: "evloop-timer".into(),
                from_floor: 1,
                to: "evloop-sched".into(),
                to_floor: 2,
            }]
        );
        assert_eq!(
            violations[0].to_string(),
            "upward dependency: evloop-timer (floor 1) depends on evloop-sched (floor 2)"
        );
    }

    #[test]
    fn sideways_edge_is_reported() {
        let packages = names(&["evloop-timer", "evloop-reactor"]);
        let violations = check(
            FLOORS,
            EXEMPT,
            &packages,
            &[dep("evloop-reactor", "evloop-timer")],
        );
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].to_string(),
            "sideways dependency: evloop-reactor (floor 1) depends on evloop-timer (floor 1)"
        );
    }

    #[test]
    fn unknown_crate_is_reported_once() {
        let packages = names(&["evloop-timer", "evloop-extra"]);
        let deps = [dep("evloop-extra", "evloop-timer")];
        assert_eq!(
            check(FLOORS, EXEMPT, &packages, &deps),
            [Violation::NoFloor {
                package: "evloop-extra".into()
            }]
        );
    }

    #[test]
    fn layer_crate_may_not_depend_on_the_benchmarks() {
        let packages = names(&["evloop", "evloop-bench"]);
        let violations = check(FLOORS, EXEMPT, &packages, &[dep("evloop", "evloop-bench")]);
        assert_eq!(
            violations,
            [Violation::OnExempt {
                from: "evloop".into(),
                to: "evloop-bench".into()
            }]
        );
    }

    #[test]
    fn graph_keeps_workspace_edges_and_drops_dev_and_external_ones() -> Result {
        let meta: Value = serde_json::from_str(
            r#"{"packages": [
                {"name": "evloop-sched", "dependencies": [
                    {"name": "evloop-timer", "kind": null},
                    {"name": "evloop-timer", "kind": "build"},
                    {"name": "evloop", "kind": "dev"},
                    {"name": "polling", "kind": null}]},
                {"name": "evloop-timer", "dependencies": []},
                {"name": "evloop", "dependencies": [{"name": "evloop-sched", "kind": null}]}
            ]}"#,
        )
        .map_err(|e| e.to_string())?;
        let (packages, deps) = graph(&meta)?;
        assert_eq!(packages, names(&["evloop-sched", "evloop-timer", "evloop"]));
        assert_eq!(
            deps,
            [
                dep("evloop", "evloop-sched"),
                dep("evloop-sched", "evloop-timer")
            ]
        );
        Ok(())
    }

    #[test]
    fn layer_crate_may_not_depend_on_the_soak_suite() {
        let packages = names(&["evloop", "evloop-soak"]);
        let violations = check(FLOORS, EXEMPT, &packages, &[dep("evloop", "evloop-soak")]);
        assert_eq!(
            violations,
            [Violation::OnExempt {
                from: "evloop".into(),
                to: "evloop-soak".into()
            }]
        );
        assert_eq!(
            check(FLOORS, EXEMPT, &packages, &[dep("evloop-soak", "evloop")]),
            []
        );
    }

    #[test]
    fn floors_match_the_spec() {
        assert_eq!(floor_of("evloop-timer"), Some(1));
        assert_eq!(floor_of("evloop"), Some(6));
        assert_eq!(floor_of("evloop-python"), Some(7));
        assert_eq!(floor_of("xtask"), None);
    }
}
