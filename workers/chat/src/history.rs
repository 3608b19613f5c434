//! The history a joining socket receives, capped in bytes, sans-I/O: the newest messages whose
//! JSON fits in the budget, oldest first. Without it every join (anonymous ones included) could
//! pull `historySize` × `maxMessageLength` (up to 5,000 × 10,000 characters) from the store.

use crate::protocol::ChatMessage;

/// The smallest a stored message serializes to (an id of 24 characters, empty name and
/// one-character text): no more messages than `max_bytes / MIN_MESSAGE_BYTES` can fit, so no
/// more are loaded.
pub const MIN_MESSAGE_BYTES: usize = 80;

/// How many messages to load from the store for a budget of `max_bytes`.
pub fn load_limit(history_size: u32, max_bytes: usize) -> u32 {
    let fit = u32::try_from(max_bytes / MIN_MESSAGE_BYTES).unwrap_or(u32::MAX);
    history_size.min(fit)
}

/// JSON size of a message inside the history array (its comma included).
fn json_len(message: &ChatMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, message) {
        Ok(()) => count.0 + 1,
        Err(_) => usize::MAX,
    }
}

/// Keep the newest messages of `history` (oldest first) whose JSON array fits in `max_bytes`;
/// returns them (still oldest first) and how many older ones were left out.
pub fn newest_within(mut history: Vec<ChatMessage>, max_bytes: usize) -> (Vec<ChatMessage>, usize) {
    // `[` and `]`, and the comma counted for the last message that has none.
    let mut used: usize = 1;
    let mut keep = 0;
    for message in history.iter().rev() {
        let len = json_len(message);
        match used.checked_add(len) {
            Some(total) if total <= max_bytes => {
                used = total;
                keep += 1;
            }
            _ => break,
        }
    }
    let dropped = history.len() - keep;
    history.drain(..dropped);
    (history, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{protocol::Role, store::new_message_id};

    fn message(ts: i64, text: &str) -> ChatMessage {
        ChatMessage {
            id: new_message_id(ts),
            user_id: "u-1".into(),
            name: "Ada".into(),
            role: Role::Viewer,
            text: text.into(),
            ts,
        }
    }

    fn array_len(history: &[ChatMessage]) -> usize {
        serde_json::to_vec(history).expect("json").len()
    }

    #[test]
    fn a_room_full_of_maximum_length_messages_is_cut_to_the_newest_that_fit() {
        let cap = 64 * 1024;
        let history: Vec<_> = (0..5000).map(|i| message(i, &"é".repeat(10_000))).collect();
        let (kept, dropped) = newest_within(history, cap);
        assert!(array_len(&kept) <= cap, "{} bytes", array_len(&kept));
        assert_eq!(kept.len(), 3, "three 20 KB messages fit in 64 KiB");
        assert_eq!(dropped, 4997);
        assert_eq!(
            kept.iter().map(|m| m.ts).collect::<Vec<_>>(),
            [4997, 4998, 4999],
            "newest kept, oldest first"
        );
    }

    #[test]
    fn the_cap_is_exact_at_the_boundary() {
        let history: Vec<_> = (0..10).map(|i| message(i, "hello")).collect();
        let full = array_len(&history);
        let (kept, dropped) = newest_within(history.clone(), full);
        assert_eq!((kept.len(), dropped), (10, 0));
        let (kept, dropped) = newest_within(history, full - 1);
        assert_eq!((kept.len(), dropped), (9, 1));
        assert!(array_len(&kept) < full);
    }

    #[test]
    fn a_single_message_larger_than_the_cap_sends_none_and_tiny_caps_do_not_underflow() {
        let history = vec![message(1, &"x".repeat(10_000))];
        assert_eq!(newest_within(history.clone(), 1000).0.len(), 0);
        assert_eq!(newest_within(history.clone(), 0), (Vec::new(), 1));
        assert_eq!(newest_within(Vec::new(), 0), (Vec::new(), 0));
        assert_eq!(newest_within(history, usize::MAX).1, 0);
    }

    #[test]
    fn the_load_limit_never_exceeds_what_could_fit() {
        let smallest = ChatMessage {
            user_id: String::new(),
            name: String::new(),
            text: String::new(),
            ..message(0, "")
        };
        assert!(
            json_len(&smallest) >= MIN_MESSAGE_BYTES,
            "{}",
            json_len(&smallest)
        );
        assert_eq!(load_limit(100, 64 * 1024), 100);
        assert_eq!(load_limit(5000, 64 * 1024), 819);
        assert_eq!(load_limit(5000, 0), 0);
        assert_eq!(load_limit(5000, usize::MAX), 5000);
    }
}
