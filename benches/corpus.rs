//! A generated project for the render benchmarks: 50 templates, each looping to render 5 instances of
//! a Deployment, Service, ConfigMap and Secret (1,000 objects), with a values file of about 200 keys.

use std::fmt::Write as _;
use std::path::Path;

pub const TEMPLATES: usize = 50;
pub const INSTANCES: usize = 5;
pub const OBJECTS: usize = TEMPLATES * INSTANCES * 4;

pub fn write(dir: &Path) {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let mut values = String::from("global:\n  registry: registry.example.com\n  env: bench\napps:\n");
    for app in 0..TEMPLATES {
        write!(
            values,
            "  app{app}:\n    image: team/app{app}\n    tag: \"1.{app}.0\"\n    replicas: {}\n    port: {}\n",
            1 + app % 3,
            8000 + app
        )
        .unwrap();
    }
    std::fs::write(dir.join("values.yaml"), values).unwrap();
    for app in 0..TEMPLATES {
        let template = TEMPLATE.replace("APP", &format!("app{app}"));
        std::fs::write(templates.join(format!("app{app}.yaml")), template).unwrap();
    }
}

/// The same template `benches/compare.sh` gives kdeploy (APP stands for the app's name).
const TEMPLATE: &str = include_str!("corpus/app.yaml");
