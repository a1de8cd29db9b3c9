//! One deploy at a time per project: `apply` holds a `coordination.k8s.io` Lease named after the
//! project's ApplySet parent, next to it, for as long as it runs. The lease is renewed every few
//! seconds; a process that dies stops renewing it, and once it has gone unrenewed for its duration
//! (15 s) the next apply takes it over. There is no "another operation is in progress" that a person
//! has to clear by hand (helm#8987).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use tokio::sync::Notify;

use super::ClusterError;
use super::client::with_retries;

/// How long a lease lasts without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A held lock; [`DeployLock::release`] gives it back (if the process dies, it expires instead).
pub struct DeployLock {
    api: Api<Lease>,
    name: String,
    /// The lease as this process last wrote it: release deletes it only while it is still that.
    written: Arc<std::sync::Mutex<Preconditions>>,
    stop: Arc<Notify>,
    renewer: tokio::task::JoinHandle<()>,
}

/// What deleting `lease` requires it still to be: the same object at the same version.
fn preconditions_of(lease: &Lease) -> Preconditions {
    Preconditions {
        resource_version: lease.metadata.resource_version.clone(),
        uid: lease.metadata.uid.clone(),
    }
}

/// What trying to lock found.
pub enum Locking {
    Held(Box<DeployLock>),
    /// The namespace of the lease does not exist yet (this apply creates it): lock once it does.
    NamespaceMissing,
}

/// Who this process is, as other applies will see it: `user@host (pid N)` and a random tag, so two
/// processes of one user on one host never take each other for the holder.
pub fn holder_identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    let mut tag = [0u8; 4];
    let _ = getrandom::fill(&mut tag);
    format!(
        "kdeploy {user}@{host} (pid {}) {}",
        std::process::id(),
        crate::util::hex(&tag)
    )
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Whether `lease` is free for `holder`: nobody holds it, `holder` does, or its holder stopped renewing.
fn is_free(lease: &Lease, holder: &str) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let current = spec.holder_identity.as_deref().unwrap_or_default();
    if current.is_empty() || current == holder {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => Timestamp::now()
            .duration_since(*renewed)
            .gt(&SignedDuration::from_secs(duration)),
        None => true,
    }
}

/// Why the lock is taken, for a person: holder and since when.
fn describe_holder(lease: &Lease) -> String {
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_else(|| "?".into());
    match spec.acquire_time {
        Some(MicroTime(since)) => format!("{holder}, since {}", since.strftime("%Y-%m-%d %H:%M:%S UTC")),
        None => holder,
    }
}

/// How the caller hears of the lock: once who holds it while this apply waits, and if another process
/// takes it over while this one holds it (the renewal runs in the background, so this is a function
/// it can keep).
pub struct LockReports<'a> {
    pub waiting: &'a mut (dyn FnMut(&str) + Send),
    pub lost: fn(&str),
}

/// Takes the lock `name` in `namespace`, waiting up to `timeout` while another apply holds it.
pub async fn acquire(
    client: kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    reports: LockReports<'_>,
) -> Result<Locking, ClusterError> {
    let LockReports { waiting, lost } = reports;
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let holder = holder_identity();
    let deadline = Instant::now() + timeout;
    let mut told = false;
    // A server that cannot be reached is said as such by the caller (`ClusterError::naming_server`).
    let fail = |error: kube::Error| {
        ClusterError::api(
            format!(
                "cannot take the deploy lock, which keeps two applies of one project apart (Lease {name} in namespace \
                 {namespace}; grant get/create/update/delete on leases.coordination.k8s.io there, or pass --no-lock)"
            ),
            error,
        )
    };
    let fresh = Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "kdeploy".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(spec_for(&holder, 0)),
    };
    // Usually nobody holds it: creating it straight away takes it in one round trip. When it exists
    // (AlreadyExists), it is read and judged below.
    match api.create(&PostParams::default(), &fresh).await {
        Ok(created) => {
            return Ok(Locking::Held(Box::new(DeployLock::hold(
                api, name, holder, &created, lost,
            ))));
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Locking::NamespaceMissing),
        Err(error) if super::client::is_transient(&error) => {}
        Err(error) => return Err(fail(error)),
    }
    loop {
        let current = match with_retries(|| api.get_opt(name)).await {
            Ok(current) => current,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Locking::NamespaceMissing),
            Err(error) => return Err(fail(error)),
        };
        let taken = match &current {
            None => {
                let mut lease = fresh.clone();
                lease.spec = Some(spec_for(&holder, 0));
                api.create(&PostParams::default(), &lease).await
            }
            Some(lease) if is_free(lease, &holder) => {
                let mut lease = lease.clone();
                let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
                lease.spec = Some(spec_for(&holder, transitions + 1));
                // The resourceVersion it was read at: if another apply took it meanwhile, this fails.
                api.replace(name, &PostParams::default(), &lease).await
            }
            Some(lease) => {
                if Instant::now() >= deadline {
                    return Err(ClusterError::Config(format!(
                        "another apply of this project is running: the deploy lock (Lease {name} in namespace {namespace}) is held by {}. \
                         Wait for it, or raise --lock-timeout; a lock left by a process that died expires {LEASE_SECONDS}s after its last renewal",
                        describe_holder(lease)
                    )));
                }
                if !told {
                    waiting(&format!(
                        "waiting for the deploy lock: another apply of this project is running ({}); up to --lock-timeout {}s",
                        describe_holder(lease),
                        timeout.as_secs()
                    ));
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match taken {
            Ok(taken) => {
                return Ok(Locking::Held(Box::new(DeployLock::hold(
                    api, name, holder, &taken, lost,
                ))));
            }
            // Another apply got there first (AlreadyExists, or a newer resourceVersion): look again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Locking::NamespaceMissing),
            Err(error) => return Err(fail(error)),
        }
    }
}

fn spec_for(holder: &str, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_owned()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

impl DeployLock {
    fn hold(api: Api<Lease>, name: &str, holder: String, taken: &Lease, lost: fn(&str)) -> DeployLock {
        let stop = Arc::new(Notify::new());
        let written = Arc::new(std::sync::Mutex::new(preconditions_of(taken)));
        let renewer = tokio::spawn(renew(
            api.clone(),
            name.to_owned(),
            holder,
            written.clone(),
            stop.clone(),
            lost,
        ));
        DeployLock {
            api,
            name: name.to_owned(),
            written,
            stop,
            renewer,
        }
    }

    /// Gives the lock back: stops renewing and deletes the lease, on the condition that it is still
    /// the object at the version this process last wrote. A lease another apply took over since has
    /// a newer version, so the server refuses the delete (409) and the other's lock stays.
    pub async fn release(self) {
        self.stop.notify_one();
        let _ = self.renewer.await;
        let preconditions = match self.written.lock() {
            Ok(written) => written.clone(),
            Err(_) => return,
        };
        let params = DeleteParams {
            preconditions: Some(preconditions),
            ..Default::default()
        };
        let _ = with_retries(|| self.api.delete(&self.name, &params)).await;
    }
}

/// Renews the lease until told to stop, or until it is no longer ours.
async fn renew(
    api: Api<Lease>,
    name: String,
    holder: String,
    written: Arc<std::sync::Mutex<Preconditions>>,
    stop: Arc<Notify>,
    lost: fn(&str),
) {
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        let Ok(Some(mut lease)) = with_retries(|| api.get_opt(&name)).await else {
            continue;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(holder.as_str()) {
            lost(&format!(
                "the deploy lock (Lease {name}) was taken over by {}: this apply no longer holds it",
                spec.holder_identity.as_deref().unwrap_or("?")
            ));
            return;
        }
        spec.renew_time = Some(now());
        if let Ok(renewed) = api.replace(&name, &PostParams::default(), &lease).await
            && let Ok(mut written) = written.lock()
        {
            *written = preconditions_of(&renewed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_seconds_ago: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                renew_time: Some(MicroTime(
                    Timestamp::now() - SignedDuration::from_secs(renewed_seconds_ago),
                )),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        assert!(is_free(&Lease::default(), "me"));
        assert!(is_free(&lease("", 0), "me"));
        assert!(is_free(&lease("me", 0), "me"));
        assert!(!is_free(&lease("other", 1), "me"));
        assert!(is_free(&lease("other", i64::from(LEASE_SECONDS) + 1), "me"));
        assert!(holder_identity().starts_with("kdeploy "));
        assert_ne!(holder_identity(), holder_identity());
    }
}
