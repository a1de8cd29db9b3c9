//! `kdeploy convert ytt` on any text: the input is one ytt file (the first byte picks its kind: a
//! template, a `.lib.yml` library that a fixed template loads, or a `.star` module), converted in
//! strict and in partial mode. Any refusal is fine; a panic, a hang or a strict conversion that
//! refuses nothing yet writes no project is not.
#![no_main]

use kdeploy::convert::ytt::{Mode, Options, convert_texts};
use libfuzzer_sys::fuzz_target;

const LOADER: &str = "#@ load(\"lib.lib.yml\", \"f\")\n#@ load(\"mod.star\", \"g\")\n---\nkind: ConfigMap\napiVersion: v1\nmetadata:\n  name: #@ g(\"x\")\ndata: #@ f()\n";

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let files = match first % 3 {
        0 => vec![("config.yml".to_owned(), text.to_owned())],
        1 => vec![
            ("config.yml".to_owned(), LOADER.to_owned()),
            ("lib.lib.yml".to_owned(), text.to_owned()),
            ("mod.star".to_owned(), "def g(x):\n  return x\nend\n".to_owned()),
        ],
        _ => vec![
            ("config.yml".to_owned(), LOADER.to_owned()),
            ("lib.lib.yml".to_owned(), "#@ def f():\na: b\n#@ end\n".to_owned()),
            ("mod.star".to_owned(), text.to_owned()),
        ],
    };
    for mode in [Mode::Strict, Mode::Partial] {
        let options = Options {
            files: Vec::new(),
            flag_values: None,
            mode,
            name: "fuzz".into(),
            targets: Vec::new(),
        };
        let conversion = convert_texts(files.clone(), &options);
        if mode == Mode::Strict && conversion.refusals.is_empty() {
            assert!(
                conversion.files.iter().any(|(path, _)| path.starts_with("templates")),
                "a conversion without refusals writes templates"
            );
        }
    }
});
