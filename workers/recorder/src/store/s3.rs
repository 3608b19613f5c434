//! AWS S3 or any S3-compatible store through aws-sdk-s3: endpoint override, path-style
//! addressing, region, static credentials or the ambient chain. TLS is rustls with ring.

use async_trait::async_trait;
use aws_config::{BehaviorVersion, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::{
    Client,
    config::{Credentials, Region},
    error::DisplayErrorContext,
    primitives::ByteStream,
    types::{Delete, ObjectIdentifier},
};
use aws_smithy_http_client::tls;
use bytes::Bytes;

use super::{ObjectStore, check_key};
use crate::{Error, Result, config::S3Settings};

/// Region used when neither the config nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

fn s3_err(op: &'static str, key: &str, e: impl std::error::Error) -> Error {
    Error::S3 {
        op,
        key: key.to_owned(),
        message: DisplayErrorContext(e).to_string(),
    }
}

impl S3Store {
    /// Build a client. Nothing is sent until the first request.
    pub async fn connect(settings: &S3Settings) -> Result<Self> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.connect_timeout)
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .build(),
            )
            // The recorder retries on its own (backon, with jitter, without a limit).
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if !settings.region.is_empty() {
            loader = loader.region(Region::new(settings.region.clone()));
        }
        if let Some(c) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose().to_owned(),
                c.session_token.as_ref().map(|t| t.expose().to_owned()),
                None,
                "roomcast-credentials-dir",
            ));
        }
        let sdk = loader.load().await;
        let mut b =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(settings.force_path_style);
        if sdk.region().is_none() {
            b = b.region(Region::new(DEFAULT_REGION));
        }
        if !settings.endpoint.is_empty() {
            b = b.endpoint_url(settings.endpoint.clone());
        }
        Ok(Self {
            client: Client::from_conf(b.build()),
            bucket: settings.bucket.clone(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_err("PutObject", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_err("GetObject", key, e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| s3_err("GetObject", key, e))?;
        Ok(Some(body.into_bytes()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_err("ListObjectsV2", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let keys = self.list(prefix).await?;
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| s3_err("DeleteObjects", prefix, e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| s3_err("DeleteObjects", prefix, e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_err("DeleteObjects", prefix, e))?;
            if let Some(err) = out.errors().first() {
                return Err(Error::S3 {
                    op: "DeleteObjects",
                    key: err.key().unwrap_or(prefix).to_owned(),
                    message: err.message().unwrap_or("failed").to_owned(),
                });
            }
        }
        Ok(keys.len() as u64)
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::S3TestServer;

    #[tokio::test]
    async fn s3_store_passes_the_shared_suite_against_a_real_s3_server() {
        let server = S3TestServer::start().await;
        let store = server.store().await;
        super::super::suite::run(&store).await;
        // The client's configuration, printed, never shows the secret key.
        let printed = format!("{store:?}");
        assert!(!printed.contains("roomcast-test-secret-key"), "{printed}");
    }

    #[tokio::test]
    async fn wrong_secret_key_is_refused_by_sigv4() {
        let server = S3TestServer::start().await;
        let mut settings = server.settings();
        if let Some(c) = settings.credentials.as_mut() {
            c.secret_access_key = crate::Secret::new("not-the-secret");
        }
        let store = super::S3Store::connect(&settings).await.expect("client");
        let err = crate::ObjectStore::put(&store, "a/b.ts", bytes::Bytes::from_static(b"x"), "x")
            .await
            .expect_err("signature mismatch");
        assert_eq!(err.label(), "s3");
    }
}
