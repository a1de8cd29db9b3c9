//! Render benchmark: the whole pipeline (load templates, merge values, render, build and emit the
//! manifest) on a generated project of 1,000 objects from 50 templates, and each stage on its own.
//! Run with `cargo bench --bench render`; results are recorded in BENCHMARKS.md.

mod corpus;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdeploy::manifest::Manifest;
use kdeploy::template::{TemplateContext, TemplateSet};
use kdeploy::values::{ValueFlags, load_values};

fn render_benchmarks(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    corpus::write(dir.path());
    let templates = vec![dir.path().join("templates")];
    let flags = ValueFlags {
        project_files: vec![dir.path().join("values.yaml")],
        ..Default::default()
    };
    let env = Default::default();
    let context = || TemplateContext {
        values: load_values(&flags, &env).unwrap().to_json().unwrap(),
        ..Default::default()
    };
    let pipeline = || {
        let set = TemplateSet::load(&templates, &[]).unwrap();
        let documents = set.render(&context()).unwrap().documents;
        let manifest = Manifest::from_documents(documents, Some("bench")).unwrap();
        manifest.to_yaml().unwrap()
    };
    let documents = TemplateSet::load(&templates, &[])
        .unwrap()
        .render(&context())
        .unwrap()
        .documents;
    assert_eq!(
        Manifest::from_documents(documents, None).unwrap().objects.len(),
        corpus::OBJECTS
    );

    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(corpus::OBJECTS as u64));
    group.bench_function("pipeline_1000_objects", |b| b.iter(pipeline));
    let set = TemplateSet::load(&templates, &[]).unwrap();
    let ctx = context();
    group.bench_function("load_templates", |b| {
        b.iter(|| TemplateSet::load(&templates, &[]).unwrap())
    });
    group.bench_function("render_and_parse", |b| b.iter(|| set.render(&ctx).unwrap()));
    let manifest = Manifest::from_documents(set.render(&ctx).unwrap().documents, None).unwrap();
    group.bench_function("emit_yaml", |b| b.iter(|| manifest.to_yaml().unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = render_benchmarks
}
criterion_main!(benches);
