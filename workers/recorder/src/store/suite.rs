//! The suite both object stores must pass. Keys are unique per run so it can share a bucket.

use bytes::Bytes;

use super::ObjectStore;

fn unique(label: &str) -> String {
    format!(
        "suite/{label}-{:08x}/",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

pub async fn run(store: &dyn ObjectStore) {
    put_get_and_overwrite(store).await;
    missing_objects_are_none(store).await;
    list_is_sorted_and_scoped_to_the_prefix(store).await;
    delete_prefix_removes_exactly_that_prefix(store).await;
}

async fn put_get_and_overwrite(store: &dyn ObjectStore) {
    let p = unique("put");
    let key = format!("{p}720p/0.ts");
    store
        .put(&key, Bytes::from_static(b"one"), "video/mp2t")
        .await
        .expect("put");
    assert_eq!(
        store.get(&key).await.expect("get").as_deref(),
        Some(&b"one"[..])
    );
    store
        .put(&key, Bytes::from_static(b"two"), "video/mp2t")
        .await
        .expect("put again");
    assert_eq!(
        store.get(&key).await.expect("get").as_deref(),
        Some(&b"two"[..])
    );
    let big = Bytes::from(vec![7u8; 3 * 1024 * 1024 + 5]);
    store
        .put(&format!("{p}big.ts"), big.clone(), "video/mp2t")
        .await
        .expect("put big");
    assert_eq!(
        store
            .get(&format!("{p}big.ts"))
            .await
            .expect("get")
            .expect("some"),
        big
    );
}

async fn missing_objects_are_none(store: &dyn ObjectStore) {
    let p = unique("missing");
    assert!(
        store
            .get(&format!("{p}nothing.ts"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.list(&p).await.expect("list").is_empty());
}

async fn list_is_sorted_and_scoped_to_the_prefix(store: &dyn ObjectStore) {
    let p = unique("list");
    for k in ["b/1.ts", "a/2.ts", "a/10.ts", "index.m3u8"] {
        store
            .put(&format!("{p}{k}"), Bytes::from_static(b"x"), "x")
            .await
            .expect("put");
    }
    let other = format!("{}x/", p.trim_end_matches('/'));
    store
        .put(&format!("{other}a/1.ts"), Bytes::from_static(b"x"), "x")
        .await
        .expect("put");
    let got = store.list(&p).await.expect("list");
    let want: Vec<String> = ["a/10.ts", "a/2.ts", "b/1.ts", "index.m3u8"]
        .iter()
        .map(|k| format!("{p}{k}"))
        .collect();
    assert_eq!(got, want);
    assert_eq!(store.list(&format!("{p}a/")).await.expect("list").len(), 2);
}

async fn delete_prefix_removes_exactly_that_prefix(store: &dyn ObjectStore) {
    let p = unique("delete");
    let keep = unique("keep");
    for k in ["a/1.ts", "a/2.ts", "session.json"] {
        store
            .put(&format!("{p}{k}"), Bytes::from_static(b"x"), "x")
            .await
            .expect("put");
    }
    store
        .put(&format!("{keep}a/1.ts"), Bytes::from_static(b"x"), "x")
        .await
        .expect("put");
    assert_eq!(store.delete_prefix(&p).await.expect("delete"), 3);
    assert!(store.list(&p).await.expect("list").is_empty());
    assert_eq!(store.list(&keep).await.expect("list").len(), 1);
    assert_eq!(store.delete_prefix(&p).await.expect("delete again"), 0);
}
