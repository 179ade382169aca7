//! Refuses HTTP/2 requests that are not gRPC before any service sees them:
//! tonic routes by path alone, so without this a well-framed message sent
//! as `application/json`, with no content type, or with `GET` was served
//! (and a put stored). As the gRPC over HTTP/2 spec asks: a content type
//! that does not begin with `application/grpc` gets HTTP 415, a method
//! other than `POST` HTTP 405; both name what was expected.

use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use tonic::body::Body;

/// The layer, for `Server::builder().layer(GrpcOnly)`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GrpcOnly;

impl<S> tower::Layer<S> for GrpcOnly {
    type Service = GrpcOnlyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcOnlyService(inner)
    }
}

/// The service [`GrpcOnly`] wraps around the routes.
#[derive(Clone, Debug)]
pub(crate) struct GrpcOnlyService<S>(S);

impl<S, B> tower::Service<Request<B>> for GrpcOnlyService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match refusal(req.method(), req.headers()) {
            Some((status, why)) => {
                let mut resp = Response::new(Body::new(http_body_util::Full::new(
                    bytes::Bytes::from(why),
                )));
                *resp.status_mut() = status;
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Either::Left(ready(Ok(resp)))
            }
            None => Either::Right(self.0.call(req)),
        }
    }
}

/// Why a request is not gRPC, as an HTTP status and a message; `None` for
/// a gRPC request.
fn refusal(method: &Method, headers: &HeaderMap) -> Option<(StatusCode, String)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let grpc = content_type.is_some_and(|ct| {
        ct == "application/grpc"
            || ct.starts_with("application/grpc+")
            || ct.starts_with("application/grpc;")
    });
    if !grpc {
        return Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "this port serves gRPC only: content-type must be application/grpc, not {}\n",
                content_type.map_or_else(|| "(none)".to_string(), |c| format!("{c:?}"))
            ),
        ));
    }
    if method != Method::POST {
        return Some((
            StatusCode::METHOD_NOT_ALLOWED,
            format!("this port serves gRPC only: the method must be POST, not {method}\n"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = content_type {
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
        }
        h
    }

    #[test]
    fn only_posts_labelled_application_grpc_pass() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc; charset=utf-8",
        ] {
            assert_eq!(refusal(&Method::POST, &headers(Some(ct))), None, "{ct}");
        }
        for ct in [
            Some("application/json"),
            Some("text/plain"),
            Some("application/grpcx"),
            None,
        ] {
            let (status, why) = refusal(&Method::POST, &headers(ct)).expect("refused");
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
            assert!(why.contains("application/grpc"), "{why}");
        }
        let (status, why) =
            refusal(&Method::GET, &headers(Some("application/grpc"))).expect("refused");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(why.contains("POST"), "{why}");
    }
}
