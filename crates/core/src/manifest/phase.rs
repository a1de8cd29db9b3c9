//! The order a team can say: `kdeploy.dev/phase` on an object puts it in a phase (`pre`, `main`, `post`
//! or a number; `main` when absent). Apply takes phases one after another, each awaited before the
//! next, so a migration Job in `pre` has completed before the Deployment of `main` is touched.
//! Namespaces and CRDs come before every phase, whatever they say.

use serde_json::Value as Json;

pub const PHASE_ANNOTATION: &str = "kdeploy.dev/phase";
/// Set to `"true"` on an object: a change the server refuses as immutable deletes and re-creates it.
pub const REPLACE_ANNOTATION: &str = "kdeploy.dev/replace-on-immutable";

pub const PRE: i32 = -1;
pub const MAIN: i32 = 0;
pub const POST: i32 = 1;

/// The object's phase, or why its annotation is not one.
pub fn phase_of(object: &Json) -> Result<i32, String> {
    let Some(value) = object["metadata"]["annotations"].get(PHASE_ANNOTATION) else {
        return Ok(MAIN);
    };
    let text = value.as_str().unwrap_or_default().trim();
    match text {
        "pre" => Ok(PRE),
        "main" => Ok(MAIN),
        "post" => Ok(POST),
        number => number.parse::<i32>().map_err(|_| {
            format!("{PHASE_ANNOTATION}: {value} is not a phase: use pre, main, post or a whole number (pre is -1, main 0, post 1)")
        }),
    }
}

/// The phase of an object already checked (`main` if its annotation is not a phase).
pub fn phase(object: &Json) -> i32 {
    phase_of(object).unwrap_or(MAIN)
}

/// A phase by name where it has one.
pub fn phase_name(phase: i32) -> String {
    match phase {
        PRE => "pre".to_owned(),
        MAIN => "main".to_owned(),
        POST => "post".to_owned(),
        n => n.to_string(),
    }
}

/// Whether the object asks to be replaced when a change to it is immutable.
pub fn replaces_on_immutable(object: &Json) -> bool {
    object["metadata"]["annotations"][REPLACE_ANNOTATION] == "true"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phases_are_names_or_numbers() {
        let with = |p: &str| json!({"metadata": {"annotations": {PHASE_ANNOTATION: p}}});
        assert_eq!(phase_of(&json!({"metadata": {}})), Ok(MAIN));
        assert_eq!(phase_of(&with("pre")), Ok(-1));
        assert_eq!(phase_of(&with("post")), Ok(1));
        assert_eq!(phase_of(&with("-5")), Ok(-5));
        assert!(phase_of(&with("early")).unwrap_err().contains("not a phase"));
        assert!(phase_of(&json!({"metadata": {"annotations": {PHASE_ANNOTATION: 3}}})).is_err());
        assert_eq!(phase_name(-1), "pre");
        assert_eq!(phase_name(7), "7");
    }
}
