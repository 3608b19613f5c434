//! Loading the worker configuration the operator mounts (`WorkerConfig`, YAML) into what the
//! chat needs, with errors that name the field; and small parsers for flags.

use std::{path::PathBuf, time::Duration};

use roomcast_crds::worker_config::WorkerConfig;
use roomcast_runtime::Secret;
use roomcast_store::mongo::MongoUri;

use crate::{
    error::{Error, Result},
    room::RoomChat,
    server::{AdapterConfig, RedisUrl},
    store::DynStore,
    token::SigningKey,
};

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Mongo(MongoUri),
    /// redb file under this directory.
    Embedded(PathBuf),
}

/// Everything the binary needs to serve its room.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub room: RoomChat,
    pub store: StoreConfig,
    pub adapter: AdapterConfig,
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Read and validate the config file, the signing key and the MongoDB URI it names.
pub fn load(config_path: &str, data_dir: PathBuf) -> Result<ChatSettings> {
    let text = String::from_utf8(read(config_path)?).map_err(|_| Error::Config {
        field: "config",
        message: format!("{config_path} is not UTF-8"),
    })?;
    let config = WorkerConfig::from_yaml(&text).map_err(|e| Error::Config {
        field: "config",
        message: format!("{config_path}: {e}"),
    })?;
    from_worker_config(&config, data_dir)
}

pub fn from_worker_config(config: &WorkerConfig, data_dir: PathBuf) -> Result<ChatSettings> {
    let chat = config.chat.as_ref().ok_or(Error::Config {
        field: "chat",
        message: "the room has no chat section".into(),
    })?;
    if !chat.spec.enabled {
        return Err(Error::Config {
            field: "chat.enabled",
            message: "chat is disabled for this room".into(),
        });
    }
    if chat.spec.history_size > 5000 {
        return Err(Error::Config {
            field: "chat.historySize",
            message: "must be at most 5000".into(),
        });
    }
    if !(1..=10_000).contains(&chat.spec.max_message_length) {
        return Err(Error::Config {
            field: "chat.maxMessageLength",
            message: "must be 1..=10000".into(),
        });
    }
    if chat.spec.rate_limit_per_minute == 0 {
        return Err(Error::Config {
            field: "chat.rateLimitPerMinute",
            message: "must be at least 1".into(),
        });
    }
    if chat.spec.retention_days == Some(0) {
        return Err(Error::Config {
            field: "chat.retentionDays",
            message: "must be at least 1 (omit it to keep messages forever)".into(),
        });
    }
    let signing_key = SigningKey::from_file(&chat.signing_key_file).map_err(|e| Error::Config {
        field: "chat.signingKeyFile",
        message: e.to_string(),
    })?;
    let store = match &config.mongodb_uri_file {
        Some(file) => StoreConfig::Mongo(MongoUri::from_file(file).map_err(|e| Error::Config {
            field: "mongodbUriFile",
            message: e.to_string(),
        })?),
        None => StoreConfig::Embedded(data_dir),
    };
    let adapter = match &chat.redis_url_file {
        Some(file) => AdapterConfig::Redis(redis_url_from_file(file)?),
        None => AdapterConfig::Memory,
    };
    Ok(ChatSettings {
        room: RoomChat {
            id: config.room.clone(),
            spec: chat.spec.clone(),
            signing_key,
        },
        store,
        adapter,
    })
}

/// The Redis URL mounted from a Secret. Errors name the file, never its content (a URL may
/// carry a password).
fn redis_url_from_file(file: &str) -> Result<RedisUrl> {
    let url = Secret::from_file(file).map_err(|e| Error::Config {
        field: "chat.redisUrlFile",
        message: e.to_string(),
    })?;
    let url = url.expose();
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(Error::Config {
            field: "chat.redisUrlFile",
            message: format!("the URL in {file} must start with redis:// or rediss://"),
        });
    }
    Ok(RedisUrl::new(url))
}

/// Open the configured store (creating MongoDB indexes).
pub async fn open_store(config: &StoreConfig) -> Result<DynStore> {
    Ok(match config {
        StoreConfig::Mongo(uri) => {
            let db = roomcast_store::mongo::connect(uri, "roomcast-chat").await?;
            std::sync::Arc::new(crate::store::mongo::MongoChatStore::open(&db).await?)
        }
        StoreConfig::Embedded(dir) => {
            std::sync::Arc::new(crate::store::embedded::EmbeddedChatStore::open(dir)?)
        }
    })
}

/// Parse a duration like `90s`, `15m`, `1h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number followed by s, m, h or d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    fn yaml(key_file: &str, chat_extra: &str, top_extra: &str) -> String {
        format!(
            "room: {{namespace: shows, name: lobby}}\n\
             ingest: {{streamKeyFile: /k, maxBitrateKbps: 8000, reconnectGraceSeconds: 10}}\n\
             transcode: {{}}\n\
             chat: {{signingKeyFile: {key_file}{chat_extra}}}\n\
             playback: {{pathPrefix: /shows/lobby, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 60}}\n\
             {top_extra}"
        )
    }

    #[test]
    fn minimal_config_uses_the_embedded_store_and_memory_adapter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = write(dir.path(), "key", "0123456789abcdef0123\n");
        let cfg = write(dir.path(), "room.yaml", &yaml(&key, "", ""));
        let s = load(&cfg, dir.path().join("data")).expect("load");
        assert_eq!(s.room.socket_io_path(), "/shows/lobby/chat/socket.io");
        assert!(matches!(s.store, StoreConfig::Embedded(_)));
        assert!(matches!(s.adapter, AdapterConfig::Memory));
        assert_eq!(
            s.room.spec.history_size,
            roomcast_crds::ChatSpec::default().history_size
        );
    }

    #[test]
    fn mongo_and_redis_come_from_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = write(dir.path(), "key", "0123456789abcdef0123");
        let uri = write(dir.path(), "uri", "mongodb://db:27017/chat\n");
        let redis = write(dir.path(), "redis", "redis://:hunter2@r:6379\n");
        let cfg = write(
            dir.path(),
            "room.yaml",
            &yaml(
                &key,
                &format!(", redisUrlFile: {redis}"),
                &format!("mongodbUriFile: {uri}\n"),
            ),
        );
        let s = load(&cfg, dir.path().into()).expect("load");
        assert!(
            matches!(s.store, StoreConfig::Mongo(ref u) if u.expose() == "mongodb://db:27017/chat")
        );
        assert!(
            matches!(s.adapter, AdapterConfig::Redis(ref u) if u.expose() == "redis://:hunter2@r:6379")
        );
        let printed = format!("{s:?}");
        assert!(
            !printed.contains("redis://") && !printed.contains("mongodb://"),
            "{printed}"
        );
    }

    #[test]
    fn a_bad_redis_url_file_is_refused_naming_the_field_but_never_the_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = write(dir.path(), "key", "0123456789abcdef0123");
        let missing = dir.path().join("absent").display().to_string();
        for (name, content) in [
            ("http", Some("http://:hunter2@r:6379")),
            ("empty", Some("  \n")),
            ("unix", Some("unix:///hunter2.sock")),
            ("spaces", Some(" hunter2 redis://r")),
            ("missing", None),
        ] {
            let file = match content {
                Some(content) => write(dir.path(), name, content),
                None => missing.clone(),
            };
            let cfg = write(
                dir.path(),
                &format!("{name}.yaml"),
                &yaml(&key, &format!(", redisUrlFile: {file}"), ""),
            );
            let err = load(&cfg, dir.path().into()).expect_err(name).to_string();
            assert!(err.contains("chat.redisUrlFile"), "{name}: {err}");
            assert!(!err.contains("hunter2"), "{name}: {err}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = write(dir.path(), "short", "tiny");
        let cfg = write(dir.path(), "a.yaml", &yaml(&short, "", ""));
        let err = load(&cfg, dir.path().into())
            .expect_err("short key")
            .to_string();
        assert!(err.contains("chat.signingKeyFile"), "{err}");

        let key = write(dir.path(), "key", "0123456789abcdef0123");
        let cfg = write(
            dir.path(),
            "b.yaml",
            &yaml(&key, ", maxMessageLength: 0", ""),
        );
        let err = load(&cfg, dir.path().into())
            .expect_err("zero length")
            .to_string();
        assert!(err.contains("chat.maxMessageLength"), "{err}");

        let err = load("/nonexistent/room.yaml", dir.path().into())
            .expect_err("missing")
            .to_string();
        assert!(err.contains("/nonexistent/room.yaml"), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("h").is_err());
    }
}
