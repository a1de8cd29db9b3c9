//! ytt overlay documents that kdeploy's `patches:` can say exactly: matched by `overlay.subset` of
//! kind, apiVersion, name, namespace and labels, or by `overlay.all`, whose body sets, adds, replaces
//! or removes fields and appends array items. Anything else (matching array items, functions,
//! expressions, `overlay/insert`, removing whole documents) is refused with its line.

use serde_json::{Map, Value as Json, json};

use super::lines::{annotations_by_line, first_code};
use super::starlark::{Arg, Expr, parse_expr};
use super::template::DataDocument;
use crate::yaml::{Node, NodeValue, parse_stream};

/// (file, line, why)
pub type Refused = (String, usize, String);

/// The `patches:` entries one overlay document becomes.
pub fn patches(label: &str, document: &DataDocument) -> Result<Vec<Json>, Refused> {
    let refuse = |line: usize, why: String| (label.to_owned(), line, why);
    let (_, args) = document
        .annotations
        .iter()
        .find(|(name, _)| name == "overlay/match")
        .ok_or_else(|| refuse(document.line, "an overlay document without @overlay/match".into()))?;
    for (name, args) in &document.annotations {
        if name != "overlay/match" {
            return Err(refuse(document.line, format!("@{name} {args} on an overlay document")));
        }
    }
    let (target, expects) = target(args).map_err(|why| refuse(document.line, why))?;
    if let Some((line, what)) = first_code(&document.text) {
        return Err(refuse(
            line,
            format!("{what} in an overlay (kdeploy's patches are not templated)"),
        ));
    }
    let annotations = annotations_by_line(&document.text);
    let docs = parse_stream(&document.text, &mut |_| Ok(None))
        .map_err(|e| refuse(e.mark.line, format!("invalid YAML: {}", e.message)))?;
    let Some(root) = docs.into_iter().next().map(|d| d.root).filter(|r| !r.is_null()) else {
        return Err(refuse(document.line, "an empty overlay".into()));
    };
    let mut merge = Json::Null;
    let mut operations = Vec::new();
    body(&root, "", &annotations, &mut merge, &mut operations).map_err(|(line, why)| refuse(line, why))?;
    prune(&mut merge);
    let mut out = Vec::new();
    if !merge.is_null() {
        out.push(json!({"target": target, "merge": merge, "expects": expects}));
    }
    if !operations.is_empty() {
        out.push(json!({"target": target, "json6902": operations, "expects": expects}));
    }
    if out.is_empty() {
        return Err(refuse(document.line, "an overlay that changes nothing".into()));
    }
    Ok(out)
}

/// Drops the maps a merge patch only passed through on the way to a JSON patch operation.
fn prune(merge: &mut Json) {
    if let Json::Object(map) = merge {
        for v in map.values_mut() {
            prune(v);
        }
        map.retain(|_, v| !v.is_null());
        if map.is_empty() {
            *merge = Json::Null;
        }
    }
}

/// The patch target and `expects` of `@overlay/match by=…, expects=…`: ytt's count rules, kept
/// (by default exactly one match; `missing_ok=True` is zero or one).
fn target(args: &str) -> Result<(Json, Json), String> {
    let call = parse_expr(&format!("match({args})")).map_err(|e| format!("@overlay/match {args}: {}", e.message))?;
    let Expr::Call(_, args) = call else {
        return Err("@overlay/match with these arguments".into());
    };
    let mut by = None;
    let mut expects = json!(1);
    for Arg { name, value } in &args {
        match (name.as_deref(), value) {
            (Some("by"), value) => by = Some(value),
            (Some("expects"), Expr::Int(n)) if *n >= 0 => expects = json!(n),
            (Some("expects"), Expr::Str(s)) if s.strip_suffix('+').is_some_and(|n| n.parse::<u32>().is_ok()) => {
                expects = json!(s);
            }
            (Some("expects"), Expr::Str(s)) if s.parse::<u32>().is_ok() => expects = json!(s.parse::<u32>().ok()),
            (Some("expects"), Expr::List(items)) => {
                let counts: Option<Vec<i64>> = items
                    .iter()
                    .map(|i| match i {
                        Expr::Int(n) if *n >= 0 => Some(*n),
                        _ => None,
                    })
                    .collect();
                expects = json!(counts.ok_or("@overlay/match expects=[…] with anything but counts")?);
            }
            (Some("missing_ok"), Expr::Bool(true)) => expects = json!([0, 1]),
            (Some("missing_ok"), Expr::Bool(false)) => {}
            (Some(flag @ ("expects" | "missing_ok")), other) => {
                return Err(format!("@overlay/match {flag}={}", describe(other)));
            }
            _ => return Err("@overlay/match with a positional or unknown argument".into()),
        }
    }
    let Some(by) = by else {
        return Err("@overlay/match without by=".into());
    };
    match by {
        Expr::Attr(base, all) if all == "all" && matches!(&**base, Expr::Name(n) if n == "overlay") => {
            Ok((json!({}), expects))
        }
        Expr::Call(callee, call_args) if matches!(&**callee, Expr::Attr(base, f) if f == "subset" && matches!(&**base, Expr::Name(n) if n == "overlay")) =>
        {
            let [Arg { name: None, value }] = call_args.as_slice() else {
                return Err("overlay.subset() with these arguments".into());
            };
            Ok((subset_target(value)?, expects))
        }
        other => Err(format!(
            "@overlay/match by={} (only overlay.subset of kind, apiVersion, name, namespace and labels, or overlay.all, convert)",
            describe(other)
        )),
    }
}

fn describe(e: &Expr) -> String {
    match e {
        Expr::Str(s) => format!("{s:?}"),
        Expr::Int(i) => i.to_string(),
        Expr::Call(c, _) => format!("{}(…)", describe(c)),
        Expr::Attr(b, n) => format!("{}.{n}", describe(b)),
        Expr::Name(n) => n.clone(),
        _ => "an expression".into(),
    }
}

fn strings(e: &Expr) -> Option<Vec<(String, &Expr)>> {
    let Expr::Dict(entries) = e else { return None };
    entries
        .iter()
        .map(|(k, v)| match k {
            Expr::Str(k) => Some((k.clone(), v)),
            _ => None,
        })
        .collect()
}

fn subset_target(subset: &Expr) -> Result<Json, String> {
    let refuse = |what: &str| {
        Err(format!(
            "overlay.subset() of {what} (kdeploy's patch targets say kind, apiVersion, name, namespace and labels)"
        ))
    };
    let Some(entries) = strings(subset) else {
        return refuse("anything but a dict literal");
    };
    let mut target = Map::new();
    for (key, value) in entries {
        match (key.as_str(), value) {
            ("kind", Expr::Str(kind)) => {
                target.insert("kind".into(), json!(kind));
            }
            ("apiVersion", Expr::Str(api)) => {
                let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
                target.insert("group".into(), json!(group));
                target.insert("version".into(), json!(version));
            }
            ("metadata", meta) => {
                let Some(fields) = strings(meta) else {
                    return refuse("metadata that is not a dict literal");
                };
                for (field, value) in fields {
                    match (field.as_str(), value) {
                        ("name" | "namespace", Expr::Str(s)) => {
                            if s.contains('*') {
                                return refuse("a name with * (a prefix pattern in kdeploy)");
                            }
                            target.insert(field.clone(), json!(s));
                        }
                        ("labels", labels) => {
                            let Some(labels) = strings(labels) else {
                                return refuse("labels that are not a dict literal");
                            };
                            let mut selector = Vec::new();
                            for (k, v) in labels {
                                let Expr::Str(v) = v else {
                                    return refuse("a label that is not a string");
                                };
                                selector.push(format!("{k}={v}"));
                            }
                            target.insert("labelSelector".into(), json!(selector.join(",")));
                        }
                        (other, _) => return refuse(&format!("metadata.{other}")),
                    }
                }
            }
            (other, _) => return refuse(other),
        }
    }
    Ok(Json::Object(target))
}

/// Walks the overlay's body: merged maps and scalars go into `merge`; replace, remove and array
/// appends become JSON patch operations.
fn body(
    node: &Node,
    path: &str,
    annotations: &std::collections::HashMap<usize, Vec<(String, String)>>,
    merge: &mut Json,
    operations: &mut Vec<Json>,
) -> Result<(), (usize, String)> {
    let NodeValue::Map(entries) = &node.value else {
        return Err((node.mark.line, "an overlay whose body is not a map".into()));
    };
    if !merge.is_object() {
        *merge = json!({});
    }
    for (key, entry) in entries {
        let line = entry.key_mark.line;
        let pointer = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
        let mut action = "merge";
        let mut missing_ok = false;
        for (name, args) in annotations.get(&line).map(Vec::as_slice).unwrap_or(&[]) {
            let compact: String = args.chars().filter(|c| !c.is_whitespace()).collect();
            match (name.as_str(), compact.as_str()) {
                ("overlay/match", "missing_ok=True") => missing_ok = true,
                ("overlay/match", "") | ("overlay/merge", "") => {}
                ("overlay/replace", "") => action = "replace",
                ("overlay/remove", "") => action = "remove",
                (name, _) => return Err((line, format!("@{name} {args} on a field of an overlay"))),
            }
        }
        let value = entry.value.to_json().map_err(|e| (line, e.to_string()))?;
        match action {
            // JSON patch's replace needs the field, as ytt's does; with missing_ok ytt adds it, as add does.
            "replace" => {
                let op = if missing_ok { "add" } else { "replace" };
                operations.push(json!({"op": op, "path": pointer, "value": value}));
            }
            "remove" if missing_ok => {
                return Err((
                    line,
                    "@overlay/remove with missing_ok=True (a JSON patch remove needs the field to be there)".into(),
                ));
            }
            "remove" => operations.push(json!({"op": "remove", "path": pointer})),
            _ => match &entry.value.value {
                NodeValue::Map(_) => {
                    let slot = merge
                        .as_object_mut()
                        .expect("a map")
                        .entry(key.clone())
                        .or_insert(json!({}));
                    body(&entry.value, &pointer, annotations, slot, operations)?;
                }
                NodeValue::Seq(items) => {
                    // ytt appends array items by default.
                    for item in items {
                        if annotations.get(&item.mark.line).is_some_and(|a| !a.is_empty()) {
                            return Err((
                                item.mark.line,
                                "an annotation on an array item of an overlay (matching array items does not convert)"
                                    .into(),
                            ));
                        }
                        let v = item.to_json().map_err(|e| (item.mark.line, e.to_string()))?;
                        operations.push(json!({"op": "add", "path": format!("{pointer}/-"), "value": v}));
                    }
                }
                NodeValue::Scalar(_) if value.is_null() => {
                    // A merge patch would remove the key; ytt sets it to null.
                    operations.push(json!({"op": "add", "path": pointer, "value": null}));
                }
                NodeValue::Scalar(_) => {
                    merge.as_object_mut().expect("a map").insert(key.clone(), value);
                }
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(args: &str, text: &str) -> Result<Vec<Json>, Refused> {
        patches(
            "o.yml",
            &DataDocument {
                text: text.to_owned(),
                annotations: vec![("overlay/match".into(), args.into())],
                line: 1,
            },
        )
    }

    #[test]
    fn subset_overlays_become_patches() {
        let p = overlay(
            r#"by=overlay.subset({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "labels": {"app": "web"}}})"#,
            "spec:\n  replicas: 3\n  #@overlay/replace\n  selector: {matchLabels: {a: b}}\n  template:\n    spec:\n      containers:\n      - name: sidecar\n",
        )
        .unwrap();
        assert_eq!(p[0]["expects"], 1);
        assert_eq!(
            overlay("by=overlay.all, missing_ok=True", "a: 1\n").unwrap()[0]["expects"],
            json!([0, 1])
        );
        assert_eq!(
            overlay("by=overlay.all, expects=\"1+\"", "a: 1\n").unwrap()[0]["expects"],
            "1+"
        );
        assert_eq!(
            p[0]["target"],
            json!({"kind": "Deployment", "group": "apps", "version": "v1", "name": "web", "labelSelector": "app=web"})
        );
        assert_eq!(p[0]["merge"], json!({"spec": {"replicas": 3}}));
        assert_eq!(p[1]["json6902"][0]["op"], "replace");
        assert_eq!(
            p[1]["json6902"][1],
            json!({"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "sidecar"}})
        );
    }

    #[test]
    fn what_patches_cannot_say_is_refused() {
        for (args, text, why) in [
            ("by=overlay.subset({\"spec\": {}})", "a: 1\n", "spec"),
            ("by=overlay.all, expects=\"x\"", "a: 1\n", "expects"),
            ("by=lambda i, l, r: True", "a: 1\n", "lambda"),
            ("by=overlay.all", "a: #@ x\n", "expression"),
            (
                "by=overlay.all",
                "a:\n#@overlay/match by=\"name\"\n- name: x\n",
                "array item",
            ),
            (
                "by=overlay.all",
                "#@overlay/match missing_ok=True\n#@overlay/remove\na: 1\n",
                "needs the field",
            ),
            ("by=overlay.all", "spec:\n  #@overlay/match when=1\n  a: 1\n", "when=1"),
        ] {
            let e = overlay(args, text).unwrap_err();
            assert!(e.2.contains(why), "{args}: {}", e.2);
        }
    }
}
