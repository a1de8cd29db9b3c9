//! Which GitOps engine applies a live object, from the labels and annotations each one puts on what
//! it applies: a change made around the engine is undone at its next reconciliation, so diff, apply
//! and rollback say so, and status names the engine's own view.

use std::fmt;

use serde_json::Value as Json;

/// The labels kustomize-controller sets on every object it applies.
pub const FLUX_KUSTOMIZATION_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_KUSTOMIZATION_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
const FLUX_HELMRELEASE_NAME: &str = "helm.toolkit.fluxcd.io/name";
const FLUX_HELMRELEASE_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
const ARGOCD_INSTANCE: &str = "argocd.argoproj.io/instance";
const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";

/// The engine, and the object of its own that tracks the live one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Engine {
    FluxKustomization { namespace: String, name: String },
    FluxHelmRelease { namespace: String, name: String },
    ArgoCd { application: String },
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::FluxKustomization { namespace, name } => write!(f, "Flux Kustomization {namespace}/{name}"),
            Engine::FluxHelmRelease { namespace, name } => write!(f, "Flux HelmRelease {namespace}/{name}"),
            Engine::ArgoCd { application } => write!(f, "Argo CD Application {application}"),
        }
    }
}

/// The engine that applies `object`, if its metadata says one does.
pub fn tracked_by(object: &Json) -> Option<Engine> {
    let labels = &object["metadata"]["labels"];
    let label = |key: &str| labels[key].as_str().map(str::to_owned);
    if let Some(name) = label(FLUX_KUSTOMIZATION_NAME) {
        let namespace = label(FLUX_KUSTOMIZATION_NAMESPACE).unwrap_or_else(|| "flux-system".into());
        return Some(Engine::FluxKustomization { namespace, name });
    }
    if let Some(name) = label(FLUX_HELMRELEASE_NAME) {
        let namespace = label(FLUX_HELMRELEASE_NAMESPACE).unwrap_or_else(|| "flux-system".into());
        return Some(Engine::FluxHelmRelease { namespace, name });
    }
    // The tracking id is `APP:GROUP/KIND:NAMESPACE/NAME`.
    let tracking = object["metadata"]["annotations"][ARGOCD_TRACKING_ID]
        .as_str()
        .and_then(|id| id.split(':').next())
        .map(str::to_owned);
    tracking
        .or_else(|| label(ARGOCD_INSTANCE))
        .map(|application| Engine::ArgoCd { application })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_engine_is_read_from_its_own_marks() {
        let flux =
            json!({"metadata": {"labels": {FLUX_KUSTOMIZATION_NAME: "shop", FLUX_KUSTOMIZATION_NAMESPACE: "ops"}}});
        assert_eq!(tracked_by(&flux).unwrap().to_string(), "Flux Kustomization ops/shop");
        let helm = json!({"metadata": {"labels": {FLUX_HELMRELEASE_NAME: "db"}}});
        assert_eq!(
            tracked_by(&helm).unwrap().to_string(),
            "Flux HelmRelease flux-system/db"
        );
        let argo = json!({"metadata": {"annotations": {ARGOCD_TRACKING_ID: "web:apps/Deployment:shop/web"}}});
        assert_eq!(tracked_by(&argo).unwrap().to_string(), "Argo CD Application web");
        let legacy = json!({"metadata": {"labels": {ARGOCD_INSTANCE: "old"}}});
        assert_eq!(tracked_by(&legacy).unwrap().to_string(), "Argo CD Application old");
        assert_eq!(tracked_by(&json!({"metadata": {"labels": {"app": "x"}}})), None);
    }
}
