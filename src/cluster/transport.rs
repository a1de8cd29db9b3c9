//! The HTTP stack under the Kubernetes client: kube's own layers (the server's base URI, credentials
//! from the kubeconfig with their refresh, extra headers, TLS from the kubeconfig's CA, client
//! certificate and server name) over a connection pool that speaks HTTP/2 when the server offers it.
//!
//! kube's default stack offers only HTTP/1.1, so each request in flight needs a connection of its own,
//! and each new connection costs its TCP and TLS handshakes, two round trips, before the request's
//! own. The API server speaks HTTP/2 (kubectl uses it), where one connection carries every request
//! at once: at a distance, the concurrent reads of a plan then cost one round trip each instead of
//! three. ALPN offers `h2` and `http/1.1`, so a server or proxy without HTTP/2 still works.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use tower::ServiceBuilder;

/// A kube client over the HTTP/2-capable stack. With a proxy in the kubeconfig (`proxy-url`), kube's
/// own stack is used, which says which proxies this build supports.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let log = super::trace::enabled().then(super::trace::TraceLayer::new);
    if config.proxy_url.is_some() {
        let builder = kube::client::ClientBuilder::try_from(config)?;
        return Ok(match log {
            Some(layer) => builder.with_layer(&layer).build(),
            None => builder.build(),
        });
    }
    // ALPN (`h2`, then `http/1.1`) is set by the connector's `enable_all_versions`.
    let tls = config.rustls_client_config()?;
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .map_err(kube::client::RustlsTlsError::InvalidServerName)
            .map_err(kube::Error::RustlsTls)?;
        builder = builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = builder.enable_all_versions().wrap_connector(tcp);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let pool = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        // An idle HTTP/2 connection is kept alive with pings rather than dropped by a middlebox.
        .http2_keep_alive_interval(Some(Duration::from_secs(30)))
        .timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .option_layer(log)
        .map_err(|e: hyper_util::client::legacy::Error| -> tower::BoxError { Box::new(e) })
        .service(pool);
    Ok(kube::Client::new(service, config.default_namespace))
}
