//! Offline validation on any input: each YAML document of the bytes is an object (a CRD among them
//! brings its own schema, however hostile), validated against the embedded Kubernetes schemas and every
//! finding placed in the text. Whatever the bytes, it must return: no panic, no hang, no stack overflow.
//! Its corpus starts from the YAML target's (scripts/fuzz passes both).
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kdeploy::check::locate::{Lines, Placed, locate};
use kdeploy::check::{Catalog, Options, kubernetes, validate};
use kdeploy::manifest::{Object, Source};
use kdeploy::yaml::parse_stream;
use libfuzzer_sys::fuzz_target;

/// The embedded schemas, every definition compiled once; each input gets a copy to add its own CRDs to.
fn embedded() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut catalog = Catalog::embedded(kubernetes::DEFAULT_VERSION).expect("the embedded schemas load");
        catalog.compile_all().expect("the embedded schemas compile");
        catalog
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(documents) = parse_stream(text, &mut |_| Ok(None)) else { return };
    let mut objects = Vec::new();
    let mut roots = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        let Ok(value) = document.root.to_json() else { return };
        if !value.is_object() {
            continue;
        }
        let source = Source {
            template: PathBuf::from("fuzz.yaml"),
            document: i + 1,
            line: document.mark.line,
            rendered: false,
            source: 0,
            list_item: None,
        };
        objects.push(Object { value, source });
        roots.push(document.root);
    }
    let mut catalog = embedded().clone();
    catalog.add_stream_crds(&objects);
    let report = validate(&objects, &mut catalog, &Options { strict: true }).expect("compiled schemas validate");
    let shared: Arc<str> = Arc::from(text);
    for finding in &report.errors {
        let placed = Placed {
            root: roots[finding.object].clone(),
            lines: Lines::File {
                path: PathBuf::from("fuzz.yaml"),
                text: shared.clone(),
            },
        };
        let located = locate(&placed, None, &finding.path, finding.at_key, true);
        if let Some((location, _)) = located {
            assert!(location.line >= 1, "a line counts from 1");
        }
    }
});
