// Wrapper module that builds kustomize v5, used only by kdeploy's side-by-side benchmarks.
module kdeploy.dev/tools/kustomize

go 1.26.0

require sigs.k8s.io/kustomize/kustomize/v5 v5.8.3

tool sigs.k8s.io/kustomize/kustomize/v5
