//! The suite both catalogs must pass. Rooms get unique names so it can share a real MongoDB.

use super::{Catalog, Recording, RecordingStatus};

pub fn recording(
    room: &str,
    session_id: &str,
    started_at: i64,
    status: RecordingStatus,
) -> Recording {
    let ended = (status != RecordingStatus::Live).then_some(started_at + 60_000);
    Recording {
        room: room.into(),
        session_id: session_id.into(),
        started_at,
        ended_at: ended,
        duration_seconds: ended.map(|_| 60.0),
        status,
        renditions: vec!["source".into(), "360p".into()],
        prefix: format!("rooms/{room}/{session_id}/"),
        poster: None,
        bytes: 1234,
        segments: 30,
        dropped_segments: 0,
    }
}

fn unique_room(label: &str) -> String {
    format!(
        "suite/{label}-{:08x}",
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
    )
}

pub async fn run(c: &dyn Catalog) {
    upsert_replaces_and_get_finds(c).await;
    list_is_newest_first_and_paginates(c).await;
    rooms_do_not_see_each_others_sessions(c).await;
    ended_before_skips_live_and_recent_sessions(c).await;
    delete_removes_one_entry(c).await;
}

async fn upsert_replaces_and_get_finds(c: &dyn Catalog) {
    let room = unique_room("upsert");
    let live = recording(&room, "s1", 1_000, RecordingStatus::Live);
    c.upsert(&live).await.expect("upsert");
    assert_eq!(c.get(&room, "s1").await.expect("get"), Some(live));
    let done = recording(&room, "s1", 1_000, RecordingStatus::Complete);
    c.upsert(&done).await.expect("upsert again");
    assert_eq!(c.get(&room, "s1").await.expect("get"), Some(done));
    assert_eq!(c.list(&room, 10, None).await.expect("list").len(), 1);
    assert_eq!(c.get(&room, "nope").await.expect("get"), None);
}

async fn list_is_newest_first_and_paginates(c: &dyn Catalog) {
    let room = unique_room("list");
    for i in 0..5 {
        c.upsert(&recording(
            &room,
            &format!("s{i}"),
            1_000 * (i + 1),
            RecordingStatus::Complete,
        ))
        .await
        .expect("upsert");
    }
    let page1 = c.list(&room, 2, None).await.expect("list");
    assert_eq!(
        page1
            .iter()
            .map(|r| r.session_id.as_str())
            .collect::<Vec<_>>(),
        ["s4", "s3"]
    );
    let before = page1.last().map(|r| r.started_at);
    let page2 = c.list(&room, 2, before).await.expect("list");
    assert_eq!(
        page2
            .iter()
            .map(|r| r.session_id.as_str())
            .collect::<Vec<_>>(),
        ["s2", "s1"]
    );
    let page3 = c
        .list(&room, 2, page2.last().map(|r| r.started_at))
        .await
        .expect("list");
    assert_eq!(
        page3
            .iter()
            .map(|r| r.session_id.as_str())
            .collect::<Vec<_>>(),
        ["s0"]
    );
    // A zero limit still returns a page of one rather than nothing.
    assert_eq!(c.list(&room, 0, None).await.expect("list").len(), 1);
}

async fn rooms_do_not_see_each_others_sessions(c: &dyn Catalog) {
    let a = unique_room("a");
    c.upsert(&recording(&a, "s1", 1, RecordingStatus::Complete))
        .await
        .expect("upsert");
    let ax = format!("{a}x");
    assert!(c.list(&ax, 10, None).await.expect("list").is_empty());
    assert_eq!(c.get(&ax, "s1").await.expect("get"), None);
}

async fn ended_before_skips_live_and_recent_sessions(c: &dyn Catalog) {
    let room = unique_room("retention");
    c.upsert(&recording(&room, "old", 1_000, RecordingStatus::Complete))
        .await
        .expect("upsert");
    c.upsert(&recording(
        &room,
        "old-interrupted",
        2_000,
        RecordingStatus::Interrupted,
    ))
    .await
    .expect("upsert");
    c.upsert(&recording(
        &room,
        "new",
        10_000_000,
        RecordingStatus::Complete,
    ))
    .await
    .expect("upsert");
    c.upsert(&recording(&room, "live", 500, RecordingStatus::Live))
        .await
        .expect("upsert");
    let mut got: Vec<String> = c
        .ended_before(&room, 1_000_000)
        .await
        .expect("ended_before")
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    got.sort();
    assert_eq!(got, ["old", "old-interrupted"]);
}

async fn delete_removes_one_entry(c: &dyn Catalog) {
    let room = unique_room("delete");
    c.upsert(&recording(&room, "s1", 1, RecordingStatus::Complete))
        .await
        .expect("upsert");
    c.upsert(&recording(&room, "s2", 2, RecordingStatus::Complete))
        .await
        .expect("upsert");
    assert!(c.delete(&room, "s1").await.expect("delete"));
    assert!(!c.delete(&room, "s1").await.expect("delete again"));
    assert_eq!(c.list(&room, 10, None).await.expect("list").len(), 1);
}
