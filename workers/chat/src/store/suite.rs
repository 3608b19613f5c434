//! The store suite both implementations must pass. Rooms get unique names so the suite can
//! run against a shared, real MongoDB.

use super::{Ban, ChatStore, RoomKey, new_message_id};
use crate::protocol::{ChatMessage, Role};

const NOW: i64 = 1_800_000_000_000;

fn unique_room(label: &str) -> RoomKey {
    RoomKey::new("suite", &format!("{label}-{:08x}", rand::random::<u32>()))
}

fn msg(n: i64, text: &str) -> ChatMessage {
    ChatMessage {
        id: new_message_id(NOW + n),
        user_id: format!("u{}", n % 3),
        name: "Ada".into(),
        role: Role::Viewer,
        text: text.into(),
        ts: NOW + n,
    }
}

pub async fn run(store: &dyn ChatStore) {
    history_is_the_last_n_oldest_first(store).await;
    history_is_cut_to_the_newest_that_fit_in_the_byte_cap(store).await;
    rooms_do_not_see_each_others_messages(store).await;
    deleted_and_expired_messages_are_not_served(store).await;
    bans_are_per_room_and_can_be_lifted(store).await;
    slow_mode_defaults_to_off_and_is_stored(store).await;
    markup_is_stored_verbatim(store).await;
}

async fn history_is_the_last_n_oldest_first(store: &dyn ChatStore) {
    let room = unique_room("history");
    let msgs: Vec<_> = (0..10).map(|i| msg(i, &format!("m{i}"))).collect();
    for m in &msgs {
        store.append(&room, m, None).await.expect("append");
    }
    let got = store
        .recent(&room, 4, usize::MAX, NOW)
        .await
        .expect("recent")
        .messages;
    assert_eq!(got, msgs[6..].to_vec());
    assert!(
        store
            .recent(&room, 0, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages
            .is_empty()
    );
    assert_eq!(
        store
            .recent(&room, 100, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages
            .len(),
        10
    );
}

async fn history_is_cut_to_the_newest_that_fit_in_the_byte_cap(store: &dyn ChatStore) {
    let room = unique_room("history-bytes");
    // 40 maximum-length messages of two-byte characters (about 20 KB of JSON each).
    let msgs: Vec<_> = (0..40)
        .map(|i| msg(i, &format!("{i:02}{}", "é".repeat(9998))))
        .collect();
    for m in &msgs {
        store.append(&room, m, None).await.expect("append");
    }
    let cap = 64 * 1024;
    let got = store.recent(&room, 100, cap, NOW).await.expect("recent");
    assert!(got.cut);
    assert_eq!(
        got.messages,
        msgs[37..].to_vec(),
        "the newest three, oldest first"
    );
    let bytes = serde_json::to_vec(&got.messages).expect("json").len();
    assert!(bytes <= cap, "{bytes} bytes");
    // A cap that holds everything asked for does not cut.
    let got = store.recent(&room, 2, cap, NOW).await.expect("recent");
    assert!(!got.cut);
    assert_eq!(got.messages, msgs[38..].to_vec());
    // Too small for even one message: nothing, and cut.
    let got = store.recent(&room, 100, 100, NOW).await.expect("recent");
    assert!(got.cut && got.messages.is_empty());
}

async fn rooms_do_not_see_each_others_messages(store: &dyn ChatStore) {
    let a = unique_room("a");
    let b = unique_room("b");
    store
        .append(&a, &msg(1, "for a"), None)
        .await
        .expect("append");
    assert!(
        store
            .recent(&b, 10, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages
            .is_empty()
    );
    // A room whose name extends another's is still another room.
    let ab = RoomKey::new(
        "suite",
        &format!("{}x", a.as_str().trim_start_matches("suite/")),
    );
    assert!(
        store
            .recent(&ab, 10, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages
            .is_empty()
    );
}

async fn deleted_and_expired_messages_are_not_served(store: &dyn ChatStore) {
    let room = unique_room("delete");
    let keep = msg(1, "keep");
    let gone = msg(2, "gone");
    let old = msg(3, "expired");
    store
        .append(&room, &keep, Some(NOW + 60_000))
        .await
        .expect("append");
    store.append(&room, &gone, None).await.expect("append");
    store
        .append(&room, &old, Some(NOW - 1))
        .await
        .expect("append");
    assert!(store.delete(&room, &gone.id).await.expect("delete"));
    assert!(!store.delete(&room, &gone.id).await.expect("delete twice"));
    assert!(
        !store
            .delete(&unique_room("other"), &keep.id)
            .await
            .expect("other room")
    );
    assert_eq!(
        store
            .recent(&room, 10, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages,
        vec![keep.clone()]
    );
    store.purge_expired(NOW).await.expect("purge");
    assert_eq!(
        store
            .recent(&room, 10, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages,
        vec![keep]
    );
}

async fn bans_are_per_room_and_can_be_lifted(store: &dyn ChatStore) {
    let room = unique_room("bans");
    let other = unique_room("bans-other");
    let ban = Ban {
        user_id: "troll".into(),
        by: "mod".into(),
        reason: Some("spam".into()),
        at: NOW,
    };
    assert!(!store.is_banned(&room, "troll").await.expect("is_banned"));
    store.ban(&room, &ban).await.expect("ban");
    store.ban(&room, &ban).await.expect("banning twice is fine");
    assert!(store.is_banned(&room, "troll").await.expect("is_banned"));
    assert!(!store.is_banned(&other, "troll").await.expect("other room"));
    assert!(store.unban(&room, "troll").await.expect("unban"));
    assert!(!store.unban(&room, "troll").await.expect("unban twice"));
    assert!(!store.is_banned(&room, "troll").await.expect("is_banned"));
}

async fn slow_mode_defaults_to_off_and_is_stored(store: &dyn ChatStore) {
    let room = unique_room("slow");
    assert_eq!(store.slow_mode(&room).await.expect("slow"), 0);
    store.set_slow_mode(&room, 30).await.expect("set");
    assert_eq!(store.slow_mode(&room).await.expect("slow"), 30);
    store.set_slow_mode(&room, 0).await.expect("set");
    assert_eq!(store.slow_mode(&room).await.expect("slow"), 0);
}

async fn markup_is_stored_verbatim(store: &dyn ChatStore) {
    let room = unique_room("markup");
    let m = msg(1, "<script>alert('x')</script> & <b>bold</b> \u{0}");
    store.append(&room, &m, None).await.expect("append");
    assert_eq!(
        store
            .recent(&room, 1, usize::MAX, NOW)
            .await
            .expect("recent")
            .messages,
        vec![m]
    );
}

pub const RESTART_ROOM: (&str, &str) = ("suite-restart", "lobby");

/// First half of a restart test: write, then the caller drops the store.
pub async fn write_for_restart(store: &dyn ChatStore) {
    let room = RoomKey::new(RESTART_ROOM.0, RESTART_ROOM.1);
    store
        .append(&room, &msg(1, "before restart"), None)
        .await
        .expect("append");
    let ban = Ban {
        user_id: "troll".into(),
        by: "mod".into(),
        reason: None,
        at: NOW,
    };
    store.ban(&room, &ban).await.expect("ban");
}

/// Second half: a fresh store over the same data sees both.
pub async fn check_after_restart(store: &dyn ChatStore) {
    let room = RoomKey::new(RESTART_ROOM.0, RESTART_ROOM.1);
    let got = store
        .recent(&room, 10, usize::MAX, NOW)
        .await
        .expect("recent")
        .messages;
    assert!(got.iter().any(|m| m.text == "before restart"), "{got:?}");
    assert!(store.is_banned(&room, "troll").await.expect("is_banned"));
}
