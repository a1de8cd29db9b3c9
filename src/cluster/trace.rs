//! The request log (`KDEPLOY_TRACE=requests`): one line on stderr per request to the API server, with
//! when it started (milliseconds since the process began), how long it took, the method, the path and
//! the status and HTTP version, as `kubectl -v=6` shows. It shows where a command's round trips go at a distance. Only
//! methods, paths and statuses are written: never a header, a query's values or a body, so neither a
//! token nor an object's data can reach the log.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};

/// Whether the request log was asked for.
pub fn enabled() -> bool {
    std::env::var("KDEPLOY_TRACE").is_ok_and(|v| v.split(',').any(|part| part.trim() == "requests"))
}

/// The tower layer that writes the log.
#[derive(Clone, Copy)]
pub struct TraceLayer {
    start: Instant,
}

impl TraceLayer {
    pub fn new() -> TraceLayer {
        TraceLayer {
            start: crate::util::process_start(),
        }
    }
}

impl Default for TraceLayer {
    fn default() -> Self {
        TraceLayer::new()
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            start: self.start,
        }
    }
}

#[derive(Clone)]
pub struct Traced<S> {
    inner: S,
    start: Instant,
}

/// What a request's line names: the method and the path, with only the names of the query's
/// parameters (a `labelSelector` or `continue` token says which project, not what the log needs).
fn describe<B>(request: &Request<B>) -> String {
    let uri = request.uri();
    let names: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .filter(|name| !name.is_empty())
        .collect();
    let query = if names.is_empty() {
        String::new()
    } else {
        format!("?{}", names.join("&"))
    };
    format!("{} {}{query}", request.method(), uri.path())
}

impl<S, B, R> tower::Service<Request<B>> for Traced<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let line = describe(&request);
        let sent = Instant::now();
        let since_start = sent.duration_since(self.start).as_secs_f64() * 1000.0;
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            let took = sent.elapsed().as_secs_f64() * 1000.0;
            let outcome = match &result {
                Ok(response) => format!("{} {:?}", response.status().as_u16(), response.version()),
                Err(error) => format!("failed ({error})"),
            };
            eprintln!("kdeploy: request at {since_start:7.1} ms took {took:6.1} ms: {line} {outcome}");
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_query_parameters_but_not_their_values() {
        let request = Request::get(
            "/api/v1/namespaces/a/secrets?labelSelector=applyset.kubernetes.io%2Fpart-of%3Dx&continue=TOKEN&limit=500",
        )
        .body(())
        .unwrap();
        let line = describe(&request);
        assert_eq!(line, "GET /api/v1/namespaces/a/secrets?labelSelector&continue&limit");
        assert!(!line.contains("TOKEN"));
        let empty = Request::delete("/apis/coordination.k8s.io/v1/namespaces/a/leases/l?&")
            .body(())
            .unwrap();
        assert_eq!(
            describe(&empty),
            "DELETE /apis/coordination.k8s.io/v1/namespaces/a/leases/l"
        );
    }
}
