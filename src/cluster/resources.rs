//! Which API resource serves an object, and whether it is namespaced, from the server's discovery
//! documents. Discovery is aggregated (one GET of `/api` and one of `/apis`, as kubectl does on servers
//! from 1.30) and kept on disk per server for six hours, as kubectl keeps it in `~/.kube/cache`: a run
//! against a known server asks nothing. A kind the catalogue does not know, and a kind the server
//! answers 404 for, make it ask again (once a run, and again after CRDs are created), so a new CRD is
//! found and a removed one is not trusted. Servers without aggregated discovery are asked group by
//! group, as before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::api::{Api, DynamicObject};
use kube::client::APIGroupDiscoveryList;
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{ClusterError, client::with_retries};

/// An object's API resource and scope.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// How long discovery read from disk is trusted (kubectl's default too).
const DISK_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// A discovery cache shared by concurrent requests.
pub struct Resources {
    client: kube::Client,
    /// Where this server's discovery is kept between runs, and the server's URL.
    disk: Option<(PathBuf, String)>,
    catalogue: Mutex<CatalogueState>,
    /// The per-group fallback for servers without aggregated discovery.
    by_gvk: Mutex<HashMap<(String, String, String), Option<Resolved>>>,
    by_gk: Mutex<HashMap<(String, String), Option<Resolved>>>,
}

#[derive(Default)]
struct CatalogueState {
    catalogue: Option<Arc<Catalogue>>,
    /// Fetched from the server since the run began (or since CRDs were last created): a miss is final.
    fresh: bool,
    /// The server has no aggregated discovery: use the per-group fallback.
    unsupported: bool,
}

/// Every served resource, from aggregated discovery.
#[derive(Debug, Default)]
struct Catalogue {
    by_gvk: HashMap<(String, String, String), Resolved>,
    /// At the group's preferred version that serves the kind.
    by_gk: HashMap<(String, String), Resolved>,
}

/// What is kept on disk: the server's own documents, so a newer kdeploy reads what an older one wrote.
#[derive(Serialize, Deserialize)]
struct DiskEntry {
    server: String,
    fetched_unix: u64,
    core: APIGroupDiscoveryList,
    groups: APIGroupDiscoveryList,
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

impl Catalogue {
    fn build(core: &APIGroupDiscoveryList, groups: &APIGroupDiscoveryList) -> Catalogue {
        let mut catalogue = Catalogue::default();
        for group in core.items.iter().chain(&groups.items) {
            let group_name = group.metadata.as_ref().and_then(|m| m.name.clone()).unwrap_or_default();
            // Versions come in the server's order of preference.
            for version in &group.versions {
                let Some(version_name) = version.version.as_deref() else {
                    continue;
                };
                for resource in &version.resources {
                    let (Some(plural), Some(kind)) = (
                        &resource.resource,
                        resource.response_kind.as_ref().and_then(|k| k.kind.as_ref()),
                    ) else {
                        continue;
                    };
                    if plural.contains('/') {
                        continue;
                    }
                    let api_version = if group_name.is_empty() {
                        version_name.to_owned()
                    } else {
                        format!("{group_name}/{version_name}")
                    };
                    let resolved = Resolved {
                        resource: ApiResource {
                            group: group_name.clone(),
                            version: version_name.to_owned(),
                            api_version,
                            kind: kind.clone(),
                            plural: plural.clone(),
                        },
                        namespaced: resource.scope.as_deref() == Some("Namespaced"),
                    };
                    let gvk = (group_name.clone(), version_name.to_owned(), kind.clone());
                    catalogue.by_gvk.entry(gvk).or_insert_with(|| resolved.clone());
                    catalogue
                        .by_gk
                        .entry((group_name.clone(), kind.clone()))
                        .or_insert(resolved);
                }
            }
        }
        catalogue
    }
}

/// The file this server's discovery is kept in: `discovery/` in kdeploy's cache folder, named by a digest
/// of the server's URL.
pub fn disk_cache_path(server: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let name = crate::util::hex(&Sha256::digest(server.as_bytes())[..12]);
    crate::util::cache_dir().join("discovery").join(format!("{name}.json"))
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Resources {
    pub fn new(client: kube::Client) -> Resources {
        Resources {
            client,
            disk: None,
            catalogue: Mutex::new(CatalogueState::default()),
            by_gvk: Mutex::new(HashMap::new()),
            by_gk: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the discovery of `server` on disk between runs (in [`disk_cache_path`]).
    pub fn with_disk_cache(mut self, server: &str) -> Resources {
        self.disk = Some((disk_cache_path(server), server.to_owned()));
        self
    }

    /// The resource for `apiVersion` + `kind`; `None` if the server does not serve it (yet).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
        let (group, version) = split_api_version(api_version);
        let key = (group.to_owned(), version.to_owned(), kind.to_owned());
        match self.look_up(|c| c.by_gvk.get(&key).cloned()).await? {
            Some(found) => Ok(found),
            None => self.resolve_per_group(api_version, kind).await,
        }
    }

    /// The resource for a group and kind at the group's preferred version (for listing ApplySet members).
    pub async fn resolve_group_kind(&self, group: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
        let key = (group.to_owned(), kind.to_owned());
        match self.look_up(|c| c.by_gk.get(&key).cloned()).await? {
            Some(found) => Ok(found),
            None => self.resolve_group_kind_per_group(group, kind).await,
        }
    }

    /// Whether the server still serves `apiVersion` + `kind`, asked afresh unless the catalogue was
    /// fetched in this run: for a 404 on a kind the catalogue (perhaps from disk) said was served.
    pub async fn recheck(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
        {
            let mut state = self.catalogue.lock().await;
            if !state.fresh && !state.unsupported {
                self.refresh(&mut state).await?;
            }
        }
        self.by_gvk.lock().await.clear();
        self.resolve(api_version, kind).await
    }

    /// Looks `find` up in the catalogue, fetching it when there is none yet or when it misses and was not
    /// fetched in this run. `None` when the server has no aggregated discovery (use the fallback).
    async fn look_up<T>(&self, find: impl Fn(&Catalogue) -> Option<T>) -> Result<Option<Option<T>>, ClusterError> {
        let mut state = self.catalogue.lock().await;
        if state.unsupported {
            return Ok(None);
        }
        if state.catalogue.is_none() {
            state.catalogue = self.read_disk().map(Arc::new);
        }
        if let Some(found) = state.catalogue.as_deref().and_then(&find) {
            return Ok(Some(Some(found)));
        }
        if state.catalogue.is_some() && state.fresh {
            return Ok(Some(None));
        }
        self.refresh(&mut state).await?;
        if state.unsupported {
            return Ok(None);
        }
        Ok(state.catalogue.as_deref().map(find))
    }

    /// Fetches the catalogue afresh into `state`, or marks aggregated discovery unsupported.
    async fn refresh(&self, state: &mut CatalogueState) -> Result<(), ClusterError> {
        match self.fetch().await? {
            Some(catalogue) => {
                state.catalogue = Some(Arc::new(catalogue));
                state.fresh = true;
            }
            None => state.unsupported = true,
        }
        Ok(())
    }

    /// Fetches aggregated discovery (both documents at once) and keeps it on disk; `None` when the
    /// server does not serve it.
    async fn fetch(&self) -> Result<Option<Catalogue>, ClusterError> {
        let (core, groups) = tokio::join!(
            with_retries(|| self.client.list_core_api_versions_aggregated()),
            with_retries(|| self.client.list_api_groups_aggregated()),
        );
        let (core, groups) = match (core, groups) {
            (Ok(core), Ok(groups)) => (core, groups),
            (Err(error), _) | (_, Err(error)) if super::client::is_transient(&error) => {
                return Err(ClusterError::api("discovery", error));
            }
            // An older server answers with the plain documents, which do not decode as aggregated ones.
            _ => return Ok(None),
        };
        if core.items.is_empty() {
            return Ok(None);
        }
        let catalogue = Catalogue::build(&core, &groups);
        // Kept even when an aggregated API server did not answer (its group is marked stale; a broken
        // metrics-server is common): a kind missing from it, or a 404, makes the next run ask again.
        self.write_disk(core, groups);
        Ok(Some(catalogue))
    }

    fn read_disk(&self) -> Option<Catalogue> {
        let (file, server) = self.disk.as_ref()?;
        let entry: DiskEntry = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        let age = now_unix().checked_sub(entry.fetched_unix)?;
        if &entry.server == server && age < DISK_TTL.as_secs() {
            return Some(Catalogue::build(&entry.core, &entry.groups));
        }
        None
    }

    /// Keeps the documents on disk; a failure only costs the next run a request, so it is ignored.
    fn write_disk(&self, core: APIGroupDiscoveryList, groups: APIGroupDiscoveryList) {
        let Some((file, server)) = &self.disk else { return };
        let entry = DiskEntry {
            server: server.clone(),
            fetched_unix: now_unix(),
            core,
            groups,
        };
        if let Ok(bytes) = serde_json::to_vec(&entry) {
            crate::util::write_cache_file(file, &bytes);
        }
    }

    async fn resolve_per_group(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
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

    async fn resolve_group_kind_per_group(&self, group: &str, kind: &str) -> Result<Option<Resolved>, ClusterError> {
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
        self.catalogue.lock().await.fresh = false;
        self.by_gk.lock().await.retain(|_, v| v.is_some());
        self.by_gvk.lock().await.retain(|_, v| v.is_some());
    }

    /// Waits, up to 30 s, until discovery serves every (apiVersion, kind): a CRD the server has just
    /// reported Established can be missing from aggregated discovery for a moment, and a kind looked
    /// up in that moment would be reported as not served.
    pub async fn await_served(&self, kinds: &[(String, String)]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            self.forget_missing().await;
            let mut all_served = true;
            for (api_version, kind) in kinds {
                if !matches!(self.resolve(api_version, kind).await, Ok(Some(_))) {
                    all_served = false;
                    break;
                }
            }
            if all_served || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The dynamic API for an object of this resource in `namespace` (ignored when cluster-scoped).
    pub fn api(&self, resolved: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
        match (resolved.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resolved.resource),
            _ => Api::all_with(self.client.clone(), &resolved.resource),
        }
    }
}

/// Every namespaced resource the server lets one list (at each group's preferred version), for the
/// rare question "what else is in this namespace": asked group by group, never cached. A group whose
/// server does not answer (an aggregated API without its backend, as kubectl warns of) is left out and
/// named in the second list.
pub async fn namespaced_listable(client: &kube::Client) -> Result<(Vec<Resolved>, Vec<String>), ClusterError> {
    let mut versions = vec![("".to_owned(), "v1".to_owned())];
    let groups = with_retries(|| client.list_api_groups())
        .await
        .map_err(|e| ClusterError::api("listing the served API groups", e))?;
    for group in groups.groups {
        if let Some(version) = group.preferred_version.or_else(|| group.versions.into_iter().next()) {
            versions.push((group.name, version.version));
        }
    }
    let mut resources = Vec::new();
    let mut unavailable = Vec::new();
    for (group, version) in versions {
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let list = if group.is_empty() {
            with_retries(|| client.list_core_api_resources(&version)).await
        } else {
            with_retries(|| client.list_api_group_resources(&api_version)).await
        };
        let Ok(list) = list else {
            unavailable.push(api_version);
            continue;
        };
        for resource in list.resources {
            if resource.namespaced && !resource.name.contains('/') && resource.verbs.iter().any(|v| v == "list") {
                resources.push(Resolved {
                    resource: ApiResource {
                        group: group.clone(),
                        version: version.clone(),
                        api_version: api_version.clone(),
                        kind: resource.kind,
                        plural: resource.name,
                    },
                    namespaced: true,
                });
            }
        }
    }
    Ok((resources, unavailable))
}
