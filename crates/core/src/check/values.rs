//! The values themselves: keys in a values file, a flag or an env-prefix variable that no template
//! reads (`enabeld: true` meant for `enabled`), found by comparing the values' leaves with the paths
//! the templates name (see [`crate::template::TemplateSet::value_paths_read`]).
//!
//! The comparison is static and errs on the side of silence: a path named anywhere in a tag counts
//! as read, in a branch not taken too, and a path read whole (a map given to a loop, a filter or a
//! component) covers everything below it. A Helm source's `values:` are compared with its chart's own
//! values.yaml in the same way ([`unknown_chart_values`]); its values.schema.json is helm's to apply,
//! and `helm template` does.

use std::collections::BTreeSet;

use crate::values::Origin;

/// A value no template reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    pub path: String,
    pub origin: Option<Origin>,
    /// The read path it most resembles, when one is close: the likely typo's intent.
    pub closest: Option<String>,
}

/// Whether `leaf` lies at, below or above a path that is read.
fn is_read(leaf: &str, read: &BTreeSet<String>) -> bool {
    let covers = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    read.iter().any(|path| covers(path, leaf) || covers(leaf, path))
}

/// The values among `leaves` (dotted path, origin) that nothing reads, in their order.
pub fn unread<'o>(
    leaves: impl IntoIterator<Item = (String, Option<&'o Origin>)>,
    read: &BTreeSet<String>,
) -> Vec<Unread> {
    leaves
        .into_iter()
        .filter(|(path, _)| !is_read(path, read))
        .map(|(path, origin)| {
            let closest = closest(&path, read);
            Unread {
                path,
                origin: origin.cloned(),
                closest,
            }
        })
        .collect()
}

fn closest(path: &str, read: &BTreeSet<String>) -> Option<String> {
    let budget = (path.chars().count() / 3).max(2);
    read.iter()
        .filter(|r| !r.is_empty())
        .map(|r| (edit_distance(path, r), r))
        .filter(|(distance, _)| *distance <= budget)
        .min()
        .map(|(_, r)| r.clone())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The dotted paths of every leaf of `value` (a scalar, an empty map or an empty list), as
/// [`crate::values::Values::leaves`] names them.
pub fn json_leaves(value: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, path: &mut String, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (key, item) in map {
                    let length = path.len();
                    crate::yaml::push_path_key(path, key);
                    walk(item, path, out);
                    path.truncate(length);
                }
            }
            serde_json::Value::Array(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    let length = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, path, out);
                    path.truncate(length);
                }
            }
            _ if !path.is_empty() => out.push(path.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut String::new(), &mut out);
    out
}

/// The keys of a Helm source's `values:` that its chart's own values.yaml does not have, below
/// `global` and the subcharts' keys (which their own charts read): helm passes them to templates that
/// never look. What the chart's values.yaml holds as a whole (`podAnnotations: {}`, `tolerations: []`)
/// covers any key below it.
pub fn unknown_chart_values(
    given: &serde_json::Value,
    defaults: &serde_json::Value,
    subcharts: &BTreeSet<String>,
) -> Vec<Unread> {
    let mut known: BTreeSet<String> = json_leaves(defaults).into_iter().collect();
    known.insert("global".to_owned());
    known.extend(subcharts.iter().cloned());
    unread(json_leaves(given).into_iter().map(|path| (path, None)), &known)
}

/// One line per unread value: where it was set, and what was probably meant.
pub fn describe(unread: &Unread) -> String {
    let at = unread
        .origin
        .as_ref()
        .map_or_else(String::new, |origin| format!("{origin}: "));
    let hint = unread
        .closest
        .as_ref()
        .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
    format!("{at}value `{}` is read by no template{hint}", unread.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    fn unread_paths(leaves: &[&str], paths: &[&str]) -> Vec<(String, Option<String>)> {
        unread(leaves.iter().map(|l| ((*l).to_owned(), None)), &read(paths))
            .into_iter()
            .map(|u| (u.path, u.closest))
            .collect()
    }

    #[test]
    fn typos_are_found_with_what_was_meant() {
        assert_eq!(
            unread_paths(
                &["image.tag", "enabeld", "replicas"],
                &["image.tag", "enabled", "replicas"]
            ),
            [("enabeld".to_owned(), Some("enabled".to_owned()))]
        );
    }

    #[test]
    fn paths_read_whole_cover_everything_below_them() {
        // `{% for app in values.apps %}` reads every app; `values` alone reads all.
        assert!(unread_paths(&["apps[0].name", "apps[1].port", "labels.team"], &["apps", "labels"]).is_empty());
        assert!(unread_paths(&["anything.at.all"], &[""]).is_empty());
        // A template reading deeper than the values go still reads them.
        assert!(unread_paths(&["db"], &["db.host"]).is_empty());
        // A sibling with a shared prefix is not covered.
        assert_eq!(unread_paths(&["app_name"], &["app"]), [("app_name".to_owned(), None)]);
    }

    #[test]
    fn chart_values_are_compared_with_the_charts_own() {
        let defaults =
            serde_json::json!({"replicaCount": 1, "image": {"tag": ""}, "podAnnotations": {}, "tolerations": []});
        let given = serde_json::json!({
            "replicaCuont": 3, "image": {"tag": "1.0"}, "podAnnotations": {"a": "b"},
            "tolerations": [{"key": "x"}], "global": {"any": 1}, "redis": {"enabled": true}
        });
        let subcharts = read(&["redis"]);
        let unknown: Vec<(String, Option<String>)> = unknown_chart_values(&given, &defaults, &subcharts)
            .into_iter()
            .map(|u| (u.path, u.closest))
            .collect();
        assert_eq!(unknown, [("replicaCuont".to_owned(), Some("replicaCount".to_owned()))]);
    }

    #[test]
    fn distances_count_characters() {
        assert_eq!(edit_distance("enabeld", "enabled"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("café", "cafe"), 1);
    }
}
