//! Live progress while waiting for objects: one line each that updates in place on a terminal
//! (indicatif), and plain lines, one per change, otherwise (CI logs).

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cluster::wait::Readiness;
use crate::manifest::ObjectRef;

pub struct Progress {
    bars: Option<(MultiProgress, HashMap<ObjectRef, ProgressBar>)>,
}

impl Progress {
    /// Live lines when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        let bars = super::stderr_is_terminal().then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                HashMap::new(),
            )
        });
        Progress { bars }
    }

    pub fn update(&mut self, object: &ObjectRef, state: &Readiness) {
        let (symbol, text) = match state {
            Readiness::Ready => ("✔", "ready".to_owned()),
            Readiness::Progressing(why) => ("…", why.clone()),
            Readiness::Failed(why) => ("✘", format!("failed: {why}")),
        };
        let Some((multi, bars)) = &mut self.bars else {
            eprintln!("{object}: {text}");
            return;
        };
        let bar = bars.entry(object.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(object.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        match state {
            Readiness::Progressing(_) => bar.set_message(text),
            _ => bar.finish_with_message(format!("{symbol} {text}")),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}
