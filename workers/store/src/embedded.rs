//! The embedded store: one redb file per worker kind under a data directory, used when no
//! MongoDB is configured (`roomcast dev`, single-replica rooms).
//!
//! redb is synchronous, so every transaction runs on tokio's blocking pool through
//! [`blocking`]; [`read`] and [`write`] are the one-table transactions both workers use (a
//! write commits only when its closure succeeds). Each worker keeps its own error type: it
//! takes redb's failures through [`EmbeddedError`].

use std::{fmt, path::Path, sync::Arc};

use redb::{Database, Key, ReadOnlyTable, ReadableDatabase, Table, TableDefinition, Value};

use crate::{Error, Result};

/// A table of JSON documents under string keys, the shape every roomcast table has.
pub type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// How a worker's error type takes a failure of the embedded store (a transaction that would
/// not begin or commit, a table that would not open, a blocking task that died).
pub trait EmbeddedError: Sized {
    fn from_redb(e: impl fmt::Display) -> Self;
}

/// Open (or create) `<data_dir>/<file_name>`, creating the directory if needed, and create
/// `tables` so that readers find them from the start.
pub fn open(data_dir: &Path, file_name: &str, tables: &[JsonTable]) -> Result<Arc<Database>> {
    std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let path = data_dir.join(file_name);
    let failed = |e: redb::Error| Error::Embedded {
        path: path.display().to_string(),
        source: Box::new(e),
    };
    let db = Database::create(&path).map_err(|e| failed(e.into()))?;
    let txn = db.begin_write().map_err(|e| failed(e.into()))?;
    for table in tables {
        txn.open_table(*table).map_err(|e| failed(e.into()))?;
    }
    txn.commit().map_err(|e| failed(e.into()))?;
    Ok(Arc::new(db))
}

/// The key of one of a room's records: `<room>\0<id>`. NUL sorts before every character a
/// room or an id may hold, so a room's records form one contiguous range ([`room_range`]),
/// ordered by id.
pub fn room_key(room: &str, id: &str) -> String {
    format!("{room}\0{id}")
}

/// The key range (`from..to`) holding every record of `room`, and nothing of another room.
pub fn room_range(room: &str) -> (String, String) {
    (format!("{room}\0"), format!("{room}\u{1}"))
}

/// Run `f` with the database on tokio's blocking pool.
pub async fn blocking<T, E>(
    db: &Arc<Database>,
    f: impl FnOnce(&Database) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: EmbeddedError + Send + 'static,
{
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(E::from_redb)?
}

/// One read transaction on one table.
pub fn read<K, V, T, E>(
    db: &Database,
    table: TableDefinition<'_, K, V>,
    f: impl FnOnce(&ReadOnlyTable<K, V>) -> Result<T, E>,
) -> Result<T, E>
where
    K: Key + 'static,
    V: Value + 'static,
    E: EmbeddedError,
{
    let txn = db.begin_read().map_err(E::from_redb)?;
    let t = txn.open_table(table).map_err(E::from_redb)?;
    f(&t)
}

/// One write transaction on one table: `f` changes it, then it commits. Nothing is written
/// when `f` fails.
pub fn write<K, V, T, E>(
    db: &Database,
    table: TableDefinition<'_, K, V>,
    f: impl FnOnce(&mut Table<'_, K, V>) -> Result<T, E>,
) -> Result<T, E>
where
    K: Key + 'static,
    V: Value + 'static,
    E: EmbeddedError,
{
    let txn = db.begin_write().map_err(E::from_redb)?;
    let out = {
        let mut t = txn.open_table(table).map_err(E::from_redb)?;
        f(&mut t)?
    };
    txn.commit().map_err(E::from_redb)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: JsonTable = TableDefinition::new("t");

    #[derive(Debug, PartialEq)]
    struct Failed(String);

    impl EmbeddedError for Failed {
        fn from_redb(e: impl fmt::Display) -> Self {
            Failed(e.to_string())
        }
    }

    #[test]
    fn a_rooms_range_holds_its_keys_and_no_other_rooms() {
        let (from, to) = room_range("ns/a");
        let inside = |k: &str| from.as_str() <= k && k < to.as_str();
        assert!(inside(&room_key("ns/a", "")));
        assert!(inside(&room_key("ns/a", "zzz")));
        for other in ["ns/a-b", "ns/ab", "ns/", "ns/a/b"] {
            assert!(!inside(&room_key(other, "x")), "{other}");
        }
    }

    #[test]
    fn opens_and_reopens_a_store_in_a_new_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("nested/data");
        drop(open(&data, "chat.redb", &[T]).expect("first open"));
        open(&data, "chat.redb", &[T]).expect("reopen");
        assert!(data.join("chat.redb").exists());
    }

    #[tokio::test]
    async fn a_write_commits_only_when_its_closure_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), "t.redb", &[T]).expect("open");
        let get = |db: &Database, k: &'static str| {
            read(db, T, |t| {
                Ok::<_, Failed>(
                    t.get(k)
                        .map_err(Failed::from_redb)?
                        .map(|v| v.value().to_vec()),
                )
            })
        };
        blocking(&db, |db| {
            write(db, T, |t| {
                t.insert("kept", &b"1"[..]).map_err(Failed::from_redb)?;
                Ok::<_, Failed>(())
            })
        })
        .await
        .expect("write");
        let failed = blocking(&db, |db| {
            write(db, T, |t| {
                t.insert("dropped", &b"2"[..]).map_err(Failed::from_redb)?;
                Err::<(), _>(Failed("refused".into()))
            })
        })
        .await;
        assert_eq!(failed, Err(Failed("refused".into())));
        assert_eq!(get(&db, "kept"), Ok(Some(b"1".to_vec())));
        assert_eq!(get(&db, "dropped"), Ok(None));
    }
}
