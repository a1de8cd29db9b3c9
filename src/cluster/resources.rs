//! Which API resource serves an object, and whether it is namespaced, from the server's discovery
//! documents (asked once per group-version or group, then remembered).

use std::collections::HashMap;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use tokio::sync::Mutex;

use super::{ClusterError, client::with_retries};

/// An object's API resource and scope.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// A discovery cache shared by concurrent requests.
pub struct Resources {
    client: kube::Client,
    by_gvk: Mutex<HashMap<(String, String, String), Option<Resolved>>>,
    by_gk: Mutex<HashMap<(String, String), Option<Resolved>>>,
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

fn is_not_found(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}

impl Resources {
    pub fn new(client: kube::Client) -> Resources {
        Resources {
            client,
            by_gvk: Mutex::new(HashMap::new()),
            by_gk: Mutex::new(HashMap::new()),
        }
    }

    /// The resource for `apiVersion` + `kind`; `None` if the server does not serve it (yet).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
        let (group, version) = split_api_version(api_version);
        let key = (group.to_owned(), version.to_owned(), kind.to_owned());
        if let Some(known) = self.by_gvk.lock().await.get(&key) {
            return Ok(known.clone());
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = match with_retries(|| kube::discovery::pinned_kind(&self.client, &gvk)).await {
            Ok((resource, capabilities)) => Some(Resolved {
                resource,
                namespaced: capabilities.scope == Scope::Namespaced,
            }),
            Err(error) if is_not_found(&error) => None,
            Err(error) => return Err(ClusterError::api(format!("discovery of {api_version} {kind}"), error)),
        };
        // Only remember successes: a kind can appear later in the same run (a CRD just created).
        if found.is_some() {
            self.by_gvk.lock().await.insert(key, found.clone());
        }
        Ok(found)
    }

    /// The resource for a group and kind at the group's preferred version (for listing ApplySet members).
    pub async fn resolve_group_kind(&self, group: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
        let key = (group.to_owned(), kind.to_owned());
        if let Some(known) = self.by_gk.lock().await.get(&key) {
            return Ok(known.clone());
        }
        let found = match with_retries(|| kube::discovery::group(&self.client, group)).await {
            Ok(api_group) => api_group
                .recommended_kind(kind)
                .map(|(resource, capabilities)| Resolved {
                    resource,
                    namespaced: capabilities.scope == Scope::Namespaced,
                }),
            Err(error) if is_not_found(&error) => None,
            Err(error) => return Err(ClusterError::api(format!("discovery of group `{group}`"), error)),
        };
        self.by_gk.lock().await.insert(key, found.clone());
        Ok(found)
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Forgets what was not found, so kinds from newly established CRDs are looked up again.
    pub async fn forget_missing(&self) {
        self.by_gk.lock().await.retain(|_, v| v.is_some());
    }

    /// The dynamic API for an object of this resource in `namespace` (ignored when cluster-scoped).
    pub fn api(&self, resolved: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
        match (resolved.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resolved.resource),
            _ => Api::all_with(self.client.clone(), &resolved.resource),
        }
    }
}
